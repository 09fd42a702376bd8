"""Post-processing of half maps: FSC weighting, Guinier plot and B-factor fit, sharpening and
low-pass filtering.

- FSC weighting (Rosenthal & Henderson 2003): ``sqrt(2 FSC / (1 + FSC))`` per shell.
- Guinier plot: ``ln |F|`` (shell-averaged amplitude) against ``s^2`` (1/A^2).
- B-factor: the straight-line fit of the Guinier plot between ``low`` and ``high`` resolution,
  ``ln|F| = c - B s^2 / 4``; sharpening by ``exp(-B s^2 / 4)`` with ``B < 0`` (RELION's sign:
  a negative B sharpens).
"""

import torch

from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.fourier.shells import hermitian_multiplicity, shell_index, shell_sum


def fsc_weighting(fsc: torch.Tensor) -> torch.Tensor:
    """``sqrt(2 FSC / (1 + FSC))``, 0 where FSC <= 0."""
    f = fsc.clamp(min=0)
    return torch.sqrt(2 * f / (1 + f))


def guinier(volume: torch.Tensor, voxel_size_angstrom: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s^2 (1/A^2), ln |F|)`` per shell 1 .. n // 2 of a cubic map."""
    shape = tuple(volume.shape[-3:])
    n = shape[0]
    f = fft_nd(volume, 3, rfft=True)
    shells = shell_index(shape, device=volume.device)
    w = hermitian_multiplicity(shape, dtype=volume.dtype, device=volume.device)
    n_shells = n // 2 + 1
    amplitude = shell_sum(w * f.abs(), shells, n_shells) / shell_sum(w, shells, n_shells)
    s = torch.arange(n_shells, dtype=volume.dtype, device=volume.device) / (n * voxel_size_angstrom)
    return (s**2)[1:], torch.log(amplitude.clamp(min=1e-30))[1:]


def fit_bfactor(
    volume: torch.Tensor,
    voxel_size_angstrom: float,
    low_angstrom: float = 10.0,
    high_angstrom: float | None = None,
) -> float:
    """B-factor (A^2) of a cubic ``(n, n, n)`` map from the Guinier slope between ``low`` and
    ``high`` resolution (default:
    Nyquist): ``B = -4 * slope``."""
    s2, log_amplitude = guinier(volume, voxel_size_angstrom)
    high = high_angstrom or 2 * voxel_size_angstrom
    keep = (s2 >= 1 / low_angstrom**2) & (s2 <= 1 / high**2)
    x, y = s2[keep], log_amplitude[keep]
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return float(-4 * slope)


def apply_bfactor(
    volume: torch.Tensor, bfactor_angstrom2: float, voxel_size_angstrom: float
) -> torch.Tensor:
    """Multiply the spectrum by ``exp(-B s^2 / 4)`` (B < 0 sharpens)."""
    shape = tuple(volume.shape[-3:])
    k = (
        fftfreq_grid(shape, rfft=True, dtype=volume.dtype, device=volume.device)
        / voxel_size_angstrom
    )
    s2 = (k * k).sum(-1)
    return ifft_nd(
        fft_nd(volume, 3, rfft=True) * torch.exp(-bfactor_angstrom2 * s2 / 4), shape, rfft=True
    )


def low_pass(
    volume: torch.Tensor,
    resolution_angstrom: float,
    voxel_size_angstrom: float,
    soft_width_shells: float = 2.0,
) -> torch.Tensor:
    """Low-pass a cubic ``(..., n, n, n)`` map to ``resolution_angstrom`` with a raised-cosine edge
    ``soft_width_shells`` wide."""
    shape = tuple(volume.shape[-3:])
    n = shape[0]
    k = fftfreq_grid(shape, rfft=True, dtype=volume.dtype, device=volume.device)
    radius = torch.linalg.vector_norm(k, dim=-1) * n  # in shells
    cutoff = n * voxel_size_angstrom / resolution_angstrom
    t = ((radius - cutoff) / max(soft_width_shells, 1e-9) + 0.5).clamp(0, 1)
    filt = 0.5 * (1 + torch.cos(torch.pi * t))
    return ifft_nd(fft_nd(volume, 3, rfft=True) * filt, shape, rfft=True)


def weight_by_shell(volume: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Multiply every Fourier shell s of a cubic ``(..., n, n, n)`` map by ``weights[s]``
    (``(n_shells,)``; beyond: 0)."""
    shape = tuple(volume.shape[-3:])
    shells = shell_index(shape, device=volume.device).clamp(max=len(weights))
    table = torch.cat([weights, weights.new_zeros(1)])
    return ifft_nd(fft_nd(volume, 3, rfft=True) * table[shells], shape, rfft=True)


def flatten_spectrum(volume: torch.Tensor) -> torch.Tensor:
    """A cubic ``(..., n, n, n)`` map with every Fourier shell up to Nyquist scaled to unit rms
    amplitude and the zero frequency removed (phases kept): the limit of sharpening, a test
    object with as much signal at Nyquist as at low resolution."""
    shape = tuple(volume.shape[-3:])
    n = shape[-1]
    shells = shell_index(shape, device=volume.device)
    f = fft_nd(volume, 3, rfft=True)
    multiplicity = hermitian_multiplicity(shape, dtype=volume.dtype, device=volume.device)
    power = shell_sum(f.abs().square() * multiplicity, shells, n // 2 + 1)
    count = shell_sum(multiplicity, shells, n // 2 + 1)
    weights = (count / power.clamp(min=torch.finfo(volume.dtype).tiny)).sqrt()
    weights[0] = 0
    return weight_by_shell(volume, weights)
