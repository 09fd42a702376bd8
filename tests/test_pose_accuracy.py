"""RELION's estimated pose accuracy (``inference.accuracy``): each particle's angle and shift
are where the E-step's own likelihood (``inference.scores``, an independent code path: matrix
products of images against projections) of a noise-free image makes the turned or shifted
pose 100 times less likely; and ``refine``'s rule that stops making the sampling finer there."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cryomath.cli import main
from cryomath.imaging import NoiseSpectrum, iter_batches, predict_spectra
from cryomath.inference.accuracy import ANGLES_DEGREES, SHIFTS_PX, pose_accuracy
from cryomath.inference.refine import RefineSettings, start_refinement
from cryomath.inference.refine_rules import sampling_for, update_sampling
from cryomath.inference.scores import gaussian_pose_scores
from cryomath.io import read_particles
from cryomath.pipelines import read_volume
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from cryomath.resolution import FSCCurve
from cryomath.so3.lie import exp_map

_MODEL = Path(__file__).resolve().parents[1] / "src" / "cryomath" / "data" / "6vyb_ndom.pdb.gz"
N, PIXEL, BAND = 24, 3.0, 10


@pytest.fixture(scope="module")
def particles(tmp_path_factory):
    sim = tmp_path_factory.mktemp("accuracy") / "sim"
    assert main(["simulate", str(_MODEL), "--n", "6", "--box-size", str(N), "--pixel-size",
                 str(PIXEL), "--snr", "1", "--out", str(sim), "--json"]) == 0  # fmt: skip
    volume, _ = read_volume(_MODEL, N, PIXEL)
    return read_particles(sim / "particles.star"), volume


def _noise(table, volume, spectrum):
    """A white noise whose power makes the accuracies fall mid-ladder."""
    batch = next(iter_batches(table, table.n, None, torch.float64))
    power = float(predict_spectra(spectrum, batch).abs().pow(2).mean())
    group = int(batch.optics_group)
    return NoiseSpectrum((group,), torch.full((1, N), 2.0 * power, dtype=torch.float64))


def _first_passing(drop: torch.Tensor, ladder: torch.Tensor) -> float:
    passing = drop > math.log(100.0)
    return float(ladder[int(passing.double().argmax())] if passing.any() else ladder[-1])


def test_the_ladders_are_relions():
    assert ANGLES_DEGREES[:6].tolist() == pytest.approx([0, 0.05, 0.1, 0.15, 0.2, 0.3])
    assert ANGLES_DEGREES[-1] == pytest.approx(30.1) and SHIFTS_PX[-1] == pytest.approx(10.1)
    assert torch.all(torch.diff(ANGLES_DEGREES) > 0) and torch.all(torch.diff(SHIFTS_PX) > 0)


def test_each_particles_accuracy_is_where_the_e_steps_likelihood_falls_a_hundredfold(particles):
    table, volume = particles
    spectrum = prepare_volume(volume, 2.0, voxel_size_angstrom=PIXEL)
    noise = _noise(table, volume, spectrum)
    angles = []
    for i in range(table.n):
        seed = 10 + i
        found = pose_accuracy(table, np.array([i]), volume, table.rotations, PIXEL, noise,
                              BAND, seed=seed)  # fmt: skip
        batch = next(iter_batches(table, 1, None, torch.float64, rows=np.array([i])))
        exact = replace(batch, spectra=predict_spectra(spectrum, batch, shifts_px=torch.zeros(1, 2,
                        dtype=torch.float64)))  # fmt: skip
        g = torch.Generator().manual_seed(seed)
        axis = torch.nn.functional.normalize(torch.randn(1, 3, generator=g, dtype=torch.float64))
        direction = torch.zeros(2, dtype=torch.float64)
        direction[int(torch.randint(0, 2, (1,), generator=g))] = 1.0
        turned = exp_map(axis * torch.deg2rad(ANGLES_DEGREES)[:, None]) @ batch.rotations[0]
        slices = extract_central_slices_rfft_3d(spectrum, turned[None])[0]
        scores = gaussian_pose_scores(exact, slices, torch.zeros(1, 2, dtype=torch.float64),
                                      noise, BAND)[0, 0]  # fmt: skip
        assert found.rotation_degrees == pytest.approx(
            _first_passing(scores[0] - scores, ANGLES_DEGREES)
        )
        shifted = gaussian_pose_scores(exact, slices[:1], SHIFTS_PX[:, None] * direction, noise,
                                       BAND)[0, :, 0]  # fmt: skip
        assert found.offset_px == pytest.approx(_first_passing(shifted[0] - shifted, SHIFTS_PX))
        angles.append(found.rotation_degrees)
    assert 1.0 < np.median(angles) < 25.0  # mid-ladder: the test means something
    both = pose_accuracy(table, np.arange(table.n), volume, table.rotations, PIXEL, noise, BAND,
                         seed=10)  # fmt: skip
    assert 0.5 * min(angles) <= both.rotation_degrees <= 2 * max(angles)


def test_refine_makes_the_sampling_no_finer_than_three_quarters_of_the_accuracy(particles):
    table, volume = particles
    settings = RefineSettings(max_order=5)
    shells = N // 2 + 1  # an FSC of zeros: no resolution gain, so the iteration is stalled
    curve = FSCCurve(torch.zeros(shells), torch.linspace(0, 0.5 / PIXEL, shells),
                     torch.ones(shells))  # fmt: skip
    outcomes = {}
    for accuracy in (2.0, 10.0):
        state = start_refinement(replace(table, rotations=None), volume.float(), PIXEL, settings)
        state.sampling = sampling_for(settings, 4, 1.5, 0.5, BAND, N, PIXEL)  # 3.75 degrees
        state.best_shell, state.smallest_change_degrees = N, 0.0
        update_sampling(state, settings, curve, N, PIXEL, accuracy)
        outcomes[accuracy] = (state.sampling.healpix_order, state.converged)
    assert outcomes[2.0] == (5, False)  # 3.75 > 0.75 x 2: finer
    assert outcomes[10.0] == (4, True)  # 3.75 < 0.75 x 10: fine enough, and stalled: done


def test_an_optics_groups_amplitude_scale_counts_as_the_e_step_counts_it(particles):
    """The E-step scores images divided by their group's scale ``s`` against noise ``sigma2 /
    s^2``: as a prediction ``s`` times larger, so the accuracy with ``s = 2`` is the one with a
    quarter of the noise."""
    table, volume = particles
    spectrum = prepare_volume(volume, 2.0, voxel_size_angstrom=PIXEL)
    noise = _noise(table, volume, spectrum)
    quarter = NoiseSpectrum(noise.groups, noise.sigma2 / 4)
    rows = np.arange(table.n)
    scaled = pose_accuracy(table, rows, volume, table.rotations, PIXEL, noise, BAND,
                           group_scales={noise.groups[0]: 2.0})  # fmt: skip
    assert scaled == pose_accuracy(table, rows, volume, table.rotations, PIXEL, quarter, BAND)
    assert scaled.rotation_degrees < pose_accuracy(table, rows, volume, table.rotations, PIXEL,
                                                   noise, BAND).rotation_degrees  # fmt: skip


def test_each_row_is_scored_at_its_own_pose(particles):
    """``rotations`` are every particle's, looked up by row (batches come by optics group, not
    in the order of ``rows``): neither the order of ``rows`` nor the poses of particles outside
    them change the accuracy; swapping the rows' own poses does."""
    table, volume = particles
    noise = _noise(table, volume, prepare_volume(volume, 2.0, voxel_size_angstrom=PIXEL))

    def accuracy(rows, rotations):
        return pose_accuracy(table, np.array(rows), volume, rotations, PIXEL, noise, BAND)

    first = accuracy([5, 1, 3], table.rotations)
    assert first == accuracy([1, 3, 5], table.rotations)
    others, swapped = table.rotations.copy(), table.rotations.copy()
    others[[0, 2, 4]] = table.rotations[[2, 4, 0]]
    swapped[[1, 3, 5]] = table.rotations[[3, 5, 1]]
    assert first == accuracy([5, 1, 3], others)
    assert first != accuracy([5, 1, 3], swapped)
