# %% [markdown]
# # Denoising with conjugate priors (after Huang et al., 2021)
#
# A particle image `y = x + n` with Gaussian noise and a Gaussian prior on `x` has a Gaussian
# posterior whose mean is the Wiener filter; counting noise with a Gamma prior on the rate has
# a Gamma posterior. Both computed on projections of the bundled 6VYB N-domain, and checked
# against the clean images; and the Gaussian prior with a full (steerable) covariance, CWF.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from cryomath import so3
from cryomath.atoms import map_from_model, read_atoms
from cryomath.ctf.filters import wiener_filter
from cryomath.demo import BUNDLED_MODEL
from cryomath.denoising import cwf_denoise, estimate_steerable_covariance
from cryomath.fourier.fft import irfft_2d, rfft_2d
from cryomath.imaging import NoiseSpectrum, ParticleBatch
from cryomath.noise import add_white_noise, expected_counts, shot_noise
from cryomath.projection import project_fourier

OUT = Path(os.environ.get("CRYOMATH_GUIDE_OUT", "guide-output"))
OUT.mkdir(parents=True, exist_ok=True)
volume, _ = map_from_model(read_atoms(BUNDLED_MODEL), 1.5, 6.0)
clean = project_fourier(volume, so3.random_rotations(200, 0))  # (200, n, n)
n = clean.shape[-1]

# %% [markdown]
# ## Gaussian noise, Gaussian prior: the posterior mean is the Wiener filter
# With a stationary prior (zero mean, power `S(k)` per frequency) and white noise of variance
# `s2`, each Fourier coefficient's posterior mean is `S / (S + s2 n^2) Y` (numpy's unnormalised
# FFT: noise power `s2 n^2`). `S` is estimated from 150 other clean projections (the prior),
# and the filter is applied to 50 held-out noisy images at SNR 0.1.

# %%
prior, test = clean[:150], clean[150:]
power = (rfft_2d(prior).abs() ** 2).mean(0)
generator = torch.Generator().manual_seed(1)
noisy = add_white_noise(test, 0.1, generator=generator)
noise_variance = float((noisy - test).var())
gain = power / (power + noise_variance * n * n)
posterior_mean = irfft_2d(rfft_2d(noisy) * gain, (n, n))
# the same estimate through the library's Wiener filter (CTF = 1, SNR per frequency S / s2 n^2)
library = wiener_filter(noisy, torch.ones_like(power), power / (noise_variance * n * n))
assert torch.allclose(posterior_mean, library, atol=1e-10)
mse_noisy = float(((noisy - test) ** 2).mean())
mse_posterior = float(((posterior_mean - test) ** 2).mean())
print(f"Gaussian: MSE noisy {mse_noisy:.4g}, posterior mean {mse_posterior:.4g}")
assert mse_posterior < 0.1 * mse_noisy
# the Bayes risk of the diagonal Gaussian model, per pixel: sum_k S s2 / (S + s2 n^2) / n^2
# over the full grid (measured 0.0817 against 0.0801 predicted)
weights = torch.ones_like(power)
weights[:, 1 : (n + 1) // 2] = 2  # rfft halves count twice
expected = float((weights * power * noise_variance / (power + noise_variance * n * n)).sum()) / (
    n * n
)
print(f"predicted posterior MSE {expected:.4g}")
assert abs(mse_posterior / expected - 1) < 0.25

# %% [markdown]
# ## A Gaussian prior with a covariance: covariance Wiener filtering
# The Wiener filter above treats every frequency as independent. Projections of one molecule
# are not: their spectra are correlated across radii, for each angular frequency of the
# rings (in-plane rotations make the covariance block-diagonal in it). CWF (Bhamre, Zhang &
# Singer 2016) estimates that covariance from the noisy images alone, shrinks its eigenvalues
# to remove the noise (`cryomath.denoising.cwf`), and takes each image's posterior mean under
# it. From the 200 noisy images, with no clean prior at all, it beats the Wiener filter that
# knew the true power (measured 0.060 against 0.082).

# %%
everything = add_white_noise(clean, 0.1, generator=torch.Generator().manual_seed(3))
everything[150:] = noisy  # the same 50 test images as above
stack = ParticleBatch.from_tensors(everything, so3.random_rotations(200, 0), 1.5)
white = NoiseSpectrum((0,), torch.full((1, n), noise_variance * n * n / 2, dtype=torch.float64))
cwf = cwf_denoise(stack, estimate_steerable_covariance([stack], white), white)[150:]
mse_cwf = float(((cwf - test) ** 2).mean())
print(
    f"CWF from the noisy images: MSE {mse_cwf:.4g} (Wiener with the true power {mse_posterior:.4g})"
)
assert mse_cwf < 0.85 * mse_posterior

# %% [markdown]
# ## Counting noise, Gamma prior: the posterior is Gamma
# Detected electrons `y ~ Poisson(lambda)` per pixel with `lambda ~ Gamma(a, b)` (rate `b`):
# the posterior is `Gamma(a + y, b + 1)`, mean `(a + y) / (b + 1)`. A prior centred on the
# average image (mean `a / b = m`, concentration `b`) shrinks each pixel's count toward it.

# %%
dose, pixel = 5.0, 1.5
contrast = 0.3 * test / test.abs().max()  # weak phase contrast
counts = shot_noise(contrast, dose, pixel, generator=torch.Generator().manual_seed(2))
truth = expected_counts(contrast, dose, pixel)
m = expected_counts(0.3 * prior.mean(0) / test.abs().max(), dose, pixel)
b = 4.0
posterior = (b * m + counts) / (b + 1)
mse_counts = float(((counts - truth) ** 2).mean())
mse_gamma = float(((posterior - truth) ** 2).mean())
print(f"Poisson: MSE raw counts {mse_counts:.4g}, Gamma posterior mean {mse_gamma:.4g}")
assert mse_gamma < mse_counts
# raw counts are unbiased with variance lambda: their MSE is the mean rate (sampling error 3 %)
assert abs(mse_counts / float(truth.mean()) - 1) < 0.03

fig, axes = plt.subplots(1, 6, figsize=(14, 2.8))
for ax, image, title in zip(
    axes,
    (test[0], noisy[0], posterior_mean[0], cwf[0], counts[0], posterior[0]),
    (
        "clean",
        "SNR 0.1",
        "Gaussian posterior mean",
        "CWF",
        f"counts ({dose:g} e/A^2)",
        "Gamma posterior mean",
    ),
    strict=True,
):
    ax.imshow(image, cmap="gray", origin="lower")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.savefig(OUT / "denoising.png", dpi=100)
