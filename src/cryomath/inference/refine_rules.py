"""The auto-refinement's sampling rules (``ml_optimiser.cpp``'s ``updateAngularSampling``,
``checkConvergence`` and ``updateOverallChangesInHiddenVariables``): after each iteration,
whether to stay at this HEALPix order, go one finer, or stop (``inference.refine`` runs them).

An iteration is *stalled* when the 0.143 resolution did not improve on the best so far and the
poses' mean change did not fall by more than 3 % below the smallest mean change at this
sampling (or is under 0.4 steps: RELION's "no large changes of the hidden variables"), so each
sampling runs until its poses settle. A stalled iteration makes the HEALPix order one finer
(local searches from ``local_from_order``, the offset step halved, the offset range three
steps; RELION's offsets, a step of 75 % of their accuracy and a range of five times their last
mean change, measured worse here: 0.84 px steps and median offset errors of 0.64 px against
0.52, the demo's map 6.26 A against 6.00), unless the step is already below 75 % of the poses'
estimated accuracy (RELION's ``acc_rot``, ``inference.accuracy``: 50 particles of each half,
logged each iteration) or the order is ``max_order``: a stalled iteration there ends the
refinement (finer steps than the data can place poses fit noise: on 2,000 particles of SNR
0.05 an order-5 pass lowered the map's FSC against the truth from 4.41 to 4.64 A).

Unlike RELION, the accuracy does not end a global search: there a stall moves on to the next
order (on dataset (b) of bench/refine.py, with the offsets' sd updated as RELION does, the
accuracy of 12.6 degrees ended the refinement at order 2 with 37 % of the particles more than
30 degrees off; bench/RESULTS.md). RELION 4's two faster rules are options:
``ignore_angle_changes`` (``--auto_ignore_angles``: every iteration counts as settled, so the
resolution alone decides) and ``resolution_based_angles`` (``--auto_resol_angles``: finer as
soon as the resolution needs a finer step than the grid's, except into the first local order).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from cryomath.inference.expectation import particle_radius_px
from cryomath.inference.sampling import Sampling, coarse_shell
from cryomath.resolution import resolution_angstrom

if TYPE_CHECKING:  # annotations only: refine imports this module
    from cryomath.inference.refine import RefineSettings


def shell_of(resolution: float, n: int, voxel: float) -> int:
    """The shell of ``resolution`` (A) in an ``n``-voxel box of ``voxel`` A."""
    return 0 if not math.isfinite(resolution) else int(n * voxel / resolution)


def update_sampling(state, settings: RefineSettings, curve, n: int, voxel: float,
                    accuracy_degrees: float) -> None:  # fmt: skip
    """The next iteration's sampling from this one's half-map FSC ``curve``, the poses'
    changes and their estimated accuracy ``accuracy_degrees`` (the module docstring's rules);
    ``state.converged`` once they end."""
    s = state.sampling
    shell_143 = shell_of(resolution_angstrom(curve, 0.143), n, voxel)
    shell_05 = shell_of(resolution_angstrom(curve, 0.5), n, voxel)
    change = float(np.mean(state.particles.change_degrees))
    settled = (settings.ignore_angle_changes or change >= 0.97 * state.smallest_change_degrees
               or change < 0.4 * s.step_degrees)  # fmt: skip
    stalled = shell_143 <= state.best_shell and settled
    # RELION 4's --auto_resol_angles: also finer once the step this resolution needs,
    # 360 / ceil(pi D / d), is below the grid's (but the last global order runs until it stalls)
    needed = 360 / max(1, math.ceil(math.pi * _diameter_angstrom(settings, n, voxel) * shell_143
                                    / (n * voxel)))  # fmt: skip
    finer = stalled or (settled and settings.resolution_based_angles and needed < s.step_degrees
                        and s.healpix_order + 1 != settings.local_from_order)  # fmt: skip
    state.best_shell = max(state.best_shell, shell_143)
    state.smallest_change_degrees = min(state.smallest_change_degrees, change)
    order, step, offset_range = s.healpix_order, s.offset_step_px, s.offset_range_px
    # RELION: no finer step than 75 % of the accuracy (finer ones only fit noise); but not
    # the end in a global search (the module docstring's accuracy rule)
    fine_enough = order >= settings.max_order or (s.local and s.step_degrees
                                                   < 0.75 * accuracy_degrees)  # fmt: skip
    if state.recheck_iteration == state.iteration:  # after the recheck: local again
        order = settings.local_from_order  # above healpix_order (check): the first local offsets
        step = max(settings.offset_step_px / 2, 0.25)
        offset_range = 3 * step
        state.smallest_change_degrees = math.inf
    elif stalled and fine_enough and settings.global_recheck and state.recheck_iteration is None:
        state.recheck_iteration = state.iteration + 1
        order, step = settings.healpix_order, settings.offset_step_px
        offset_range = settings.offset_range_px
    elif stalled and fine_enough:
        state.converged = True
    elif finer and not fine_enough:
        order += 1
        state.smallest_change_degrees = math.inf
        if order >= settings.local_from_order:
            step = max(step / 2, 0.25)
            offset_range = 3 * step
    state.band_shell = min(n // 2 - 1, max(shell_05 + 10, state.band_shell))
    state.sampling = sampling_for(settings, order, offset_range, step, state.band_shell, n, voxel)


def _diameter_angstrom(settings: RefineSettings, n: int, voxel: float) -> float:
    return 2 * particle_radius_px(settings.particle_diameter_angstrom, n, voxel) * voxel


def sampling_for(settings: RefineSettings, order: int, offset_range: float, offset_step: float,
                 band: int, n: int, voxel: float) -> Sampling:  # fmt: skip
    """The sampling of HEALPix ``order`` under ``settings`` (local from
    ``local_from_order``; the coarse pass scored to what the order's step resolves)."""
    local = order >= settings.local_from_order
    radius = particle_radius_px(settings.particle_diameter_angstrom, n, voxel)
    return Sampling(order, local, offset_range, offset_step, band,
                    max_significant=settings.max_significant,
                    coarse_shell=coarse_shell(60.0 / 2**order, radius, n),
                    dose_e_per_a2=settings.dose_e_per_a2)  # fmt: skip
