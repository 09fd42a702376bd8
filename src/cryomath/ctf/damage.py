"""Radiation damage: the exposure filter of Grant & Grigorieff (2015, eLife 4:e06980) and the
optimal dose weighting of a movie's frames.

The signal at spatial frequency ``k`` (1/A) after an accumulated exposure ``N`` (e/A^2) is
attenuated by ``q = exp(-N / (2 N_e(k)))``, with the critical exposure (their eq. 3, fitted at
300 kV) ``N_e(k) = 0.245 k^-1.665 + 2.81`` e/A^2, infinite at ``k = 0``. Slower electrons do more
damage: RELION divides the exposure by 0.8 at 200 kV and by 0.64 at 100 kV
(``motioncorr_runner.cpp``), here ``N_e`` is multiplied by those factors (the same
attenuation); other voltages are refused, as RELION does. A frame's exposure is the one
accumulated at its end (pre-exposure included), as RELION counts it.

Dose weighting (their eq. 9): frame ``f`` is weighted by ``q_f / sqrt(sum_f q_f^2)`` at each
frequency, which maximises the sum's signal-to-noise ratio for frames of equal noise and keeps
the noise power of one frame.
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid

VOLTAGE_FACTORS = {300.0: 1.0, 200.0: 0.8, 100.0: 0.64}


def critical_exposure(frequency_per_angstrom: torch.Tensor, voltage_kv: float = 300.0):
    """``N_e(k)`` (e/A^2) at ``frequency_per_angstrom`` (any shape; infinite at 0)."""
    factor = next((f for v, f in VOLTAGE_FACTORS.items() if abs(voltage_kv - v) <= 2), None)
    if factor is None:
        raise InvalidInputError(
            f"the exposure filter is known at 300, 200 and 100 kV, not {voltage_kv:g} kV"
        )
    k = torch.as_tensor(frequency_per_angstrom)
    return factor * (0.245 * k.abs().pow(-1.665) + 2.81)


def exposure_filter(frequency_per_angstrom: torch.Tensor, exposure_e_per_a2, voltage_kv=300.0):
    """``exp(-N / (2 N_e(k)))``: ``exposure_e_per_a2`` ``(F,)`` (or a number) against the
    frequencies ``(...)`` gives ``(F, ...)`` (or ``(...)``)."""
    ne = critical_exposure(frequency_per_angstrom, voltage_kv)
    exposure = torch.as_tensor(exposure_e_per_a2, dtype=ne.dtype, device=ne.device)
    if not bool((exposure >= 0).all()):
        raise InvalidInputError("exposures must be non-negative")
    exposure = exposure.reshape(*exposure.shape, *([1] * ne.ndim))
    return torch.exp(-exposure / (2 * ne))


def frame_exposures(n_frames: int, dose_per_frame_e_per_a2: float, pre_exposure=0.0):
    """``(F,)`` the exposure accumulated at the end of each frame (RELION's count)."""
    if n_frames < 1 or not dose_per_frame_e_per_a2 > 0 or pre_exposure < 0:
        raise InvalidInputError("need at least one frame, a positive dose and pre-exposure >= 0")
    frames = torch.arange(1, n_frames + 1, dtype=torch.float64)
    return pre_exposure + dose_per_frame_e_per_a2 * frames


def dose_weights(shape: tuple[int, int], pixel_size_angstrom: float, exposures_e_per_a2,
                 voltage_kv: float = 300.0, dtype=torch.float64, device=None):  # fmt: skip
    """``(F, h, w // 2 + 1)`` the weights of ``F`` frames of ``shape`` on the rfft grid (module
    docstring): each frequency's weights have a sum of squares of 1."""
    k = fftfreq_grid(shape, voxel_size_angstrom=pixel_size_angstrom, dtype=dtype,
                     device=device).norm(dim=-1)  # fmt: skip
    q = exposure_filter(k, torch.as_tensor(exposures_e_per_a2, dtype=dtype, device=device),
                        voltage_kv)  # fmt: skip
    return q / torch.sqrt((q * q).sum(0, keepdim=True))


def dose_weighted_sum(frames: torch.Tensor, pixel_size_angstrom: float, exposures_e_per_a2,
                      voltage_kv: float = 300.0) -> torch.Tensor:  # fmt: skip
    """The dose-weighted sum ``(..., h, w)`` of aligned ``frames (..., F, h, w)`` with
    ``exposures_e_per_a2 (F,)`` (e.g. :func:`frame_exposures`)."""
    exposures = torch.as_tensor(exposures_e_per_a2)
    if frames.ndim < 3 or frames.shape[-3] != len(exposures):
        raise InvalidInputError(
            f"frames must be (..., {len(exposures)}, h, w), got {tuple(frames.shape)}"
        )
    h, w = frames.shape[-2:]
    weights = dose_weights((h, w), pixel_size_angstrom, exposures, voltage_kv, frames.dtype,
                           frames.device)  # fmt: skip
    summed = (fft_nd(frames, 2, rfft=True) * weights).sum(-3)
    return ifft_nd(summed, (h, w), rfft=True)
