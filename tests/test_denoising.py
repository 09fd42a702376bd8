"""Denoising (``cryomath.denoising``) against its oracles: the Wiener filter with the signal
power estimated from noisy images does as well as the one that knows the true power (from the
clean images ``simulate`` wrote) and noise (within 1 % with the true noise, 10 % with the
noise estimated from the images' background), and Poisson-Gamma shrinkage reaches the Bayes risk
of the Gamma prior, ``a / (b (b + 1))`` per pixel."""

import numpy as np
import pytest
import torch

from cryomath.denoising import (
    GammaPrior,
    estimate_signal_power,
    gamma_prior_from_counts,
    poisson_gamma_posterior_mean,
    wiener_denoise,
)
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
    assert main(["denoise", str(folder / "particles.star"), "--method", "poisson-gamma",
                 "--out", str(tmp_path / "pg")]) == 1  # fmt: skip
    assert "needs the dose" in capsys.readouterr().err
