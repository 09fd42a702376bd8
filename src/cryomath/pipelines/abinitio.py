"""Files around ab initio (``cryomath abinitio``): an atomic checkpoint after every iteration
(``--continue``), and the outputs.

Outputs in ``out``: ``abinitio_classNNN.mrc`` (one initial map per class, at the particles'
pixel size, ready for ``cryomath refine --reference``), ``slices.png`` (central slices of each
class as the run went), ``iterations.json`` (the log) and ``particles.star`` (each particle's
class and pose at its last visit, RELION's columns).
"""

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
from cryomath.pipelines.refinement import (
    iterate_with_checkpoints,
    load_checkpoint,
    particles_table,
)

HAND_NOTE = ("the hand is undetermined: projections of a map and of its mirror image are the "
             "same up to a rotation; check it against a model or a feature of known hand, and "
             "rerun with --flip-hand for the other")  # fmt: skip


def map_names(classes: int) -> list[str]:
    return [f"abinitio_class{k + 1:03d}.mrc" for k in range(classes)]


def output_names(classes: int) -> tuple[str, ...]:
    return (*map_names(classes), "slices.png", "iterations.json", "particles.star")


def run_abinitio(
    table, out: Path, settings: AbInitioSettings, *, resume: bool = False, device=None,
    dtype=torch.float32, progress=None, on_iteration=None,
) -> AbInitioState:  # fmt: skip
    """Run (or continue) ``settings.iterations`` iterations, checkpointing after each."""
    if resume:
        state = load_checkpoint(out)
        if not isinstance(state, AbInitioState) or len(state.particles.classes) != table.n:
            raise InvalidInputError(f"{out} holds a checkpoint of another run or other particles")
        if state.maps.shape[0] != settings.classes:
            raise InvalidInputError(f"the checkpoint has {state.maps.shape[0]} classes")
    else:
        state = start_abinitio(table, settings, dtype, device)
    return iterate_with_checkpoints(
        state, out, lambda s: s.iteration < settings.iterations,
        lambda s: abinitio_iteration(table, s, settings, dtype, device, progress), on_iteration,
    )  # fmt: skip


def write_abinitio(table, state: AbInitioState, out: Path, title: str, force: bool,
                   flip: bool = False) -> dict:  # fmt: skip
    """The outputs (module docstring); ``flip``: the maps mirrored (the other hand)."""
    from cryomath.io import write_mrc, write_relion_star
    from cryomath.io.atomic import output_set
    from cryomath.io.results import write_json
    from cryomath.plots import plot_images

    maps = flip_hand(state.maps) if flip else state.maps
    names = map_names(len(maps))
    rows = {f"it {it} class {k + 1}": planes[k] for it, planes in state.snapshots.items()
            for k in range(len(planes))}  # fmt: skip
    with output_set():
        for name, volume in zip(names, maps, strict=True):
            write_mrc(out / name, volume.float().numpy(), state.voxel_size_angstrom, force=force)
        plot_images(rows, out / "slices.png", f"{title}: central slices (z, y, x)", force)
        write_json(out / "iterations.json", {"iterations": state.history}, force)
        write_relion_star(particles_table(table, state, out), out / "particles.star",
                          force=force)  # fmt: skip
    last = state.history[-1] if state.history else {}
    return {
        "iterations": state.iteration,
        "maps": [str(out / name) for name in names],
        "class_fractions": state.class_fractions.tolist(),
        "final_resolution_angstrom": last.get("resolution_angstrom"),
        "hand": "flipped" if flip else "as found",
        "hand_note": HAND_NOTE,
    }
