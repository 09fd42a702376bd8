"""``cryomath refine`` (3-D auto-refinement), ``cryomath class2d`` (2-D classification),
``cryomath class3d`` (3-D classification) and ``cryomath select`` (the particles of chosen
classes); the options and progress display they share with ``cli.abinitio``."""

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cryomath.cli.output import (
    BatchSize,
    Compile,
    Device,
    Force,
    Json,
    ProjectDir,
    Scheduler,
    Symmetry,
    emit,
)

OffsetRange = Annotated[float, typer.Option(help="Offset search range (px)")]
OffsetStep = Annotated[float, typer.Option(help="Offset search step (px)")]
ParticleDiameter = Annotated[
    float | None, typer.Option(help="Mask diameter (A); default 90 % of the box")
]
Continue = Annotated[bool, typer.Option("--continue", help="Continue from the checkpoint in --out")]
Scale = Annotated[
    bool, typer.Option("--scale/--no-scale", help="An amplitude scale per optics group (RELION's)")
]
Dose = Annotated[
    float | None,
    typer.Option(
        "--dose",
        help="Poisson likelihood of counting images at this dose (e/A^2; "
        "images: counts minus the mean count, as simulate --dose writes)",
    ),
]
Tau2Fudge = Annotated[
    float, typer.Option(help="RELION's T: the signal power's multiplier (GUI: 2 in 2-D, 4 in 3-D)")
]
SolventMask = Annotated[
    Path | None,
    typer.Option(help="Mask (.mrc, 0 to 1) on the references (RELION's --solvent_mask)"),
]


def _grid_note(reference: Path, box: int, pixel: float) -> str | None:
    """What putting ``reference`` on the particles' grid does to it (None: nothing)."""
    from cryomath.io import read_mrc_header
    from cryomath.io.models import is_model_path

    if is_model_path(reference):
        return f"{reference.name} rendered on {box}^3 voxels of {pixel:g} A"
    info = read_mrc_header(reference)
    voxel = float(info.voxel_size_angstrom[0])
    if abs(voxel - pixel) <= 1e-3 * pixel and info.shape[-1] == box:
        return None
    return (f"{reference.name} ({info.shape[-1]}^3 of {voxel:g} A) resampled to the particles' "
            f"{box}^3 of {pixel:g} A")  # fmt: skip


def _references_on_grid(table, references: list[Path], json: bool):
    """``(pixel size, volumes (R, n, n, n))``: each reference put on the particles' grid (box
    and pixel), with a note on stderr of what that did to it."""
    import torch

    from cryomath.pipelines import read_volume

    pixel, box = float(table.pixel_size_angstrom[0]), int(table.image_size[0])
    volumes = []
    for path in references:
        note = _grid_note(path, box, pixel)
        volumes.append(read_volume(path, box, pixel)[0])
        if note and not json:
            print(f"note: {note}", file=sys.stderr)
    return pixel, torch.stack(volumes)


def _mask_on_grid(table, path: Path, json: bool):
    """A mask file put on the particles' grid as a reference is, clipped to [0, 1]."""
    from cryomath.errors import InvalidInputError

    mask = _references_on_grid(table, [path], json)[1][0].clamp(0, 1)
    if float(mask.max()) <= 0:
        raise InvalidInputError(f"{path}: the mask is all zeros (no voxel above 0)")
    return mask


@contextmanager
def iteration_progress(total: int, json: bool, describe=None):
    """A progress bar over each iteration's ``total`` particles: yields ``(progress,
    on_iteration)`` for the pipelines; ``describe(line)``: a line printed per iteration."""
    from rich.progress import Progress

    with Progress(disable=json, transient=True) as bar:
        task = bar.add_task("iteration 1", total=total)

        def next_iteration(line: dict) -> None:
            bar.reset(task, description=f"iteration {line['iteration'] + 1}")
            if describe is not None and not json:
                bar.console.print(describe(line))

        yield (lambda k: bar.advance(task, k)), next_iteration


def describe_refinement(line: dict) -> str:
    return (f"iteration {line['iteration']}: {line['resolution_0143_angstrom']:.2f} A, order "
            f"{line['healpix_order']}{' local' if line['local'] else ''}, median change "
            f"{line['median_change_degrees']:.2f} deg")  # fmt: skip


def refine(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs) with CTFs")],
    reference: Annotated[Path, typer.Option(help="Initial map (.mrc) or model (.pdb/.cif)")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("refine"),
    ini_high: Annotated[float, typer.Option(help="Low-pass the reference to (A)")] = 30.0,
    particle_diameter: ParticleDiameter = None,
    symmetry: Symmetry = "C1",
    healpix_order: Annotated[int, typer.Option(help="First HEALPix order (2: 15 deg)")] = 2,
    local_from_order: Annotated[
        int, typer.Option(help="Local searches from this order (RELION: 4)")
    ] = 3,
    max_order: Annotated[
        int,
        typer.Option(
            help="Finest HEALPix order (sooner where the poses' estimated accuracy needs no finer)"
        ),
    ] = 5,
    offset_range: OffsetRange = 5.0,
    offset_step: OffsetStep = 1.0,
    maxsig: Annotated[int, typer.Option(help="Orientations oversampled per image")] = 64,
    tau2_fudge: Tau2Fudge = 1.0,
    scale: Scale = True,
    dose: Dose = None,
    max_iterations: Annotated[int, typer.Option(help="Stop after this many")] = 25,
    auto_ignore_angles: Annotated[
        bool, typer.Option(help="Finer sampling on the resolution alone (RELION 4)")
    ] = False,
    auto_resol_angles: Annotated[
        bool, typer.Option(help="Finer sampling as the resolution needs it (RELION 4)")
    ] = False,
    leave_out_groups: Annotated[
        int,
        typer.Option(
            help="Local searches: each image against its half's map without its "
            "group, 1/G of the half (1: RELION's own half map)"
        ),
    ] = 8,
    global_recheck: Annotated[
        bool,
        typer.Option(
            help="Once converged, one more global search against the final half maps, then "
            "local searches again (finds particles lost while the maps were poor)"
        ),
    ] = False,
    solvent_mask: SolventMask = None,
    auto_mask: Annotated[
        bool,
        typer.Option(
            help="Mask the references by the automatic mask of the last iteration's map "
            "(cryoSPARC's dynamic mask; --no-auto-mask: the particle's sphere, as RELION)"
        ),
    ] = True,
    compile_insertion: Compile = False,
    batch_size: BatchSize = 256,
    device: Device = "cpu",
    scheduler: Scheduler = None,
    resume: Continue = False,
    project_dir: ProjectDir = None,
    force: Force = False,
    json: Json = False,
) -> None:
    """3-D auto-refinement (RELION's rules): gold-standard halves from a low-passed reference,
    global then local searches, a checkpoint every iteration (``--continue``); half maps, map,
    post-processed map, FSC, particles STAR, orientation and per-iteration figures."""
    from cryomath.devices import resolve_device
    from cryomath.inference.refine import RefineSettings
    from cryomath.io import read_particles
    from cryomath.io.atomic import writable_directory
    from cryomath.pipelines.distributed import dask_client
    from cryomath.pipelines.refinement import (
        check_outputs,
        convergence_note,
        refine_particles,
        write_refinement,
    )

    device = resolve_device(device)
    check_outputs(out, force, resume)
    table = read_particles(particles, allow_unknown_columns=True, project_dir=project_dir)
    table.require("ctf", "pixel_size_angstrom", "image_size", purpose="refinement")
    pixel, volumes = _references_on_grid(table, [reference], json)
    settings = RefineSettings(
        ini_high_angstrom=ini_high, particle_diameter_angstrom=particle_diameter,
        symmetry=symmetry, healpix_order=healpix_order, local_from_order=local_from_order,
        max_order=max_order, offset_range_px=offset_range, offset_step_px=offset_step,
        max_significant=maxsig, max_iterations=max_iterations, batch_size=batch_size,
        tau2_fudge=tau2_fudge, scale_correction=scale, dose_e_per_a2=dose,
        ignore_angle_changes=auto_ignore_angles, resolution_based_angles=auto_resol_angles,
        leave_out_groups=leave_out_groups, global_recheck=global_recheck,
        solvent_mask=None if solvent_mask is None else _mask_on_grid(table, solvent_mask, json),
        auto_mask=auto_mask, compiled_insertion=compile_insertion,
    )  # fmt: skip
    writable_directory(out)
    with (
        iteration_progress(table.n, json, describe_refinement) as (progress, on_iteration),
        dask_client(scheduler) as client,
    ):
        state = refine_particles(
            table, volumes[0], pixel, out, settings, resume=resume, device=device,
            progress=progress, on_iteration=on_iteration, client=client,
        )  # fmt: skip
    # a continued run replaces its own earlier outputs
    summary = write_refinement(
        table, state, out, f"refinement of {particles.name}", force or resume
    )
    brief = {k: v for k, v in summary.items() if not hasattr(v, "__len__")}
    if not json and (note := convergence_note(summary, "--max-iterations")):
        print(f"note: {note}", file=sys.stderr)
    emit({**summary, "output": str(out)} if json else {**brief, "output": str(out)}, json,
         title="refinement")  # fmt: skip


def class2d(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs) with CTFs")],
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (RELION's K)")] = 50,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("class2d"),
    iterations: Annotated[int, typer.Option(help="EM iterations")] = 25,
    psi_step: Annotated[float, typer.Option(help="In-plane angular step (deg)")] = 6.0,
    offset_range: OffsetRange = 5.0,
    offset_step: OffsetStep = 1.0,
    particle_diameter: ParticleDiameter = None,
    fast_subsets: Annotated[
        bool, typer.Option("--fast-subsets", help="First iterations on 10 % and 30 % subsets")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed of the initial assignment")] = 0,
    tau2_fudge: Tau2Fudge = 1.0,
    scale: Scale = True,
    dose: Dose = None,
    batch_size: BatchSize = 256,
    device: Device = "cpu",
    scheduler: Scheduler = None,
    resume: Continue = False,
    project_dir: ProjectDir = None,
    force: Force = False,
    json: Json = False,
) -> None:
    """2-D classification by expectation-maximisation (full CTF, in-plane angle and offset
    grids, a checkpoint every iteration): class averages (.mrcs), particles and model STAR
    files, and a gallery sorted by class size."""
    from cryomath.devices import resolve_device
    from cryomath.inference.class2d import Class2DSettings
    from cryomath.io import read_particles
    from cryomath.io.atomic import writable_directory
    from cryomath.pipelines.classification import OUTPUTS, classify_particles, write_class2d
    from cryomath.pipelines.distributed import dask_client
    from cryomath.pipelines.refinement import check_outputs

    device = resolve_device(device)
    check_outputs(out, force, resume, OUTPUTS)
    table = read_particles(particles, allow_unknown_columns=True, project_dir=project_dir)
    table.require("ctf", purpose="2-D classification")
    settings = Class2DSettings(
        n_classes=classes, iterations=iterations, psi_step_degrees=psi_step,
        offset_range_px=offset_range, offset_step_px=offset_step,
        particle_diameter_angstrom=particle_diameter, fast_subsets=fast_subsets,
        batch_size=batch_size, seed=seed, tau2_fudge=tau2_fudge, scale_correction=scale,
        dose_e_per_a2=dose,
    )  # fmt: skip
    writable_directory(out)
    with (
        iteration_progress(table.n, json) as (progress, on_iteration),
        dask_client(scheduler) as client,
    ):
        state = classify_particles(
            table, out, settings, resume=resume, device=device, progress=progress,
            on_iteration=on_iteration, client=client,
        )  # fmt: skip
    title = f"2-D classes of {particles.name}"
    summary = write_class2d(table, state, out, title, force or resume)
    emit({**summary, "output": str(out)}, json, title="2-D classification")


def select(
    particles: Annotated[Path, typer.Argument(help="Classified particles (.star)")],
    classes: Annotated[list[int], typer.Option("--class", help="A class to keep (repeat)")],
    out: Annotated[Path, typer.Option(help="Output STAR file")] = Path("selected.star"),
    force: Force = False,
    json: Json = False,
) -> None:
    """Write the particles of the chosen classes (``rlnClassNumber``) to a new STAR file."""
    from cryomath.io import read_particles, write_relion_star
    from cryomath.pipelines.classification import select_classes

    table = read_particles(particles, allow_unknown_columns=True)
    rows = select_classes(table, classes)
    chosen = table.subset(rows)
    chosen.image_paths = np.array(
        [os.path.relpath(chosen.resolve_path(p), out.resolve().parent) for p in chosen.image_paths],
        dtype=object,
    )
    write_relion_star(chosen, out, force=force)
    emit({"selected": len(rows), "of": table.n, "classes": classes, "output": str(out)}, json,
         title="selection")  # fmt: skip


def class3d(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs) with CTFs")],
    reference: Annotated[
        list[Path], typer.Option(help="Initial map or model; one per class, or one for all")
    ],
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (RELION's K)")] = 4,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("class3d"),
    iterations: Annotated[int, typer.Option(help="EM iterations")] = 25,
    ini_high: Annotated[float, typer.Option(help="Low-pass the reference to (A)")] = 60.0,
    particle_diameter: ParticleDiameter = None,
    symmetry: Symmetry = "C1",
    healpix_order: Annotated[int, typer.Option(help="HEALPix order (2: 15 deg)")] = 2,
    local: Annotated[bool, typer.Option("--local", help="Local searches around the poses")] = False,
    skip_align: Annotated[
        bool,
        typer.Option(
            "--skip-align",
            help="Keep each particle's pose and offset, find its class only (RELION's "
            "--skip_align; with --solvent-mask: focused classification)",
        ),
    ] = False,
    solvent_mask: SolventMask = None,
    offset_range: OffsetRange = 5.0,
    offset_step: OffsetStep = 1.0,
    maxsig: Annotated[int, typer.Option(help="Orientations oversampled per image")] = 64,
    tau2_fudge: Tau2Fudge = 1.0,
    scale: Scale = True,
    dose: Dose = None,
    seed: Annotated[int, typer.Option(help="Random seed of the first classes")] = 0,
    compile_insertion: Compile = False,
    batch_size: BatchSize = 256,
    device: Device = "cpu",
    scheduler: Scheduler = None,
    resume: Continue = False,
    project_dir: ProjectDir = None,
    force: Force = False,
    json: Json = False,
) -> None:
    """3-D classification by expectation-maximisation at a fixed sampling: a map, a resolution
    and a particle count per class, particles and model STAR files, central sections."""
    from cryomath.devices import resolve_device
    from cryomath.inference.class3d import Class3DSettings
    from cryomath.inference.refine import RefineSettings
    from cryomath.io import read_particles
    from cryomath.io.atomic import writable_directory
    from cryomath.pipelines.classification3d import (
        classify_particles_3d,
        outputs_3d,
        write_class3d,
    )
    from cryomath.pipelines.distributed import dask_client
    from cryomath.pipelines.refinement import check_outputs

    device = resolve_device(device)
    check_outputs(out, force, resume, outputs_3d(classes))
    table = read_particles(particles, allow_unknown_columns=True, project_dir=project_dir)
    table.require("ctf", "pixel_size_angstrom", "image_size", purpose="3-D classification")
    pixel, volumes = _references_on_grid(table, reference, json)
    search = RefineSettings(
        ini_high_angstrom=ini_high, particle_diameter_angstrom=particle_diameter,
        symmetry=symmetry, healpix_order=healpix_order, offset_range_px=offset_range,
        offset_step_px=offset_step, max_significant=maxsig, batch_size=batch_size,
        max_order=max(healpix_order, 5), tau2_fudge=tau2_fudge, scale_correction=scale,
        dose_e_per_a2=dose, compiled_insertion=compile_insertion,
        solvent_mask=None if solvent_mask is None else _mask_on_grid(table, solvent_mask, json),
    )  # fmt: skip
    settings = Class3DSettings(classes, iterations, local, seed, search, skip_align)
    settings.check()  # before the output folder is made
    writable_directory(out)
    with (
        iteration_progress(table.n, json) as (progress, on_iteration),
        dask_client(scheduler) as client,
    ):
        state = classify_particles_3d(
            table, volumes, pixel, out, settings, resume=resume, device=device,
            progress=progress, on_iteration=on_iteration, client=client,
        )  # fmt: skip
    title = f"3-D classes of {particles.name}"
    summary = write_class3d(table, state, out, title, force or resume)
    emit({**summary, "output": str(out)}, json, title="3-D classification")
