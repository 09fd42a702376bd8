"""Files around ab initio (``cryomath abinitio``): an atomic checkpoint after every iteration
(``--continue``), and the outputs.

Outputs in ``out``: ``abinitio_classNNN.mrc`` (one initial map per class, at the particles'
pixel size, ready for ``cryomath refine --reference``), ``slices.png`` (central slices of each
class as the run went), ``iterations.json`` (the log) and ``particles.star`` (each particle's
class and pose at its last visit, RELION's columns). With ``--halves``: the first half's map as
``abinitio_class001.mrc``, the second's as ``abinitio_half2_class001.mrc`` (as found: its own
frame and hand, in which its particles' poses are), ``half_fsc.png`` (their FSC, the second
aligned onto the first, as the run went) and ``rlnRandomSubset`` in ``particles.star``.

``--refine-iterations N`` (one class, no halves): a last stage of N iterations of the
auto-refinement (``inference.refine``: gold-standard halves on all the particles, a global
search from HEALPix order 2, RELION's rules) from the ab initio map low-passed to 30 A and the
particles without the file's poses and offsets (as ab initio takes them), with its own outputs
and checkpoint in ``out/refine`` (``pipelines.refinement``). Why: at low SNR the minibatch
objective up to 12 A barely tells a structure from a blob (dataset (b) of bench/RESULTS.md:
0.5 nats per image), while all the particles up to the half maps' band do.
"""

from dataclasses import fields, replace
from pathlib import Path

import torch

from cryomath.errors import InvalidInputError
from cryomath.fitting import flip_hand
from cryomath.inference.abinitio import (
    AbInitioSettings,
    AbInitioState,
    abinitio_iteration,
    start_abinitio,
)
from cryomath.inference.abinitio_halves import HalfRuns, half_runs_iteration, start_half_runs
from cryomath.inference.refine import RefineSettings
from cryomath.pipelines.refinement import (
    CHECKPOINT,
    OUTPUTS,
    iterate_with_checkpoints,
    load_checkpoint,
    particles_table,
    refine_particles,
    write_refinement,
)

HAND_NOTE = ("the hand is undetermined: projections of a map and of its mirror image are the "
             "same up to a rotation; check it against a model or a feature of known hand, and "
             "rerun with --flip-hand for the other")  # fmt: skip


HALF2_MAP = "abinitio_half2_class001.mrc"
REFINE_FOLDER = "refine"


def map_names(classes: int) -> list[str]:
    return [f"abinitio_class{k + 1:03d}.mrc" for k in range(classes)]


def output_names(classes: int, halves: bool = False, refine: bool = False) -> tuple[str, ...]:
    extra = (HALF2_MAP, "half_fsc.png") if halves else ()
    refined = tuple(f"{REFINE_FOLDER}/{name}" for name in (*OUTPUTS, CHECKPOINT)) if refine else ()
    return (*map_names(classes), *extra, "slices.png", "iterations.json", "particles.star",
            *refined)  # fmt: skip


def check_refine_stage(settings: AbInitioSettings, iterations: int) -> None:
    """The last stage refines one map with gold-standard halves of all the particles."""
    if iterations < 0:
        raise InvalidInputError(f"refine iterations must be 0 or more, got {iterations}")
    if iterations and (settings.classes != 1 or settings.halves):
        raise InvalidInputError("--refine-iterations refines one map: --classes 1 without "
                                "--halves (refine a class with cryomath refine)")  # fmt: skip


def refine_abinitio(
    table, state: AbInitioState, out: Path, settings: AbInitioSettings, iterations: int, *,
    flip: bool = False, resume: bool = False, device=None, dtype=torch.float32,
    force: bool = False, progress=None, on_iteration=None,
) -> dict:  # fmt: skip
    """The last stage (module docstring): ``iterations`` of the auto-refinement from the ab
    initio map (mirrored when ``flip``, as written) in ``out/refine``, continued from its own
    checkpoint when ``resume`` finds one; writes its outputs, returns their summary."""
    folder = out / REFINE_FOLDER
    start = flip_hand(state.maps[0]) if flip else state.maps[0]
    # from the particles alone, as ab initio: offsets in the file are not a start
    table = table.without_poses()
    # the user's batch size (memory) holds for the stage too; refine's other defaults
    refine = RefineSettings(particle_diameter_angstrom=settings.particle_diameter_angstrom,
                            max_iterations=iterations, batch_size=settings.batch_size)  # fmt: skip
    refined = refine_particles(table, start, state.voxel_size_angstrom, folder, refine,
                               resume=resume and (folder / CHECKPOINT).is_file(),
                               device=device, dtype=dtype, progress=progress,
                               on_iteration=on_iteration)  # fmt: skip
    summary = write_refinement(table, refined, folder, "refinement of the ab initio map",
                               force or resume)  # fmt: skip
    keys = (
        "iterations",
        "converged",
        "mean_pose_change_degrees",
        "resolution_0143_angstrom",
        "resolution_05_angstrom",
    )
    return {"map": str(folder / "map.mrc"), **{key: summary[key] for key in keys}}


def run_abinitio(
    table, out: Path, settings: AbInitioSettings, *, resume: bool = False, device=None,
    dtype=torch.float32, progress=None, on_iteration=None,
) -> AbInitioState:  # fmt: skip
    """Run (or continue) ``settings.iterations`` iterations, checkpointing after each;
    ``settings.halves``: two independent runs (``inference.abinitio_halves``)."""
    kind, start, iterate = AbInitioState, start_abinitio, abinitio_iteration
    if settings.halves:
        kind, start, iterate = HalfRuns, start_half_runs, half_runs_iteration
    planned = settings
    if resume:
        state = load_checkpoint(out)
        if not isinstance(state, kind) or len(state.particles.classes) != table.n:
            raise InvalidInputError(f"{out} holds a checkpoint of another run or other particles")
        classes = state.runs[0].maps.shape[0] if settings.halves else state.maps.shape[0]
        if classes != settings.classes:
            raise InvalidInputError(f"the checkpoint has {classes} classes")
        planned = kept_settings(state.runs[0] if settings.halves else state, settings)
    else:
        state = start(table, settings, dtype, device)
    return iterate_with_checkpoints(
        state, out, lambda s: s.iteration < settings.iterations,
        lambda s: iterate(table, s, planned, dtype, device, progress), on_iteration,
    )  # fmt: skip


def kept_settings(state: AbInitioState, settings: AbInitioSettings) -> AbInitioSettings:
    """The settings a continued run goes on with: those it started with (its schedule of
    minibatches and bands is fixed at the start; past its planned iterations it goes on with
    the last), with this call's ``batch_size``; ``settings.iterations`` only says where to
    stop. Any other option changed since the start is refused, naming it."""
    if state.settings is None:  # a checkpoint from before the settings were kept
        return settings
    changed = [f"{f.name} {getattr(settings, f.name)} (the run's: "
               f"{getattr(state.settings, f.name)})" for f in fields(settings)
               if f.name not in ("iterations", "batch_size")
               and getattr(settings, f.name) != getattr(state.settings, f.name)]  # fmt: skip
    if changed:
        raise InvalidInputError(f"--continue goes on with the run's settings; changed: "
                                f"{', '.join(changed)}")  # fmt: skip
    return replace(state.settings, batch_size=settings.batch_size)


def write_abinitio(table, state: AbInitioState | HalfRuns, out: Path, title: str, force: bool,
                   flip: bool = False) -> dict:  # fmt: skip
    """The outputs (module docstring); ``flip``: the maps mirrored (the other hand)."""
    from cryomath.io import write_mrc, write_relion_star
    from cryomath.io.atomic import output_set
    from cryomath.io.results import write_json
    from cryomath.plots import plot_fsc, plot_images

    runs = state.runs if isinstance(state, HalfRuns) else [state]
    first = runs[0]
    volumes = [
        (out / name, volume)
        for name, volume in zip(map_names(len(first.maps)), first.maps, strict=True)
    ]
    if len(runs) == 2:
        volumes.append((out / HALF2_MAP, runs[1].maps[0]))
    rows = {f"{'' if len(runs) == 1 else f'half {h} '}it {it} class {k + 1}": planes[k]
            for h, run in enumerate(runs, 1) for it, planes in run.snapshots.items()
            for k in range(len(planes))}  # fmt: skip
    with output_set():
        for path, volume in volumes:
            volume = flip_hand(volume) if flip else volume
            write_mrc(path, volume.float().numpy(), first.voxel_size_angstrom, force=force)
        plot_images(rows, out / "slices.png", f"{title}: central slices (z, y, x)", force)
        extra = {}
        if len(runs) == 2:
            curves = {f"it {f.iteration}": f.fsc for f in state.fsc}
            plot_fsc(state.fsc[-1].frequency_per_angstrom, curves, out / "half_fsc.png",
                     f"{title}: FSC between independent halves", force)  # fmt: skip
            extra = {"half_fsc": [{"iteration": f.iteration, "fsc_05_angstrom":
                                   f.resolution_angstrom, "mirrored": f.mirrored}
                                  for f in state.fsc]}  # fmt: skip
        write_json(out / "iterations.json", {"iterations": state.history, **extra}, force)
        write_relion_star(particles_table(table, state, out), out / "particles.star",
                          force=force)  # fmt: skip
    last = first.history[-1] if first.history else {}
    summary = {
        "iterations": state.iteration,
        "maps": [str(path) for path, _ in volumes],
        "class_fractions": first.class_fractions.tolist(),
        "final_resolution_angstrom": last.get("resolution_angstrom"),
        "hand": "flipped" if flip else "as found",
        "hand_note": HAND_NOTE,
    }
    if len(runs) == 2:
        summary["half_fsc_05_angstrom"] = state.fsc[-1].resolution_angstrom
        summary["halves_in_opposite_hands"] = state.fsc[-1].mirrored
    return summary
