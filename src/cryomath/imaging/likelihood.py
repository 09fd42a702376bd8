"""Log-likelihoods of a batch's images given predicted images.

Gaussian, in Fourier space, with a noise power ``sigma2`` per optics group and shell (RELION's
model, Scheres 2012): for every rfft sample ``k`` of shell ``s``,

``log p = -sum_k (m_k / 2) [ |X_k - Y_k|^2 / (2 sigma2_s) + log(4 pi sigma2_s / N^2) ]``

with ``m_k`` the Hermitian multiplicity (``fourier.hermitian_multiplicity``), so each Friedel
pair of frequencies counts once, and ``N^2`` the number of pixels. ``sigma2`` is the noise
power per real and imaginary part of a Fourier sample in cryomath's unscaled forward FFT
(``E |noise_k|^2 = 2 sigma2``); white noise of variance ``v`` per pixel has ``sigma2 = N^2 v / 2``,
and then this equals the real-space Gaussian log-likelihood exactly, constants included.

Poisson, in real space, for counting data: the predicted image ``c`` is a contrast, the
expected counts ``N0 (1 + c)`` with ``N0 = dose * pixel^2`` (``noise.expected_counts``).
"""

import math

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.shells import hermitian_multiplicity, shell_index
from cryomath.imaging.batch import ParticleBatch
from cryomath.imaging.noise_spectrum import NoiseSpectrum
from cryomath.noise import expected_counts
from cryomath.noise import poisson_log_likelihood as _poisson


def _observed(batch: ParticleBatch, predicted: torch.Tensor, tail: int) -> torch.Tensor:
    if batch.spectra is None:
        raise InvalidInputError("a likelihood needs the batch's images")
    observed = batch.spectra if tail == 2 else batch.images()
    extra = predicted.ndim - observed.ndim
    if extra < 0 or predicted.shape[0] != observed.shape[0]:
        raise InvalidInputError(
            f"predictions {tuple(predicted.shape)} do not match the batch's images "
            f"{tuple(observed.shape)}"
        )
    return observed.reshape(observed.shape[0], *([1] * extra), *observed.shape[1:])


def gaussian_log_likelihood(
    batch: ParticleBatch,
    predicted_spectra: torch.Tensor,
    noise: NoiseSpectrum,
    max_shell: int | None = None,
    min_shell: int = 0,
) -> torch.Tensor:
    """``(B, *H)`` log-likelihoods of the batch's images given ``predicted_spectra
    (B, *H, n, n // 2 + 1)`` (``imaging.predict_spectra``), under the noise power of the
    batch's optics group; only shells from ``min_shell`` to ``max_shell`` count (a band)."""
    observed = _observed(batch, predicted_spectra, 2)
    n = batch.image_size
    shells = shell_index((n, n), device=batch.device)
    sigma2 = noise.for_batch(batch)
    if len(sigma2) <= int(shells.max()):
        raise InvalidInputError(f"the noise spectrum has {len(sigma2)} shells; {n}^2 images need "
                                f"{int(shells.max()) + 1}")  # fmt: skip
    s2 = sigma2[shells]
    m = hermitian_multiplicity((n, n), device=batch.device, dtype=batch.dtype)
    if max_shell is not None:
        m = m * (shells <= max_shell)
    m = m * (shells >= min_shell)
    residual = (observed - predicted_spectra).abs() ** 2
    constant = (m / 2 * torch.log(4 * math.pi * s2 / n**2)).sum()
    return -(residual * (m / (4 * s2))).sum((-1, -2)) - constant


def poisson_log_likelihood(
    batch: ParticleBatch,
    predicted_images: torch.Tensor,
    dose_e_per_a2: float,
    centred_counts: bool = True,
) -> torch.Tensor:
    """``(B, *H)`` log-likelihoods of counting images given predicted contrast images
    ``(B, *H, n, n)`` (``imaging.predict_images``) at ``dose_e_per_a2``. ``centred_counts``:
    the batch's images are counts minus ``N0`` (as ``simulate`` stores them); False: raw
    counts."""
    pixel = batch.pixel_size_angstrom
    counts = _observed(batch, predicted_images, 3)
    if centred_counts:
        counts = counts + dose_e_per_a2 * pixel**2
    return _poisson(counts, expected_counts(predicted_images, dose_e_per_a2, pixel))
