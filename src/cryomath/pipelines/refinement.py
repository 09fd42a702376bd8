"""Files around 3-D auto-refinement: the inputs, an atomic checkpoint after every iteration
(``--continue`` picks it up), and the outputs RELION reads back.

Outputs in ``out``: ``half1.mrc``, ``half2.mrc``, ``map.mrc`` (both halves' sums inverted
together), ``postprocess.mrc``, ``fsc.star`` / ``fsc.json`` / ``fsc.png``, ``particles.star``
(refined poses and origins, ``rlnRandomSubset``, ``rlnClassNumber``,
``rlnMaxValueProbDistribution``, ``rlnLogLikeliContribution``, ``rlnNrOfSignificantSamples``),
``orientations.png`` (the refined viewing directions), ``iterations.json`` and
``fsc_iterations.png`` (the half-map FSC of every iteration).
"""

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryomath.errors import InvalidInputError
from cryomath.inference.refine import (
    RefineSettings,
    RefineState,
    final_maps,
    refine_iteration,
    start_refinement,
)
from cryomath.io.atomic import (
    atomic_output,
    check_output_path,
    published_at_once,
    writable_directory,
)
from cryomath.pipelines.expectation import pass_runner

CHECKPOINT = "checkpoint.pt"
OUTPUTS = ("half1.mrc", "half2.mrc", "map.mrc", "postprocess.mrc", "fsc.star", "fsc.json",
           "fsc.png", "particles.star", "orientations.png", "iterations.json",
           "fsc_iterations.png")  # fmt: skip


def save_checkpoint(state, out: Path) -> None:
    """Write ``state`` to ``out/checkpoint.pt`` atomically (the old one stays until the new one
    is whole), published at once even inside a command's output set (whose files appear only
    when the command succeeds): an interrupted run keeps its last checkpoint."""
    writable_directory(out)
    with published_at_once(), atomic_output(out / CHECKPOINT, force=True) as tmp:
        torch.save(state, tmp)


def load_checkpoint(out: Path):
    """The state saved in ``out`` (``--continue``)."""
    path = out / CHECKPOINT
    if not path.is_file():
        raise InvalidInputError(f"nothing to continue: {path} does not exist")
    try:
        # where it was saved; on the host where there is no GPU (a GPU run goes on anywhere)
        where = None if torch.cuda.is_available() else "cpu"
        return torch.load(path, weights_only=False, map_location=where)
    except Exception as exc:  # a checkpoint is written atomically: this is another file
        raise InvalidInputError(f"{path} is not a cryomath checkpoint ({exc})") from None


def resumed_or_started(out: Path, resume: bool, kind: type, n_particles: int, start):
    """The checkpointed state of a run of ``kind`` on ``n_particles`` (``resume``), else
    ``start()``."""
    if not resume:
        return start()
    state = load_checkpoint(out)
    if not isinstance(state, kind) or len(state.halves) != n_particles:
        raise InvalidInputError(f"{out / CHECKPOINT} is from another run or other particles")
    return state


def particles_table(table, state, out: Path):
    """``table`` with the refined poses, origins and RELION's per-particle columns, its image
    paths relative to ``out``."""
    pixel_size_angstrom = np.broadcast_to(np.asarray(table.pixel_size_angstrom, np.float64),
                                          (table.n,))  # fmt: skip
    p = state.particles
    keep = len(table.extra) == table.n
    extra = table.extra.copy() if keep else pd.DataFrame(index=range(table.n))
    extra["rlnClassNumber"] = p.classes + 1
    extra["rlnMaxValueProbDistribution"] = p.max_probability
    extra["rlnLogLikeliContribution"] = p.log_likelihood
    extra["rlnNrOfSignificantSamples"] = p.significant
    paths = table.image_paths
    if paths is not None:
        paths = np.array([os.path.relpath(table.resolve_path(x), out) for x in paths], dtype=object)
    return replace(
        table, rotations=p.rotations, origins_angstrom=-p.shifts_px * pixel_size_angstrom[:, None],
        random_subset=getattr(state, "halves", table.random_subset), extra=extra.reset_index(
            drop=True), image_paths=paths, root=out,
    )  # fmt: skip


def check_outputs(out: Path, force: bool, resume: bool, names=OUTPUTS) -> None:
    """Refuse to overwrite a finished run's ``names`` (and checkpoint) in ``out`` without
    ``force``; a run that ``resume`` s replaces its own."""
    if resume:
        return
    for name in (*names, CHECKPOINT):
        check_output_path(out / name, force)


def iterate_with_checkpoints(state, out: Path, more, iterate, on_iteration=None):
    """``iterate(state)`` while ``more(state)``, the state saved after each iteration and
    ``on_iteration(line)`` told; returns the state."""
    while more(state):
        line = iterate(state)
        save_checkpoint(state, out)
        if on_iteration is not None:
            on_iteration(line)
    return state


def refine_particles(
    table, reference: torch.Tensor, voxel_size_angstrom: float, out: Path,
    settings: RefineSettings, *, resume: bool = False, device=None, dtype=torch.float32,
    progress=None, on_iteration=None, client=None,
) -> RefineState:  # fmt: skip
    """Run (or continue) an auto-refinement to convergence, checkpointing after every
    iteration; ``progress(k)`` as particles are scored, ``on_iteration(line)`` after each;
    ``client``: a Dask client that runs the expectation passes (``pipelines.expectation``)."""
    passes = pass_runner(client)
    state = resumed_or_started(out, resume, RefineState, table.n, lambda: start_refinement(
        table, reference, voxel_size_angstrom, settings, dtype, device))  # fmt: skip
    return iterate_with_checkpoints(
        state, out, lambda s: not s.converged and s.iteration < settings.max_iterations,
        lambda s: refine_iteration(table, s, settings, dtype, device, progress, passes),
        on_iteration,
    )  # fmt: skip


def write_refinement(table, state: RefineState, out: Path, title: str, force: bool) -> dict:
    """The outputs of a converged refinement (module docstring); returns the summary."""
    from cryomath.io import write_mrc, write_relion_star, write_star
    from cryomath.io.atomic import output_set
    from cryomath.io.results import write_json
    from cryomath.plots import plot_directions, plot_fsc
    from cryomath.resolution import HalfMapFSC, postprocess_half_maps
    from cryomath.so3 import relion_euler_from_matrix

    maps = final_maps(state)
    voxel = maps.pixel_size_angstrom
    post = postprocess_half_maps(maps.half1, maps.half2, voxel)
    summary = HalfMapFSC(maps.fsc, maps.fsc.fsc).summary()
    angles = relion_euler_from_matrix(torch.from_numpy(state.particles.rotations)).numpy()
    fsc_rows = pd.DataFrame({
        "rlnSpectralIndex": np.arange(len(maps.fsc.fsc)),
        "rlnResolution": maps.fsc.spatial_frequency_per_angstrom.cpu().numpy(),
        "rlnFourierShellCorrelation": maps.fsc.fsc.cpu().numpy(),
    })  # fmt: skip
    curves = {f"it {line['iteration']}": np.asarray(line["fsc"]) for line in state.history}
    freq = maps.fsc.spatial_frequency_per_angstrom.cpu().numpy()
    with output_set():
        for name, volume in (("half1", maps.half1), ("half2", maps.half2), ("map", maps.full),
                             ("postprocess", post.volume)):  # fmt: skip
            write_mrc(out / f"{name}.mrc", volume.float().cpu().numpy(), voxel, force=force)
        write_star(out / "fsc.star", {"fsc": fsc_rows}, force=force)
        write_json(out / "fsc.json", summary, force)
        plot_fsc(freq, {"half maps": maps.fsc.fsc.cpu().numpy()}, out / "fsc.png", title, force)
        plot_fsc(freq, curves, out / "fsc_iterations.png", f"{title}: every iteration", force)
        write_relion_star(particles_table(table, state, out), out / "particles.star",
                          force=force)  # fmt: skip
        plot_directions(angles[:, :2], out / "orientations.png", f"{title}: directions", force)
        write_json(out / "iterations.json", {"iterations": state.history}, force)
    last = state.history[-1] if state.history else {}
    return {**summary, "postprocess_bfactor_angstrom2": post.bfactor_angstrom2,
            "iterations": state.iteration, "converged": state.converged,
            "mean_pose_change_degrees": last.get("mean_change_degrees")}  # fmt: skip


def convergence_note(summary: dict, option: str) -> str | None:
    """A line for a refinement that stopped at its iteration cap before RELION's rules ended
    it (``option``: the command's cap), or None."""
    if summary["converged"]:
        return None
    change = summary["mean_pose_change_degrees"]
    moving = "" if change is None else f" (the poses moved {change:.1f} degrees on average)"
    n = summary["iterations"]
    return (f"the refinement stopped after {n} iteration{'s' * (n != 1)}, not converged"
            f"{moving}: a larger {option} with --continue goes on")  # fmt: skip
