"""The E-step's core (cryomath.inference): the batched pose scores equal a direct evaluation of
every hypothesis (imaging.gaussian_log_likelihood of imaging's own predictions), and at high SNR
they peak at the true pose and shift."""

import math

import pytest
import torch

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import ifft_nd
from cryomath.fourier.shells import hermitian_multiplicity, shell_index
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import NoiseSpectrum, ParticleBatch, gaussian_log_likelihood, predict_spectra
from cryomath.inference import gaussian_pose_scores
from cryomath.inference.band import BandProjections, OwnRows
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume


def _setup(n=16, b=3, r=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    spectrum = prepare_volume(torch.randn(n, n, n, generator=g, dtype=torch.float64), 2.0)
    rotations = so3.random_rotations(r, seed)
    defocus = 10000 + 10000 * torch.rand(b, generator=g, dtype=torch.float64)
    ctf = CTF(defocus, defocus - 300, torch.tensor(20.0), torch.tensor(300.0),
              torch.tensor(2.7), torch.tensor(0.1))  # fmt: skip
    images = torch.randn(b, n, n, generator=g, dtype=torch.float64)
    batch = ParticleBatch.from_tensors(images, so3.random_rotations(b, 9), 1.0, ctf=ctf)
    sigma2 = 0.5 + torch.rand(1, n, generator=g, dtype=torch.float64)  # every shell, corners too
    return spectrum, rotations, batch, NoiseSpectrum((0,), sigma2 * n * n), g


@pytest.mark.parametrize("max_shell", [None, 5])
def test_batched_scores_equal_every_hypothesis_evaluated_directly(max_shell, monkeypatch):
    spectrum, rotations, batch, noise, g = _setup()
    shifts = torch.randn(4, 2, generator=g, dtype=torch.float64) * 2
    projections = extract_central_slices_rfft_3d(spectrum, rotations)
    scores = gaussian_pose_scores(batch, projections, shifts, noise, max_shell)
    b, s, r = len(batch), len(shifts), len(rotations)
    predicted = predict_spectra(
        spectrum, batch, rotations.expand(b, s, r, 3, 3), shifts[None, :, None].expand(b, s, r, 2)
    )
    direct = gaussian_log_likelihood(batch, predicted, noise, 16 // 2 - 1 if max_shell is None
                                     else max_shell, min_shell=1)  # fmt: skip
    assert scores.shape == (b, s, r)
    assert float((scores - direct).abs().max() / direct.abs().max()) < 1e-12
    # the same through a table of band parts, shared and gathered per image (a global search's),
    # and each image's own rows of it gathered in the score: all at once, then image by image
    table = BandProjections.of(projections, 16 // 2 - 1 if max_shell is None else max_shell)
    rows = torch.tensor([[4, 0], [2, 2], [1, 3]])
    own = direct[torch.arange(b)[:, None], :, rows].transpose(1, 2)
    for gather_bytes in (2**24, 1):
        monkeypatch.setattr("cryomath.inference.scores._GATHER_BYTES", gather_bytes)
        for hyp, expected in ((table, direct), (table[rows], own), (OwnRows(table, rows), own)):
            got = gaussian_pose_scores(batch, hyp, shifts, noise, max_shell)
            assert float((got - expected).abs().max() / direct.abs().max()) < 1e-12


def test_at_high_snr_the_scores_peak_at_the_true_pose_and_shift():
    spectrum, rotations, batch, noise, g = _setup(r=30, b=4, seed=1)
    n = batch.image_size
    shifts = torch.tensor([[0.0, 0.0], [1.0, -2.0], [-3.0, 1.0]], dtype=torch.float64)
    truth_r, truth_s = torch.tensor([3, 17, 25, 8]), torch.tensor([1, 0, 2, 1])
    clean = extract_central_slices_rfft_3d(spectrum, rotations[truth_r])
    clean = clean * batch.ctf_values() * phase_ramp((n, n), shifts[truth_s], rfft=True)
    images = ifft_nd(clean, (n, n), rfft=True)
    images = images + 0.01 * images.std() * torch.randn(images.shape, generator=g,
                                                         dtype=torch.float64)  # fmt: skip
    batch = ParticleBatch.from_tensors(images, batch.rotations, 1.0, ctf=batch.ctf)
    projections = extract_central_slices_rfft_3d(spectrum, rotations)
    scores = gaussian_pose_scores(batch, projections, shifts, noise)
    best = scores.flatten(1).argmax(1)
    assert (best // len(rotations)).tolist() == truth_s.tolist()
    assert (best % len(rotations)).tolist() == truth_r.tolist()


def test_bad_hypotheses_are_refused():
    spectrum, rotations, batch, noise, _ = _setup()
    projections = extract_central_slices_rfft_3d(spectrum, rotations)
    shifts = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="max_shell"):
        gaussian_pose_scores(batch, projections, shifts, noise, max_shell=8)
    with pytest.raises(InvalidInputError, match="projections"):
        gaussian_pose_scores(batch, projections[:, :8], shifts, noise)
    with pytest.raises(InvalidInputError, match="shifts_px"):
        gaussian_pose_scores(batch, projections, shifts[:, :1], noise)
    with pytest.raises(InvalidInputError, match="band is for images of 16 px to shell 5"):
        gaussian_pose_scores(batch, BandProjections.of(projections, 5), shifts, noise, 6)


def test_band_projections_hold_the_scored_samples_and_nothing_else():
    spectrum, rotations, _, _, _ = _setup()
    projections = extract_central_slices_rfft_3d(spectrum, rotations)
    shells = shell_index((16, 16))
    inside = (shells >= 1) & (shells <= 5) & (hermitian_multiplicity((16, 16)) > 0)
    restored = BandProjections.of(projections, 5).spectra()
    assert torch.equal(restored, torch.where(inside, projections, 0))
    # the rfft's half plane (kx >= 0) holds 53 samples with 0.5 <= |k| < 5.5 pixels^-1 n
    lattice = sum(0.25 <= x * x + y * y < 30.25 for x in range(9) for y in range(-8, 8))
    assert BandProjections.of(projections, 5).parts.shape == (len(rotations), 2 * lattice)


def test_posterior_of_two_hypotheses_is_bayes_rule():
    from cryomath.inference import posterior

    # likelihoods 0.2 and 0.6 with priors 0.75 and 0.25: evidence 0.3, weights 0.5 and 0.5
    scores = torch.log(torch.tensor([[[0.2, 0.6]]], dtype=torch.float64))
    result = posterior(scores, None, torch.log(torch.tensor([0.75, 0.25], dtype=torch.float64)))
    assert torch.allclose(result.weights, torch.tensor([[[0.5, 0.5]]], dtype=torch.float64))
    assert abs(float(result.log_evidence[0]) - math.log(0.3)) < 1e-12
    assert float(result.max_probability[0]) == pytest.approx(0.5)
    assert int(result.significant[0]) == 2


def test_a_float32_posterior_over_a_wide_range_of_scores_keeps_its_precision():
    """Scores spread over thousands (most weights far below exp(-88), where float32 underflows
    and torch's exp is slow: the posterior works in base 2): the weights and the evidence of a
    float32 posterior agree with a float64 evaluation by ``torch.softmax`` to float32 rounding,
    and the hypotheses with a zero prior get exactly zero."""
    from cryomath.inference import posterior

    g = torch.Generator().manual_seed(5)
    scores = torch.randn(4, 6, 50, generator=g, dtype=torch.float64) * 1000
    scores[:, 0, :3] = scores.amax((1, 2))[:, None] - torch.tensor([0.0, 1.0, 5.0])  # a peak
    prior_r = torch.zeros(50, dtype=torch.float64)
    prior_r[-1] = -math.inf
    result = posterior(scores.float(), None, prior_r.float())
    joint = (scores.float().double() + prior_r).flatten(1)
    expected = torch.softmax(joint, 1).view(scores.shape)
    assert float((result.weights.double() - expected).abs().max()) < 1e-6
    evidence = torch.logsumexp(joint, 1)
    assert float(((result.log_evidence.double() - evidence) / evidence).abs().max()) < 1e-6
    assert bool((result.weights[..., -1] == 0).all())


@pytest.mark.parametrize(("spread", "mass"), [(3, 0.9), (0.01, 0.9), (30, 0.999), (3, 1.0)])
def test_posterior_summaries_equal_a_direct_evaluation(spread, mass):
    """Flat and sharp posteriors: the ranking may skip the weights that cannot count."""
    from cryomath.inference import offset_log_prior, posterior

    g = torch.Generator().manual_seed(4)
    scores = torch.randn(3, 5, 7, generator=g, dtype=torch.float64) * spread
    shifts = torch.randn(5, 2, generator=g, dtype=torch.float64)
    centre = torch.randn(3, 2, generator=g, dtype=torch.float64)
    prior_s = offset_log_prior(shifts, centre, 1.5)
    prior_r = torch.log(torch.softmax(torch.randn(7, generator=g, dtype=torch.float64), 0))
    result = posterior(scores, prior_s, prior_r, mass=mass)
    for b in range(3):
        joint = [[math.exp(float(scores[b, s, r] + prior_s[b, s] + prior_r[r])) for r in range(7)]
                 for s in range(5)]  # fmt: skip
        evidence = sum(map(sum, joint))
        assert abs(float(result.log_evidence[b]) - math.log(evidence)) < 1e-12
        weights = sorted((v / evidence for row in joint for v in row), reverse=True)
        held, count = 0.0, 0
        while held < mass * (1 - 1e-12) and count < len(weights):
            held, count = held + weights[count], count + 1
        assert int(result.significant[b]) == count
        assert abs(float(result.significant_weight[b]) - weights[count - 1]) < 1e-12
        assert abs(float(result.max_probability[b]) - weights[0]) < 1e-12
        assert abs(float(result.weights[b].sum()) - 1) < 1e-12


def test_the_offset_prior_is_a_normalised_gaussian():
    from cryomath.inference import offset_log_prior

    axis = torch.arange(-30, 30.001, 0.25, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    density = offset_log_prior(grid, torch.tensor([[1.0, -2.0]], dtype=torch.float64), 3.0).exp()
    assert abs(float(density.sum()) * 0.25**2 - 1) < 1e-9
    with pytest.raises(InvalidInputError, match="sd"):
        offset_log_prior(grid, torch.zeros(1, 2, dtype=torch.float64), 0.0)


def test_the_m_step_sums_equal_an_insertion_of_every_hypothesis_by_hand():
    from cryomath.imaging import FourierAccumulator
    from cryomath.inference import insert_posterior, posterior

    spectrum, rotations, batch, noise, g = _setup(r=4, b=2, seed=2)
    n = batch.image_size
    shifts = torch.randn(3, 2, generator=g, dtype=torch.float64)
    scores = gaussian_pose_scores(batch, extract_central_slices_rfft_3d(spectrum, rotations),
                                  shifts, noise) / 2000  # a spread-out posterior  # fmt: skip
    result = posterior(scores)
    exhaustive = FourierAccumulator(n, 2.0)
    assert insert_posterior(exhaustive, batch, result, rotations, shifts, mass=1.0) == 12
    by_hand = FourierAccumulator(n, 2.0)
    ctf = batch.ctf_values()
    for b in range(2):
        for s in range(3):
            back = phase_ramp((n, n), -shifts[s], rfft=True)  # the shift undone
            for r in range(4):
                w = result.weights[b, s, r]
                by_hand.add((ctf[b] * batch.spectra[b] * back * w)[None],
                            (ctf[b] ** 2 * w)[None], rotations[r][None])  # fmt: skip
    assert float((exhaustive.sums - by_hand.sums).abs().max() / by_hand.sums.abs().max()) < 1e-12
    pruned = FourierAccumulator(n, 2.0)
    kept = insert_posterior(pruned, batch, result, rotations, shifts, mass=0.5)
    assert kept < 12 and int(result.significant.max()) >= kept
    with pytest.raises(InvalidInputError, match="does not match"):
        insert_posterior(pruned, batch, result, rotations[:3], shifts)


def test_relions_own_projections_score_best_at_their_pose_and_origin():
    """relion_project's CTF-modulated images of EMD-3488 (with origins): among the true poses
    and 40 random decoys, and every image's shift, each image scores best at its own pose and
    at ``-origin / pixel`` (data another package wrote: the pose, shift and CTF conventions
    of the E-step agree with RELION's)."""
    import numpy as np

    from cryomath.imaging import iter_batches
    from cryomath.io import read_mrc, read_particles
    from tests.conftest import DATA

    relion = DATA / "relion313_reference"
    table = read_particles(relion / "proj_ctf_24.star")
    volume = torch.from_numpy(read_mrc(DATA / "map_model" / "emd_3488.mrc", np.float64)[0])
    (batch,) = list(iter_batches(table, 64))
    decoys = so3.random_rotations(40, 7)
    rotations = torch.cat([batch.rotations, decoys])  # hypothesis i < 24 is image i's pose
    projections = extract_central_slices_rfft_3d(prepare_volume(volume, 2.0), rotations)
    n = batch.image_size
    noise = NoiseSpectrum((batch.optics_group,), torch.full((1, n), n * n / 2.0))
    scores = gaussian_pose_scores(batch, projections, batch.shifts_px, noise)
    best = scores.flatten(1).argmax(1)
    truth = torch.arange(len(batch))
    assert (best % len(rotations)).tolist() == truth.tolist()
    # hypothesis shift j is image j's own; images that share a shift may pick either copy
    chosen = batch.shifts_px[best // len(rotations)]
    assert float((chosen - batch.shifts_px).abs().max()) < 1e-9


def test_posterior_refuses_nan_and_takes_a_zero_prior():
    from cryomath.inference import posterior

    scores = torch.zeros(1, 1, 3, dtype=torch.float64)
    prior = torch.log(torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64))  # -inf: excluded
    assert posterior(scores, None, prior).weights.flatten().tolist() == [0.0, 0.5, 0.5]
    for bad in (scores * float("nan"), scores.index_fill(-1, torch.tensor([1]), float("nan"))):
        with pytest.raises(InvalidInputError, match="NaN"):  # every score, or one of them
            posterior(bad)
    with pytest.raises(InvalidInputError, match="mass"):
        posterior(scores, mass=0.0)
