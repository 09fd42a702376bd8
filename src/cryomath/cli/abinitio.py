"""``cryomath abinitio``: an initial map from particles alone (``pipelines.abinitio``), and
optionally its last stage of refinement iterations."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from cryomath.cli.inference import (
    Continue,
    OffsetRange,
    OffsetStep,
    ParticleDiameter,
    describe_refinement,
    iteration_progress,
)
from cryomath.cli.output import BatchSize, Device, Force, Json, ProjectDir, emit


def abinitio(
    particles: Annotated[Path, typer.Argument(help="Particles (.star, .cs) with CTFs")],
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("abinitio"),
    classes: Annotated[int, typer.Option(help="Number of classes")] = 1,
    iterations: Annotated[
        int,
        typer.Option(
            help="Minibatch iterations (with --continue: where to stop; the "
            "schedule stays the run's, its last step repeated past it)"
        ),
    ] = 60,
    initial_batch: Annotated[int, typer.Option(help="First minibatch (particles)")] = 90,
    final_batch: Annotated[int, typer.Option(help="Last minibatch (particles)")] = 300,
    initial_resolution: Annotated[float, typer.Option(help="First band limit (A)")] = 35.0,
    final_resolution: Annotated[float, typer.Option(help="Last band limit (A)")] = 12.0,
    learning_rate: Annotated[float, typer.Option(help="Step size (RELION's 0.5)")] = 0.5,
    momentum: Annotated[float, typer.Option(help="Momentum (RELION's 0.9)")] = 0.9,
    healpix_order: Annotated[int, typer.Option(help="HEALPix order (2: 15 deg)")] = 2,
    offset_range: OffsetRange = 6.0,
    offset_step: OffsetStep = 2.0,
    particle_diameter: ParticleDiameter = None,
    class_inactivity_threshold: Annotated[
        float, typer.Option(help="Classes: restart one below this share of 1/K (RELION 4)")
    ] = 0.1,
    engine: Annotated[
        str, typer.Option(help="em: poses marginalised; hps: best poses (hierarchical search)")
    ] = "em",
    hps_keep: Annotated[
        int, typer.Option(help="hps: hypotheses kept per image and level (cryoDRGN2: 8)")
    ] = 24,
    representation: Annotated[
        str, typer.Option(help="grid: voxels; neural: a neural field (cryoDRGN2's decoder)")
    ] = "grid",
    width: Annotated[int, typer.Option(help="Neural field: hidden units per layer")] = 128,
    neural_steps: Annotated[int, typer.Option(help="Neural field: passes per minibatch")] = 16,
    neural_learning_rate: Annotated[float, typer.Option(help="Neural field: Adam's rate")] = 3e-3,
    neural_replay: Annotated[
        int, typer.Option(help="Neural field: fit the last this many minibatches")
    ] = 1,
    halves: Annotated[
        bool, typer.Option(help="Two independent runs on random halves; their FSC per iteration")
    ] = False,
    flip_hand: Annotated[bool, typer.Option(help="Write the mirror images (other hand)")] = False,
    refine_iterations: Annotated[
        int,
        typer.Option(
            help="Then this many iterations of refine from the map, all particles (in "
            "OUT/refine; low SNR: a blob becomes the structure)"
        ),
    ] = 0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    batch_size: BatchSize = 128,
    device: Device = "cpu",
    resume: Continue = False,
    project_dir: ProjectDir = None,
    force: Force = False,
    json: Json = False,
) -> None:
    """Initial maps from particles alone: minibatch SGD on the MAP objective with poses
    marginalised (cryoSPARC, RELION --sgd) or found by hierarchical search (cryoDRGN2), a band
    limit rising from 35 to 12 A, each map a voxel grid or a neural field; maps, central
    slices per iteration, log, particles STAR. --halves: two independent runs on random
    halves and the FSC between their maps as they went. --refine-iterations: then that many
    iterations of refine from the map (in OUT/refine).
    The hand is undetermined (--flip-hand writes the other)."""
    from rich.progress import Progress

    from cryomath.devices import resolve_device
    from cryomath.inference.abinitio import AbInitioSettings
    from cryomath.io import read_particles
    from cryomath.io.atomic import writable_directory
    from cryomath.pipelines.abinitio import (
        check_refine_stage,
        output_names,
        refine_abinitio,
        run_abinitio,
        write_abinitio,
    )
    from cryomath.pipelines.refinement import check_outputs, convergence_note

    device = resolve_device(device)
    check_outputs(out, force, resume, output_names(classes, halves, refine_iterations > 0))
    table = read_particles(particles, allow_unknown_columns=True, project_dir=project_dir)
    settings = AbInitioSettings(
        classes=classes, iterations=iterations, initial_batch=initial_batch,
        final_batch=final_batch, initial_resolution_angstrom=initial_resolution,
        final_resolution_angstrom=final_resolution, learning_rate=learning_rate,
        momentum=momentum, class_inactivity_threshold=class_inactivity_threshold,
        healpix_order=healpix_order, offset_range_px=offset_range,
        offset_step_px=offset_step, particle_diameter_angstrom=particle_diameter, engine=engine,
        hps_keep=hps_keep,
        representation=representation, neural_width=width, neural_steps=neural_steps,
        neural_learning_rate=neural_learning_rate, neural_replay=neural_replay, halves=halves,
        seed=seed, batch_size=batch_size,
    )  # fmt: skip
    settings.check()
    check_refine_stage(settings, refine_iterations)
    writable_directory(out)
    with Progress(disable=json, transient=True) as bar:
        task = bar.add_task("ab initio", total=iterations)
        state = run_abinitio(table, out, settings, resume=resume, device=device,
                             on_iteration=lambda line: bar.update(
                                 task, completed=line["iteration"]))  # fmt: skip
    summary = write_abinitio(table, state, out, f"ab initio of {particles.name}",
                             force or resume, flip_hand)  # fmt: skip
    if refine_iterations:
        with iteration_progress(table.n, json, describe_refinement) as (progress, next_line):
            summary["refine"] = refine_abinitio(
                table, state, out, settings, refine_iterations, flip=flip_hand, resume=resume,
                device=device, force=force, progress=progress, on_iteration=next_line,
            )  # fmt: skip
    if not json:
        print(f"note: {summary['hand_note']}", file=sys.stderr)
        if refine_iterations and (note := convergence_note(summary["refine"],
                                                           "--refine-iterations")):  # fmt: skip
            print(f"note: {note}", file=sys.stderr)
    emit({**summary, "output": str(out)}, json, title="ab initio")
