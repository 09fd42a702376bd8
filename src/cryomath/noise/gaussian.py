"""Gaussian noise: white at a requested SNR, and coloured from a power spectrum.

SNR (docs/conventions.md): the variance of the clean signal over the pixels of a mask (default:
the whole image), divided by the variance of the noise, per image:
``snr = var(signal[mask]) / sigma^2``.
"""

import torch

from cryomath.errors import InvalidInputError, holds
from cryomath.fourier.fft import irfft_2d, rfft_2d
from cryomath.noise.draws import Generators, standard_normal


def noise_sigma_for_snr(
    images: torch.Tensor, snr: float | torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``(...)`` noise standard deviations giving ``snr`` for ``(..., h, w)`` clean images."""
    snr = torch.as_tensor(snr, dtype=images.dtype, device=images.device)
    if not holds((snr > 0).all()):
        raise InvalidInputError(f"SNR must be positive, got {snr}")
    if mask is None:
        variance = images.flatten(-2).var(-1, unbiased=False)
    else:
        values = images[..., mask.bool()]
        variance = values.var(-1, unbiased=False)
    return torch.sqrt(variance / snr)


def add_white_noise(
    images: torch.Tensor,
    snr: float | torch.Tensor,
    mask: torch.Tensor | None = None,
    generator: Generators = None,
) -> torch.Tensor:
    """``images (..., h, w)`` plus white Gaussian noise at ``snr`` (per image, inside
    ``mask (h, w)``); ``generator``: one, or one per image (``cryomath.noise.draws``)."""
    sigma = noise_sigma_for_snr(images, snr, mask)
    noise = standard_normal(images.shape, generator, images.dtype, images.device)
    return images + noise * sigma[..., None, None]


def coloured_noise(
    power_spectrum: torch.Tensor,
    image_shape: tuple[int, int],
    generator: Generators = None,
) -> torch.Tensor:
    """Real Gaussian noise ``(..., h, w)`` whose expected ``|rfft|^2 / (h w)`` equals
    ``power_spectrum (..., h, w // 2 + 1)`` (the per-pixel variance is its mean over the full
    grid; a spectrum of ones gives unit white noise)."""
    h, w = image_shape
    if tuple(power_spectrum.shape[-2:]) != (h, w // 2 + 1):
        raise InvalidInputError(
            f"power spectrum must be (..., {h}, {w // 2 + 1}), got {tuple(power_spectrum.shape)}"
        )
    shape = (*power_spectrum.shape[:-2], h, w)
    white = standard_normal(shape, generator, power_spectrum.dtype, power_spectrum.device)
    return irfft_2d(rfft_2d(white) * torch.sqrt(power_spectrum), (h, w))
