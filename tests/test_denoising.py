"""Denoising (``cryomath.denoising``) against its oracles: the Wiener filter with the signal
power estimated from noisy images does as well as the one that knows the true power (from the
clean images ``simulate`` wrote) and noise (within 1 % with the true noise, 10 % with the
noise estimated from the images' background), and Poisson-Gamma shrinkage reaches the Bayes risk
of the Gamma prior, ``a / (b (b + 1))`` per pixel. Covariance Wiener filtering beats the
Wiener filter and comes close to its own oracle (the prior taken from the clean images); its
steerable rings reproduce a spectrum exactly and carry white noise with their predicted gain;
its shrinker keeps nothing of pure noise and recovers a spike."""

import numpy as np
import pytest
import torch

from cryomath.denoising import (
    GammaPrior,
    cwf_denoise,
    estimate_signal_power,
    estimate_steerable_covariance,
    gamma_prior_from_counts,
    poisson_gamma_posterior_mean,
    wiener_denoise,
)
from cryomath.denoising.cwf import _shrink
from cryomath.denoising.rings import from_rings, image_rings, to_rings
from cryomath.fourier.fft import fft_nd
from cryomath.imaging import NoiseSpectrum, estimate_noise_from_background, iter_batches


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from cryomath.demo import BUNDLED_MODEL
    from cryomath.io import read_mrc, read_particles
    from cryomath.pipelines import read_volume, simulate_dataset
    from cryomath.simulate import SimulationSettings

    out = tmp_path_factory.mktemp("denoise")
    volume, _ = read_volume(BUNDLED_MODEL, 32, 2.0)
    settings = SimulationSettings(n_particles=400, pixel_size_angstrom=2.0, snr=0.1, seed=4)
    simulate_dataset(volume, out, settings, write_clean=True)
    clean = torch.from_numpy(read_mrc(out / "clean_000.mrcs")[0].astype(np.float64))
    return read_particles(out / "particles.star"), clean, out


def test_wiener_with_estimated_power_matches_the_oracle(stack):
    table, clean, _ = stack
    batches = list(iter_batches(table, 400, None, torch.float64))
    noise = estimate_noise_from_background(batches, 13.0)
    signal = estimate_signal_power(batches, noise)
    denoised = wiener_denoise(batches[0], signal, noise)
    noisy = batches[0].images()
    # the oracle: the true signal power (the clean images' own estimate with no noise) and
    # the true noise (each image's variance var(clean) / 0.1, averaged)
    n = 32
    variance = float((clean.var(dim=(-2, -1)) / 0.1).mean())
    true_noise = NoiseSpectrum((1,), torch.full((1, n), n * n * variance / 2, dtype=torch.float64))
    clean_batch = next(iter(iter_batches(table, 400, None, torch.float64)))
    clean_batch.spectra = torch.fft.rfft2(clean)
    zero = NoiseSpectrum((1,), torch.zeros(1, n, dtype=torch.float64))
    oracle = wiener_denoise(batches[0], estimate_signal_power([clean_batch], zero), true_noise)
    known_noise = wiener_denoise(batches[0], estimate_signal_power(batches, true_noise),
                                 true_noise)  # fmt: skip
    mse = {name: float(((x - clean) ** 2).mean()) for name, x in
           (("noisy", noisy), ("estimated", denoised), ("oracle", oracle),
            ("known noise", known_noise))}  # fmt: skip
    # the signal power estimator is as good as the truth (measured: 1.001 of the oracle);
    # the background's noise estimate, 10-30 % high in the lowest shells of a 32-pixel box
    # (the particle's CTF-spread tails), costs 7 %
    assert mse["known noise"] <= 1.01 * mse["oracle"]
    assert mse["estimated"] <= 1.10 * mse["oracle"]
    assert mse["estimated"] < 0.25 * mse["noisy"]


def test_covariance_wiener_filtering_beats_wiener_and_nears_its_oracle(stack):
    table, clean, _ = stack
    batches = list(iter_batches(table, 400, None, torch.float64))
    noise = estimate_noise_from_background(batches, 13.0)
    wiener = wiener_denoise(batches[0], estimate_signal_power(batches, noise), noise)
    cwf = cwf_denoise(batches[0], estimate_steerable_covariance(batches, noise), noise)
    # the oracle: the prior (mean and covariance) of the clean images themselves, the true noise
    n = 32
    variance = float((clean.var(dim=(-2, -1)) / 0.1).mean())
    true_noise = NoiseSpectrum((1,), torch.full((1, n), n * n * variance / 2, dtype=torch.float64))
    clean_batch = next(iter(iter_batches(table, 400, None, torch.float64)))
    clean_batch.spectra = fft_nd(clean, 2)
    almost_none = NoiseSpectrum((1,), true_noise.sigma2 * 1e-8)
    oracle = cwf_denoise(batches[0], estimate_steerable_covariance([clean_batch], almost_none),
                         true_noise)  # fmt: skip
    mse = {name: float(((x - clean) ** 2).mean())
           for name, x in (("wiener", wiener), ("cwf", cwf), ("oracle", oracle))}  # fmt: skip
    # measured: Wiener 0.0710, CWF 0.0652, oracle 0.0549
    assert mse["cwf"] < 0.95 * mse["wiener"]
    assert mse["cwf"] < 1.25 * mse["oracle"]
    # streamed (a callable giving the batches again) is the same as in memory
    streamed = estimate_steerable_covariance(lambda: iter_batches(table, 128, None, torch.float64),
                                             noise)  # fmt: skip
    assert torch.allclose(cwf_denoise(batches[0], streamed, noise), cwf, atol=1e-9)


def test_steerable_rings_are_exact_and_carry_white_noise_with_their_gain():
    n = 24
    rings = image_rings(n)
    g = torch.Generator().manual_seed(3)
    images = torch.randn(4000, n, n, generator=g, dtype=torch.float64)
    spectra = fft_nd(images, 2, rfft=False)
    coefficients = to_rings(spectra, rings)
    back = from_rings(coefficients, rings)
    for index in rings.indices:  # every sample of every ring comes back
        assert torch.allclose(back.flatten(-2)[:, index], spectra.flatten(-2)[:, index])
    # a sample of unit-variance white noise has variance n^2 in the spectrum: a coefficient
    # has n^2 times the fit's gain (complex: half in each part, but q = 0 is real)
    variance = coefficients.abs().square().mean(0)
    ratio = variance[rings.valid] / (n * n * rings.noise_gain[rings.valid])
    assert float((ratio - 1).abs().max()) < 0.15 and abs(float(ratio.mean()) - 1) < 0.01


def test_the_shrinker_keeps_nothing_of_noise_and_recovers_a_spike():
    g = torch.Generator().manual_seed(0)
    p, count = 20, 4000
    noise = torch.randn(count, p, generator=g, dtype=torch.float64)
    assert float(_shrink(noise.T @ noise / count, p / count).abs().max()) < 1e-12
    direction = torch.zeros(p, dtype=torch.float64)
    direction[3] = 1
    spike = 20.0
    data = (
        noise + (spike**0.5) * torch.randn(count, 1, generator=g, dtype=torch.float64) * direction
    )
    shrunk = _shrink(data.T @ data / count, p / count)
    values = torch.linalg.eigvalsh(shrunk)
    assert float(values[:-1].abs().max()) < 1e-9 and abs(float(values[-1]) / spike - 1) < 0.1


def test_poisson_gamma_shrinkage_reaches_the_bayes_risk():
    g = torch.Generator().manual_seed(0)
    shape = torch.full((16, 16), 8.0, dtype=torch.float64)
    rate = torch.full((16, 16), 2.0, dtype=torch.float64)  # rates of mean 4, sd 1.4
    rates = torch._standard_gamma(shape.expand(4000, 16, 16), generator=g) / rate
    counts = torch.poisson(rates, generator=g)
    prior = gamma_prior_from_counts(counts)
    assert float(prior.mean.mean()) == pytest.approx(4.0, rel=0.01)
    assert float(prior.rate.median()) == pytest.approx(2.0, rel=0.15)
    estimate = poisson_gamma_posterior_mean(counts, prior)
    risk = float(((estimate - rates) ** 2).mean())
    bayes = 8.0 / (2.0 * 3.0)  # a / (b (b + 1)) with the true prior
    assert risk == pytest.approx(bayes, rel=0.03)
    assert risk < 0.4 * float(((counts - rates) ** 2).mean())  # the raw counts' risk: 4
    true = poisson_gamma_posterior_mean(counts, GammaPrior(shape, rate))
    assert float(((true - rates) ** 2).mean()) == pytest.approx(bayes, rel=0.03)


def test_denoise_command_streams_the_stack_and_refuses_what_it_cannot_do(stack, tmp_path, capsys):
    """``cryomath denoise``: the Wiener result through the CLI (batches of 64) equals the
    in-memory one within float32 rounding, and its STAR reads back onto the new stack; the
    Poisson-Gamma method without a dose is refused in one line."""
    import json

    from cryomath.cli import main
    from cryomath.io import read_mrc, read_particles

    table, _, folder = stack
    out = tmp_path / "dn"
    assert main(["denoise", str(folder / "particles.star"), "--out", str(out), "--batch-size",
                 "64", "--particle-diameter", "52", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["images"] == 400
    written = torch.from_numpy(read_mrc(out / "denoised.mrcs")[0].astype(np.float64))
    batches = list(iter_batches(table, 400, None, torch.float64))
    noise = estimate_noise_from_background(batches, 13.0)
    expected = wiener_denoise(batches[0], estimate_signal_power(batches, noise), noise)
    assert float((written - expected).abs().max()) < 1e-5 * float(expected.abs().max())
    again = read_particles(out / "particles.star")
    assert again.n == 400 and set(again.image_paths) == {"denoised.mrcs"}
    cwf = tmp_path / "cwf"
    assert main(["denoise", str(folder / "particles.star"), "--out", str(cwf), "--method", "cwf",
                 "--ctf-corrected", "--particle-diameter", "52", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["ctf_corrected"] is True
    prior = estimate_steerable_covariance(batches, noise)
    expected = cwf_denoise(batches[0], prior, noise, ctf_corrected=True)
    written = torch.from_numpy(read_mrc(cwf / "denoised.mrcs")[0].astype(np.float64))
    assert float((written - expected).abs().max()) < 1e-5 * float(expected.abs().max())
    assert main(["denoise", str(folder / "particles.star"), "--method", "poisson-gamma",
                 "--out", str(tmp_path / "pg")]) == 1  # fmt: skip
    assert "needs the dose" in capsys.readouterr().err
