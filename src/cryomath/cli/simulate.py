"""``cryomath simulate`` (datasets with ground truth) and ``cryomath project`` (projections
at given poses)."""

from pathlib import Path
from typing import Annotated

import typer

from cryomath.cli.output import BatchSize, Device, Force, Json, Scheduler, emit
from cryomath.errors import InvalidInputError


def simulate(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Map (.mrc) or atomic model (.pdb/.cif); several: heterogeneity"),
    ],
    n: Annotated[int, typer.Option("--n", help="Number of particles")] = 1000,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("simulated"),
    box_size: Annotated[
        int | None, typer.Option(help="Box size (pixels); models default 128")
    ] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel size (A); models default 1")
    ] = None,
    poses: Annotated[str, typer.Option(help="uniform, grid or preferred")] = "uniform",
    grid_order: Annotated[int, typer.Option(help="HEALPix order for --poses grid")] = 2,
    preferred_fraction: Annotated[float, typer.Option(help="Share of preferred views")] = 0.5,
    preferred_kappa: Annotated[float, typer.Option(help="vMF concentration of them")] = 20.0,
    shift_sigma: Annotated[float, typer.Option(help="Origin sd per axis (A)")] = 0.0,
    defocus_min: Annotated[float, typer.Option(help="Defocus min (A)")] = 10000.0,
    defocus_max: Annotated[float, typer.Option(help="Defocus max (A)")] = 25000.0,
    astigmatism: Annotated[float, typer.Option(help="Max |dU - dV| (A)")] = 500.0,
    voltage: Annotated[float, typer.Option(help="kV")] = 300.0,
    cs: Annotated[float, typer.Option(help="Spherical aberration (mm)")] = 2.7,
    amplitude_contrast: Annotated[float, typer.Option(help="Amplitude contrast")] = 0.1,
    bfactor: Annotated[float, typer.Option(help="CTF B-factor (A^2)")] = 0.0,
    no_ctf: Annotated[bool, typer.Option("--no-ctf", help="No CTF")] = False,
    delocalisation: Annotated[
        bool,
        typer.Option(
            "--delocalisation",
            help="CTF over the micrograph: lose what leaves the box (Thon-ring fading)",
        ),
    ] = False,
    ewald: Annotated[
        bool, typer.Option("--ewald", help="Images of the Ewald sphere (two curved side-bands)")
    ] = False,
    state_weights: Annotated[
        str | None, typer.Option(help="Several maps: the states' weights, e.g. 0.3,0.7")
    ] = None,
    trajectory: Annotated[
        bool, typer.Option("--trajectory", help="Several maps: a continuous trajectory")
    ] = False,
    frames: Annotated[
        int | None, typer.Option(help="Two models: interpolate their atoms into this many maps")
    ] = None,
    snr: Annotated[float | None, typer.Option(help="SNR (signal var / noise var)")] = None,
    white_noise_sd: Annotated[
        float | None, typer.Option(help="White noise of this sd in every image (not --snr)")
    ] = None,
    dose: Annotated[float | None, typer.Option(help="Counting noise at e/A^2")] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    movie_size: Annotated[
        int | None, typer.Option(help="Write movies of this many pixels squared instead of stacks")
    ] = None,
    movie_frames: Annotated[int, typer.Option(help="Frames per movie")] = 24,
    dose_per_frame: Annotated[float, typer.Option(help="Movies: dose per frame (e/A^2)")] = 1.5,
    drift_speed: Annotated[
        float, typer.Option(help="Movies: initial drift speed (pixels per frame)")
    ] = 1.0,
    local_motion: Annotated[
        float, typer.Option(help="Movies: rms local motion at the last frame (pixels)")
    ] = 1.0,
    dqe: Annotated[
        float | None, typer.Option(help="Movies: DQE(0) of a counter with the pixel's MTF")
    ] = None,
    clean: Annotated[bool, typer.Option("--clean", help="Also write noise-free images")] = False,
    shard_size: Annotated[int, typer.Option(help="Images per stack file")] = 10240,
    batch_size: BatchSize = 256,
    device: Device = "cpu",
    scheduler: Scheduler = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish an interrupted run in --out")
    ] = False,
    force: Force = False,
    json: Json = False,
) -> None:
    """Simulate a particle dataset with known poses, shifts and CTFs (STAR, .cs, stacks).
    ``--scheduler``: one Dask task per stack shard, files identical to a local run.
    ``--movie-size``: movies of the particles instead (drift, local motion, damage, counts;
    movies.star, particles.star with coordinates, tracks.json with the true tracks)."""
    from rich.progress import Progress

    from cryomath.pipelines import dask_client, read_volume, read_volumes, simulate_dataset
    from cryomath.simulate import SimulationSettings

    if len(sources) == 1 and frames is None:
        volume, pixel = read_volume(sources[0], box_size, pixel_size)
    else:
        volume, pixel = read_volumes(sources, box_size, pixel_size, frames)
    weights = None
    if state_weights is not None:
        try:
            weights = tuple(float(w) for w in state_weights.split(","))
        except ValueError:
            raise InvalidInputError(f"--state-weights: numbers separated by commas, got "
                                    f"{state_weights!r}") from None  # fmt: skip
    settings = SimulationSettings(
        n_particles=n, pixel_size_angstrom=pixel, seed=seed, poses=poses, grid_order=grid_order,
        preferred_fraction=preferred_fraction, preferred_kappa=preferred_kappa,
        shift_sigma_angstrom=shift_sigma, defocus_min_angstrom=defocus_min,
        defocus_max_angstrom=defocus_max, astigmatism_angstrom=astigmatism, voltage_kv=voltage,
        spherical_aberration_mm=cs, amplitude_contrast=amplitude_contrast,
        bfactor_angstrom2=bfactor, ctf=not no_ctf,
        snr=snr if (snr, white_noise_sd, dose) != (None, None, None) else 0.1,
        white_noise_sd=white_noise_sd, dose_e_per_a2=dose,
        shard_size=shard_size, delocalisation=delocalisation, ewald=ewald,
        state_weights=weights, trajectory=trajectory or frames is not None,
    )  # fmt: skip
    if movie_size is not None:
        from cryomath.pipelines.movies import MovieDatasetSettings, simulate_movies

        if volume.ndim != 3 or ewald or delocalisation or clean or resume or scheduler:
            raise InvalidInputError(
                "--movie-size takes one map or model, without --ewald, --delocalisation, "
                "--clean, --resume or --scheduler"
            )
        movie = MovieDatasetSettings(movie_size, movie_frames, dose_per_frame, drift_speed,
                                     local_motion, dqe)  # fmt: skip
        with Progress(disable=json, transient=True) as bar:
            task = bar.add_task("simulating movies", total=n)
            summary = simulate_movies(volume, out, settings, movie, force,
                                      lambda k: bar.advance(task, k))  # fmt: skip
        emit(summary, json, title="simulated movies")
        return
    with Progress(disable=json, transient=True) as bar, dask_client(scheduler) as client:
        task = bar.add_task("simulating", total=n)
        summary = simulate_dataset(
            volume, out, settings, write_clean=clean, force=force, resume=resume, client=client,
            progress=lambda k: bar.advance(task, k), batch_size=batch_size, device=device,
        )  # fmt: skip
    emit(summary, json, title="simulated dataset")


def project(
    source: Annotated[Path, typer.Argument(help="Map (.mrc) or atomic model (.pdb/.cif)")],
    poses: Annotated[Path, typer.Option(help="Particle file with poses (.star, .cs, .pkl)")],
    out: Annotated[Path, typer.Option(help="Output stack (.mrcs)")],
    ctf: Annotated[bool, typer.Option("--ctf", help="Apply each particle's CTF")] = False,
    pad: Annotated[float, typer.Option(help="Padding factor")] = 2.0,
    batch_size: BatchSize = 256,
    device: Device = "cpu",
    force: Force = False,
    json: Json = False,
) -> None:
    """Project a map at the poses (and origins, and optionally CTFs) of a particle file,
    streamed to the stack in batches of ``--batch-size`` images."""
    from rich.progress import Progress

    from cryomath.io import read_particles
    from cryomath.io.atomic import check_output_path
    from cryomath.pipelines import project_particles, read_volume

    check_output_path(out, force)
    if batch_size < 1:
        raise InvalidInputError("--batch-size must be at least 1")
    table = read_particles(poses, allow_unknown_columns=True)
    table.require("rotations", purpose="projection")
    pixel_hint = None if table.pixel_size_angstrom is None else float(table.pixel_size_angstrom[0])
    volume, pixel = read_volume(source, None, pixel_hint)
    n_box = volume.shape[-1]
    with Progress(disable=json, transient=True) as bar:
        task = bar.add_task("projecting", total=table.n)
        project_particles(
            volume, pixel, table, out, ctf, pad, batch_size, device, force,
            lambda k: bar.advance(task, k),
        )  # fmt: skip
    summary = {"input": str(source), "poses": str(poses), "output": str(out), "images": table.n}
    summary.update({"box": n_box, "pixel_size_angstrom": pixel, "ctf": ctf})
    emit(summary, json, title="projections")


def demo(
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("cryomath-demo"),
    n: Annotated[int, typer.Option("--n", help="Number of particles")] = 800,
    snr: Annotated[float, typer.Option(help="SNR (signal var / noise var)")] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    model: Annotated[
        Path | None, typer.Option(help="Atomic model (.pdb/.cif); default: the bundled one")
    ] = None,
    device: Device = "cpu",
    force: Force = False,
    json: Json = False,
) -> None:
    """De novo on the bundled 6VYB N-domain (or --model): simulate, ab initio, refine,
    post-process, align to the truth (hand checked); writes report.md, PNG figures per stage,
    maps, summary.json."""
    from rich.progress import Progress

    from cryomath.demo import DemoSettings, run_demo

    with Progress(disable=json, transient=True) as bar:
        tasks = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        settings = DemoSettings(n_particles=n, snr=snr, seed=seed, model=model)
        summary = run_demo(out, settings, force=force, progress=progress, device=device)
    emit(summary, json, title=f"cryomath demo: {out / 'report.md'}")
