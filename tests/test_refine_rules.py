"""The auto-refinement's sampling rules, against RELION's (``ml_optimiser.cpp``:
``updateOverallChangesInHiddenVariables``, ``updateAngularSampling``, ``checkConvergence``):
an order finer only when the resolution stops improving and the poses settle (their mean
change within 3 % of the smallest at this order, or under 40 % of the step); with RELION 4's
``--auto_ignore_angles`` the poses always count as settled; with ``--auto_resol_angles`` also
when the resolution needs a finer step, 360 / ceil(pi D / d), but never into the first local
order; at the last order a stall ends the refinement."""

import math

import numpy as np
import torch

from cryomath.inference.expectation import ParticleState
from cryomath.inference.refine import RefineSettings, RefineState
from cryomath.inference.refine_rules import sampling_for, update_sampling
from cryomath.resolution import FSCCurve

N, VOXEL = 40, 2.0  # shell k is 80 / k A


def _curve(shell: int) -> FSCCurve:
    """An FSC of 1 up to ``shell`` and 0 after it: crossing 0.143 between shell and shell + 1."""
    k = torch.arange(N // 2 + 1, dtype=torch.float64)
    return FSCCurve((k <= shell).double(), k / (N * VOXEL), torch.ones_like(k))


def _state(settings: RefineSettings, order: int, best_shell: int, smallest: float, change):
    particles = ParticleState.start(np.tile(np.eye(3), (4, 1, 1)), np.zeros((4, 2)),
                                    np.zeros(4, np.int64))  # fmt: skip
    particles.change_degrees[:] = change
    sampling = sampling_for(settings, order, 5.0, 1.0, 15, N, VOXEL)
    return RefineState(3, None, VOXEL, particles, None, sampling, None, 1.0, band_shell=15,
                       best_shell=best_shell, smallest_change_degrees=smallest)  # fmt: skip


def _next(settings, order, best_shell, smallest, change, shell):
    state = _state(settings, order, best_shell, smallest, change)
    update_sampling(state, settings, _curve(shell), N, VOXEL, 0.0)  # no accuracy limit
    return state.sampling.healpix_order, state.converged


def test_an_order_is_finer_only_when_the_resolution_and_the_poses_stall():
    rules = RefineSettings(particle_diameter_angstrom=60.0)
    # order 2 (7.5 degrees oversampled): the resolution improves -> stay
    assert _next(rules, 2, 10, 20.0, 20.0, 12) == (2, False)
    # no gain, but the mean change fell more than 3 % below the smallest (20 -> 19) -> stay
    assert _next(rules, 2, 12, 20.0, 19.0, 12) == (2, False)
    # no gain and the change within 3 % (19.5 >= 0.97 x 20) -> finer
    assert _next(rules, 2, 12, 20.0, 19.5, 12) == (3, False)
    # no gain and the change under 40 % of the 7.5-degree step, however it fell -> finer
    assert _next(rules, 2, 12, 20.0, 2.9, 12) == (3, False)
    # at the last order a stall ends the refinement
    assert _next(rules, 5, 12, 1.0, 0.5, 12) == (5, True)
    # RELION's accuracy rule: no finer step than 75 % of the accuracy (20 degrees here), so a
    # stall at a local order ends the refinement; a global one moves on to local searches
    for order, local, step in ((2, False, 1.0), (3, True, 0.5)):
        state = _state(rules, order, 12, 20.0, 19.5)
        state.sampling = sampling_for(rules, order, 3 * step, step, 15, N, VOXEL)
        assert state.sampling.local == local
        update_sampling(state, rules, _curve(12), N, VOXEL, 20.0)
        assert state.converged == local and state.sampling.healpix_order == 3
    # RELION 4's --auto_ignore_angles: the resolution alone decides
    ignore = RefineSettings(particle_diameter_angstrom=60.0, ignore_angle_changes=True)
    assert _next(ignore, 2, 12, 20.0, 10.0, 12) == (3, False)
    assert _next(ignore, 2, 10, 20.0, 10.0, 12) == (2, False)


def test_the_resolution_asks_for_a_finer_step_but_not_into_the_first_local_order():
    def rules(local_from_order):
        return RefineSettings(
            particle_diameter_angstrom=80.0,
            ignore_angle_changes=True,
            resolution_based_angles=True,
            local_from_order=local_from_order,
        )

    # shell k needs 360 / ceil(pi 80 k / 80) degrees: shell 12 (6.2 A) 9.5, shell 18 (4.2 A) 6.3
    assert 7.5 < 360 / math.ceil(math.pi * 12) < 15.0 and 360 / math.ceil(math.pi * 18) < 7.5
    # improving at order 1 (15 degrees oversampled): finer all the same (order 2 is global)
    assert _next(rules(3), 1, 10, 20.0, 20.0, 12) == (2, False)
    # improving at order 2 (7.5 degrees): the step suffices -> stay
    assert _next(rules(3), 2, 10, 20.0, 20.0, 12) == (2, False)
    # at shell 18 order 2's step is too coarse, but order 3 is local: stay until a stall ...
    assert _next(rules(3), 2, 16, 20.0, 20.0, 18) == (2, False)
    # ... unless local searches start later
    assert _next(rules(4), 2, 16, 20.0, 20.0, 18) == (3, False)


def test_the_coarse_pass_scores_relions_coarse_size():
    # ml_optimiser.cpp: coarse_size = 2 ceil(ori_size pixel / (step / 360 pi D / 1.2)), worked by
    # hand for D = 80 A in this 40-pixel box of 2 A: order 2 (15 degrees) rotates 10.47 A at
    # D, 8.73 A after the 1.2, so 2 ceil(9.17) = 20: shell 10; order 1 (30 degrees): 2 ceil(4.58)
    # = 10: shell 5
    settings = RefineSettings(particle_diameter_angstrom=80.0)
    assert sampling_for(settings, 2, 5.0, 1.0, 15, N, VOXEL).coarse_shell == 10
    assert sampling_for(settings, 1, 5.0, 1.0, 15, N, VOXEL).coarse_shell == 5


def test_a_global_recheck_runs_once_after_convergence_then_local_searches_again():
    settings = RefineSettings(particle_diameter_angstrom=80.0, global_recheck=True, max_order=4)
    # stalled at the last order: instead of converging, the next iteration searches globally
    state = _state(settings, 4, 16, 1.0, 1.0)
    update_sampling(state, settings, _curve(12), N, VOXEL, 0.0)
    s = state.sampling
    assert not state.converged and state.recheck_iteration == 4
    assert (s.healpix_order, s.local) == (2, False)
    assert (s.offset_range_px, s.offset_step_px) == (5.0, 1.0)  # the settings' global search
    # after that pass: local from local_from_order (3), its offsets as the first local order's
    state.iteration = 4
    update_sampling(state, settings, _curve(12), N, VOXEL, 0.0)
    s = state.sampling
    assert (state.converged, s.healpix_order, s.local, s.offset_step_px) == (False, 3, True, 0.5)
    assert s.offset_range_px == 1.5
    # stalled at the last order again: now it converges
    state.sampling = sampling_for(settings, 4, 1.0, 0.25, 15, N, VOXEL)
    state.iteration, state.smallest_change_degrees = 8, 1.0
    update_sampling(state, settings, _curve(12), N, VOXEL, 0.0)
    assert state.converged
