"""Ab initio on two random halves of the particles, run independently (``--halves``): does the
run reproduce itself?

The particles are split as refinement splits them (``rlnRandomSubset`` when the file has it,
else a random split seeded by ``seed``: ``reconstruction.halves.half_subsets``); each half runs
the whole schedule from its own random start (seeds ``seed`` and ``seed + 1``), so nothing
but the data ties the two maps. Whenever a run keeps its central slices, the second half's map
is aligned onto the first's in either hand (``fitting.fit_both_hands``: a de novo map has
either hand, and either frame) and their FSC is kept: maps that agree to a resolution found
the same structure from disjoint particles, and the curve's rise from iteration to iteration
is the run's convergence. (One class only: two halves' classes need not come out in the same
order.)
"""

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.fitting import fit_both_hands
from cryomath.inference.abinitio import (
    AbInitioSettings,
    AbInitioState,
    abinitio_iteration,
    start_abinitio,
)
from cryomath.inference.expectation import ParticleState
from cryomath.reconstruction.halves import half_subsets


@dataclass
class HalfFSC:
    """The FSC between the halves' maps after one iteration: ``fsc`` per shell (the second
    aligned onto the first in its better hand, ``mirrored``), ``frequency_per_angstrom`` and
    where it crosses 0.5 (A)."""

    iteration: int
    fsc: np.ndarray
    frequency_per_angstrom: np.ndarray
    resolution_angstrom: float
    mirrored: bool


@dataclass
class HalfRuns:
    """Two independent ab initio runs (the checkpoint of ``--halves``): ``halves (N,)`` in
    {1, 2}, each half's run on its own particles, and the FSC between them as they went."""

    halves: np.ndarray
    runs: list[AbInitioState]
    fsc: list[HalfFSC] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)

    @property
    def iteration(self) -> int:
        return self.runs[0].iteration

    def rows(self, half: int) -> np.ndarray:
        return np.flatnonzero(self.halves == half)

    @property
    def particles(self) -> ParticleState:
        """Every particle's state from its half's run (poses in that run's frame)."""
        whole = ParticleState.start(np.tile(np.eye(3), (len(self.halves), 1, 1)),
                                    np.zeros((len(self.halves), 2)),
                                    np.zeros(len(self.halves), np.int64))  # fmt: skip
        for h, run in zip((1, 2), self.runs, strict=True):
            whole.put(self.rows(h), run.particles)
        return whole


def start_half_runs(table, settings: AbInitioSettings, dtype=torch.float32,
                    device=None) -> HalfRuns:  # fmt: skip
    """Both halves' starts (module docstring)."""
    settings.check()
    halves = half_subsets(table, settings.seed)
    smaller = int(min((halves == 1).sum(), (halves == 2).sum()))
    if settings.final_batch > smaller:
        raise InvalidInputError(f"the minibatch grows to {settings.final_batch} particles; a "
                                f"half has {smaller} (--final-batch)")  # fmt: skip
    state = HalfRuns(halves, [])
    state.runs = [start_abinitio(table.subset(state.rows(h)), half_settings(settings, h), dtype,
                                 device) for h in (1, 2)]  # fmt: skip
    return state


def half_settings(settings: AbInitioSettings, half: int) -> AbInitioSettings:
    """Half ``half``'s own settings: seed ``seed + half - 1`` (its start and minibatches)."""
    return replace(settings, seed=settings.seed + half - 1)


def half_runs_iteration(table, state: HalfRuns, settings: AbInitioSettings, dtype=torch.float32,
                        device=None, progress=None) -> dict:  # fmt: skip
    """One iteration of each half; returns the log line (each half's, and their FSC when the
    runs keep their slices)."""
    lines = []
    for h, run in zip((1, 2), state.runs, strict=True):
        lines.append(abinitio_iteration(table.subset(state.rows(h)), run,
                                        half_settings(settings, h), dtype, device,
                                        progress))  # fmt: skip
    line = {"iteration": state.iteration, "halves": lines}
    if state.iteration in state.runs[0].snapshots:
        state.fsc.append(half_fsc(state))
        line["half_fsc_05_angstrom"] = state.fsc[-1].resolution_angstrom
    state.history.append(line)
    return line


def half_fsc(state: HalfRuns) -> HalfFSC:
    """The FSC between the halves' current maps, the second aligned onto the first in its
    better hand."""
    voxel = state.runs[0].voxel_size_angstrom
    first, second = (run.maps[0].double() for run in state.runs)
    # the better hand: the higher FSC over all shells
    best = max(fit_both_hands(first, second, voxel), key=lambda fit: float(fit.fsc.fsc.sum()))
    return HalfFSC(state.iteration, best.fsc.fsc.cpu().numpy(),
                   best.fsc.spatial_frequency_per_angstrom.cpu().numpy(),
                   best.resolution_angstrom, best.mirrored)  # fmt: skip
