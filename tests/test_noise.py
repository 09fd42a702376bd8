"""Noise models against their definitions: realised SNR, power spectra, Poisson moments and
log-likelihoods against scipy.stats."""

import numpy as np
import pytest
import scipy.stats
import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier import spherical_mask
from cryomath.fourier.fft import rfft_2d
from cryomath.noise import (
    add_white_noise,
    coloured_noise,
    expected_counts,
    gaussian_log_likelihood,
    poisson_log_likelihood,
    shot_noise,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("snr", [0.05, 1.0, 10.0])
def test_realised_snr_is_within_two_percent(snr):
    clean = torch.randn(4, 256, 256, generator=_gen(0), dtype=torch.float64).cumsum(-1)
    noisy = add_white_noise(clean, snr, generator=_gen(1))
    realised = clean.flatten(-2).var(-1) / (noisy - clean).flatten(-2).var(-1)
    assert float((realised / snr - 1).abs().max()) < 0.02
    mask = spherical_mask((256, 256), 64.0, soft_edge_px=0).bool()
    noisy = add_white_noise(clean, snr, mask=mask, generator=_gen(2))
    realised = clean[..., mask].var(-1) / (noisy - clean).flatten(-2).var(-1)
    assert float((realised / snr - 1).abs().max()) < 0.02
    with pytest.raises(InvalidInputError):
        add_white_noise(clean, 0.0)


def test_coloured_noise_has_the_requested_power_spectrum():
    ky = torch.fft.fftfreq(64, dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(64, dtype=torch.float64)[None, :]
    power = 1.0 / (1.0 + 100 * (kx**2 + ky**2))
    noise = coloured_noise(power.expand(400, 64, 33), (64, 64), generator=_gen(3))
    measured = (rfft_2d(noise).abs() ** 2).mean(0) / (64 * 64)
    assert float((measured / power - 1).abs().mean()) < 0.05
    white = coloured_noise(
        torch.ones(200, 64, 33, dtype=torch.float64), (64, 64), generator=_gen(4)
    )
    assert float(white.var()) == pytest.approx(1.0, abs=0.01)


def test_shot_noise_mean_and_variance_within_sampling_error():
    contrast = 0.1 * torch.randn(64, 64, generator=_gen(5), dtype=torch.float64)
    rate = expected_counts(contrast, dose_e_per_a2=40.0, pixel_size_angstrom=1.0)
    counts = shot_noise(contrast.expand(2000, 64, 64), 40.0, 1.0, generator=_gen(6))
    mean, var = counts.mean(0), counts.var(0)
    # per pixel: sample mean sd = sqrt(rate / n), sample variance sd ~ rate sqrt(2 / n)
    assert float(((mean - rate) / torch.sqrt(rate / 2000)).abs().max()) < 5
    assert float(((var - rate) / (rate * (2 / 2000) ** 0.5)).abs().mean()) < 1.0
    with pytest.raises(InvalidInputError):
        expected_counts(torch.tensor([-2.0]), 40.0, 1.0)


def test_detector_mtf_and_dqe_shape_the_noise_power():
    flat = torch.zeros(500, 64, 64, dtype=torch.float64)
    ky = torch.fft.fftfreq(64, dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(64, dtype=torch.float64)[None, :]
    mtf = torch.sinc(kx) * torch.sinc(ky)
    dqe = 0.8 * mtf**2
    counts = shot_noise(flat, 10.0, 1.0, mtf=mtf, dqe=dqe, generator=_gen(7))
    power = (rfft_2d(counts - 10.0).abs() ** 2).mean(0) / (64 * 64)
    expected = 10.0 * mtf**2 / dqe  # N0 MTF^2 / DQE
    keep = (kx**2 + ky**2) > 0
    assert float((power[keep] / expected.expand_as(power)[keep] - 1).abs().mean()) < 0.05


def test_log_likelihoods_equal_scipy():
    g = _gen(8)
    image = torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    model = torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    ours = gaussian_log_likelihood(image, model, 0.7)
    expected = scipy.stats.norm.logpdf(image.numpy(), model.numpy(), 0.7).sum((-1, -2))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)
    rate = torch.rand(3, 8, 8, generator=g, dtype=torch.float64) * 20
    counts = torch.poisson(rate, generator=g)
    expected = scipy.stats.poisson.logpmf(counts.numpy(), rate.numpy()).sum((-1, -2))
    np.testing.assert_allclose(poisson_log_likelihood(counts, rate).numpy(), expected, rtol=1e-12)
