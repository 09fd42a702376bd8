"""Counting noise at a dose, with an optional detector MTF and DQE.

Model: a particle image of contrast ``c (..., h, w)`` (dimensionless, the projected potential
times the CTF, small) gives ``N0 (1 + c)`` expected electrons per pixel, ``N0 = dose * pixel^2``
(dose in electrons per square Angstrom). Counts are Poisson. A detector with modulation transfer
``MTF(k)`` and detective quantum efficiency ``DQE(k)`` (rfft grids) passes the signal through
the MTF and adds Gaussian noise so that the noise power is ``N0 MTF^2 / DQE`` (DQE = MTF^2 is a
perfect counter with blurred pixels, ``DQE = 1`` adds nothing). :func:`pixel_mtf` is a
counting detector's MTF when each electron lands in one pixel: the square pixel's aperture,
``sinc(kx) sinc(ky)`` (k in cycles/pixel: 0.64 at Nyquist on each axis); a counter that also
misses or double-counts some events has ``DQE = DQE(0) MTF^2``.
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import irfft_2d, rfft_2d
from cryomath.fourier.grids import fftfreq_grid
from cryomath.noise.draws import Generators, poisson, standard_normal


def pixel_mtf(image_shape: tuple[int, int], dtype: torch.dtype = torch.float64,
              device=None) -> torch.Tensor:  # fmt: skip
    """``sinc(kx) sinc(ky)`` on the rfft grid of ``image_shape`` (module docstring)."""
    k = fftfreq_grid(image_shape, dtype=dtype, device=device)
    return torch.sinc(k).prod(-1)


def expected_counts(
    contrast: torch.Tensor, dose_e_per_a2: float, pixel_size_angstrom: float
) -> torch.Tensor:
    """``N0 (1 + c)`` electrons per pixel; raises if some pixel would be negative."""
    if dose_e_per_a2 <= 0 or pixel_size_angstrom <= 0:
        raise InvalidInputError("dose and pixel size must be positive")
    counts = dose_e_per_a2 * pixel_size_angstrom**2 * (1 + contrast)
    if bool((counts < 0).any()):
        raise InvalidInputError("contrast below -1: negative expected counts; scale it down")
    return counts


def shot_noise(
    contrast: torch.Tensor,
    dose_e_per_a2: float,
    pixel_size_angstrom: float,
    mtf: torch.Tensor | None = None,
    dqe: torch.Tensor | None = None,
    generator: Generators = None,
) -> torch.Tensor:
    """Detected counts ``(..., h, w)`` (float) for images of ``contrast`` at a dose;
    ``generator``: one, or one per image (``cryomath.noise.draws``)."""
    rate = expected_counts(contrast, dose_e_per_a2, pixel_size_angstrom)
    counts = poisson(rate, generator)
    if mtf is None and dqe is None:
        return counts
    h, w = contrast.shape[-2:]
    mtf = torch.ones((h, w // 2 + 1), dtype=rate.dtype, device=rate.device) if mtf is None else mtf
    spectrum = rfft_2d(counts) * mtf
    if dqe is not None:
        # extra white-noise power N0 MTF^2 (1/DQE - 1) per frequency
        n0 = dose_e_per_a2 * pixel_size_angstrom**2
        extra = n0 * mtf**2 * (1 / dqe - 1)
        white = standard_normal(counts.shape, generator, rate.dtype, rate.device)
        spectrum = spectrum + rfft_2d(white) * torch.sqrt(extra.clamp(min=0))
    return irfft_2d(spectrum, (h, w))
