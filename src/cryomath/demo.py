"""``cryomath demo``: from particle images to a validated map with no prior knowledge of the
structure (de novo), on a bundled model or the user's, with a figure per stage.

1. Truth: the bundled 6VYB N-domain (``data/README.md``), or ``DemoSettings.model``, rendered
   with Peng (1996) scattering factors and its B-factors, 2 A voxels, in a box 12 A wider
   than the model on each side (``atoms.map_from_model``).
2. Data: ``n_particles`` images with uniform poses, shifts (sd 2 A), a CTF (300 kV, defocus
   1-2.5 um, an envelope of B = ``bfactor_angstrom2``) and white noise at ``snr``, written as
   stacks, a RELION 3.1 STAR and a cryoSPARC ``.cs`` (``pipelines.simulate_dataset``). The same
   particles reconstructed at their true poses are the yardstick (``pipelines.reconstruct``).
3. Ab initio from the particles alone (``inference.abinitio``: minibatch SGD, poses
   marginalised, the band rising from 35 to 12 A) into ``abinitio/``.
4. 3-D auto-refinement from that map (``inference.refine``, RELION's auto-refine rules) into
   ``refine/``: gold-standard half
   maps, the FSC per iteration, the post-processed map, the refined poses.
5. Validation: the refined map and its mirror image aligned onto the truth
   (``fitting.align_maps``; the hand cannot be known from projections, so the demo checks it
   against the truth and reports it); the FSC against the truth; each particle's pose error
   after the one rotation between the frames.
6. ``report.md`` with the numbers and PNG figures, the maps and ``summary.json``.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

BUNDLED_MODEL = Path(__file__).parent / "data" / "6vyb_ndom.pdb.gz"
FIGURES = ("projections.png", "ctf.png", "fsc.png", "overlay.png")
MAPS = ("truth.mrc", "known_poses.mrc", "map.mrc")
STAGE_FIGURES = ("abinitio/slices.png", "refine/fsc_iterations.png", "refine/orientations.png")
# the mirror through the central z plane (fitting.flip_hand) turns poses A into M A M
MIRROR = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))


@dataclass(frozen=True)
class DemoSettings:
    """The demo's data and schedule (defaults: about a minute on two cores)."""

    n_particles: int = 800
    snr: float = 0.2
    bfactor_angstrom2: float = 100.0
    voxel_size_angstrom: float = 2.0
    abinitio_iterations: int = 15
    max_healpix_order: int = 4  # 3.75 degrees: finer than this resolution needs
    seed: int = 0
    model: Path | None = None  # an atomic model (PDB/mmCIF); None: the bundled N-domain


def run_demo(
    out_dir: str | Path,
    settings: DemoSettings = DemoSettings(),
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Run the demo into ``out_dir``, computing on ``device``; returns the summary.
    ``progress(stage, done, total)`` is called as work advances. The simulated particles go
    to ``out_dir/particles``, the stages' checkpoints to ``abinitio/`` and ``refine/``: each
    folder new to this run is removed again if the demo fails or is interrupted."""
    from contextlib import ExitStack

    from cryomath.io.atomic import output_set, removed_on_failure

    out = Path(out_dir)
    with output_set(), ExitStack() as stack:
        for folder in ("particles", "abinitio", "refine"):
            stack.enter_context(removed_on_failure(out / folder))
        return _run_demo(out, settings, force, progress, device)


def _run_demo(out, s: DemoSettings, force, progress, device):
    from cryomath.atoms import map_from_model, read_atoms
    from cryomath.devices import resolve_device
    from cryomath.fitting import fit_both_hands
    from cryomath.io import read_particles, write_mrc
    from cryomath.io.atomic import atomic_output, check_output_path
    from cryomath.io.results import write_json
    from cryomath.pipelines import reconstruct_particles, simulate_dataset
    from cryomath.pipelines.abinitio import output_names
    from cryomath.pipelines.refinement import OUTPUTS, check_outputs
    from cryomath.resolution import fourier_shell_correlation, resolution_angstrom
    from cryomath.simulate import SimulationSettings
    from cryomath.so3 import pose_errors_degrees

    device = resolve_device(device)
    for name in (*FIGURES, *MAPS, "report.md", "summary.json"):
        check_output_path(out / name, force)
    check_outputs(out / "abinitio", force, False, output_names(1))
    check_outputs(out / "refine", force, False, OUTPUTS)
    report = progress or (lambda stage, done, total: None)
    started = time.perf_counter()
    voxel = s.voxel_size_angstrom
    report("truth map", 0, 1)
    model = BUNDLED_MODEL if s.model is None else Path(s.model)
    truth, origin = map_from_model(read_atoms(model), voxel, None, margin_angstrom=12.0)
    report("truth map", 1, 1)
    simulation = SimulationSettings(
        n_particles=s.n_particles, pixel_size_angstrom=voxel, seed=s.seed, snr=s.snr,
        shift_sigma_angstrom=2.0, defocus_min_angstrom=10000.0, defocus_max_angstrom=25000.0,
        bfactor_angstrom2=s.bfactor_angstrom2,
    )  # fmt: skip
    simulate_dataset(truth.to(device), out / "particles", simulation, force=force, device=device,
                     progress=_counter(report, "simulate", s.n_particles))  # fmt: skip
    table = read_particles(out / "particles" / "particles.star")
    known = reconstruct_particles(table, device=device).to("cpu")
    timings = {"simulation": time.perf_counter() - started}
    # what the inference sees: the images and CTFs, not the true poses or offsets
    blind = table.without_poses()

    clock = time.perf_counter()
    initial = _abinitio(blind, out / "abinitio", s, force, report, device)
    timings["abinitio"] = time.perf_counter() - clock
    clock = time.perf_counter()
    refined, poses, bfactor = _refine(blind, initial, voxel, out / "refine", s, force, report,
                                      device)  # fmt: skip
    timings["refine"] = time.perf_counter() - clock

    report("validate", 0, 1)
    start_hand = fit_both_hands(truth, initial.double(), voxel, origin)
    hands = fit_both_hands(truth, refined.full.double(), voxel, origin)
    flipped = hands[1].resolution_angstrom < hands[0].resolution_angstrom
    best = hands[flipped]
    if flipped:  # the map in the truth's hand, as a user would after checking it
        poses = MIRROR @ poses @ MIRROR
    errors = pose_errors_degrees(torch.as_tensor(table.rotations), poses.double()).numpy()
    known_curve = fourier_shell_correlation(known.full, truth, voxel)
    report("validate", 1, 1)
    maps = {"truth.mrc": truth, "known_poses.mrc": known.full, "map.mrc": best.volume}
    for name, volume in maps.items():
        write_mrc(out / name, volume.float().numpy(), voxel, tuple(origin), force=force)
    curves = {
        "refined half maps": refined.fsc.fsc.cpu().numpy(),
        "refined map vs truth": best.fsc.fsc.numpy(),
        "ab initio map vs truth": start_hand[flipped].fsc.fsc.numpy(),
        "known poses vs truth": known_curve.fsc.numpy(),
    }
    _figures(out, truth, best.moved, curves, known_curve, table, simulation, force)
    summary = {
        "model": "6VYB N-terminal domain (bundled)" if s.model is None else model.name,
        "particles": s.n_particles,
        "box": int(truth.shape[-1]),
        "pixel_size_angstrom": voxel,
        "snr": s.snr,
        "ctf_bfactor_angstrom2": s.bfactor_angstrom2,
        "seed": s.seed,
        "known_poses_vs_truth_fsc_05_angstrom": resolution_angstrom(known_curve, 0.5),
        "abinitio_vs_truth_fsc_05_angstrom": start_hand[flipped].resolution_angstrom,
        "abinitio_other_hand_fsc_05_angstrom": start_hand[not flipped].resolution_angstrom,
        "refined_half_maps_fsc_0143_angstrom": resolution_angstrom(refined.fsc, 0.143),
        "refined_vs_truth_fsc_05_angstrom": best.resolution_angstrom,
        "refined_other_hand_fsc_05_angstrom": hands[not flipped].resolution_angstrom,
        "postprocess_bfactor_angstrom2": bfactor,
        "hand": "mirrored (flipped to the truth's)" if flipped else "the truth's",
        "alignment_correlation": best.correlation,
        "median_pose_error_degrees": float(np.median(errors)),
        "poses_over_30_degrees_fraction": float(np.mean(errors > 30)),
        **{f"{stage}_seconds": t for stage, t in timings.items()},
        "total_seconds": time.perf_counter() - started,
        "output": str(out),
    }
    with atomic_output(out / "report.md", force) as tmp:
        tmp.write_text(_report(summary))
    write_json(out / "summary.json", summary, force)
    return summary


def _counter(report, stage: str, total: int):
    done = [0]

    def step(k: int) -> None:
        done[0] += k
        report(stage, done[0], total)

    return step


def _abinitio(table, folder: Path, s: DemoSettings, force, report, device) -> torch.Tensor:
    """Stage 3: the initial map (either hand)."""
    from cryomath.inference.abinitio import AbInitioSettings
    from cryomath.pipelines.abinitio import run_abinitio, write_abinitio
    from cryomath.pipelines.refinement import CHECKPOINT

    settings = AbInitioSettings(
        iterations=s.abinitio_iterations, initial_batch=min(60, table.n),
        final_batch=min(150, table.n), offset_range_px=4.0, seed=s.seed,
    )  # fmt: skip
    state = run_abinitio(table, folder, settings, device=device, on_iteration=lambda line:
                         report("ab initio", line["iteration"], settings.iterations))  # fmt: skip
    write_abinitio(table, state, folder, "ab initio", force)
    (folder / CHECKPOINT).unlink()  # no --continue: the run is done
    return state.maps[0]


def _refine(table, initial, voxel, folder: Path, s: DemoSettings, force, report, device):
    """Stage 4: the refinement's maps, poses and the post-processing's B-factor."""
    from cryomath.inference.refine import RefineSettings, final_maps
    from cryomath.pipelines.refinement import CHECKPOINT, refine_particles, write_refinement

    # RELION's own rules, not RELION 4's faster ones: those stop the global search before the
    # poses settle (three seeds: median pose error 5.7-6.3 against 5.9-10.8 degrees)
    settings = RefineSettings(offset_range_px=3.0, max_order=s.max_healpix_order)
    state = refine_particles(table, initial, voxel, folder, settings, device=device,
                             on_iteration=lambda line: report(
                                 "refine", line["iteration"], settings.max_iterations))  # fmt: skip
    report("refine", settings.max_iterations, settings.max_iterations)
    written = write_refinement(table, state, folder, "refinement", force)
    (folder / CHECKPOINT).unlink()  # no --continue: the run is done
    return (final_maps(state).to("cpu"), torch.from_numpy(state.particles.rotations),
            written["postprocess_bfactor_angstrom2"])  # fmt: skip


def _figures(out, truth, moved, curves, known_curve, table, settings, force):
    from cryomath.ctf import compute_ctf, ctf_aliasing_frequency
    from cryomath.fourier.grids import fftfreq_grid
    from cryomath.imaging import iter_batches, predict_images
    from cryomath.plots import plot_ctf, plot_fsc, plot_images, plot_overlay
    from cryomath.projection import prepare_volume

    pixel = settings.pixel_size_angstrom
    first = table.subset(np.arange(min(6, table.n)))
    with_ctf = next(iter_batches(first, 6))
    without_ctf = replace(with_ctf, ctf=None)  # the same particles: no second read
    ctf = with_ctf.ctf
    spectrum = prepare_volume(truth, settings.pad_factor, voxel_size_angstrom=pixel)
    plot_images(
        {
            "projection": predict_images(spectrum, without_ctf).numpy(),
            "with CTF": predict_images(spectrum, with_ctf).numpy(),
            f"with CTF and noise (SNR {settings.snr:g})": with_ctf.images().float().numpy(),
        },
        out / "projections.png", "the first simulated particles", force,
    )  # fmt: skip
    n = truth.shape[-1]
    one = torch.zeros(len(with_ctf), dtype=torch.bool)
    one[0] = True
    image = compute_ctf(ctf.subset(one), (n, n), pixel, rfft=False, fftshift=True)[0]
    k = fftfreq_grid((n, n), rfft=False, fftshift=True, voxel_size_angstrom=pixel)
    row = image[n // 2, n // 2 :].numpy()
    title = (f"particle 1: defocus {float(ctf.defocus_u_angstrom[0]) / 1e4:.2f} um; rings alias "
             f"beyond {float(ctf_aliasing_frequency(ctf, n, pixel)[0]):.3f} 1/A")  # fmt: skip
    plot_ctf(image.numpy(), k[n // 2, n // 2 :, 0].numpy(), row, out / "ctf.png", title, force)
    frequency = known_curve.spatial_frequency_per_angstrom.numpy()
    plot_fsc(frequency, curves, out / "fsc.png", "Fourier shell correlation", force)
    title = "truth (grey) and the refined map aligned onto it (contours)"
    plot_overlay(truth.numpy(), moved.numpy(), out / "overlay.png", title, force)


def _report(s: dict) -> str:
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in s.items())  # fmt: skip
    return f"""# cryomath demo: de novo

{s["particles"]} particles of the {s["model"]} ({s["box"]}^3 voxels of
{s["pixel_size_angstrom"]} A) were simulated with a CTF and noise at SNR {s["snr"]}. From the
images alone, `abinitio` made an initial map and `refine` refined it with gold-standard half
maps; the result was then aligned onto the truth in both hands (projections cannot tell a map
from its mirror image: the hand is checked against the truth and reported). The same
particles reconstructed at their true poses ("known poses") are the best these images allow.

| quantity | value |
|---|---|
{rows}

## The particles
![projections](projections.png)

The box is small for this defocus: beyond the frequency in the title the CTF oscillates faster
than the box's Fourier samples, so its rings alias (the moire in the 2-D image).

![ctf](ctf.png)

## Ab initio: central slices as the run went
![ab initio](abinitio/slices.png)

## Refinement: the half-map FSC of every iteration
![refinement](refine/fsc_iterations.png)

## Refined viewing directions
![directions](refine/orientations.png)

## Fourier shell correlation
![fsc](fsc.png)

## The refined map aligned onto the truth
![overlay](overlay.png)
"""
