"""Masks for FSC: from a threshold (binarise, extend, soft edge: RELION's ``mask_create``),
and phase randomisation to correct the FSC of masked maps (Chen et al., Ultramicroscopy 135,
24-35, 2013)."""

import math

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import real_space_grid
from cryomath.fourier.shells import shell_index
from cryomath.noise.draws import uniform


def auto_mask(
    volume: torch.Tensor, threshold: float, dilate_px: float = 3.0, soft_edge_px: float = 6.0
) -> torch.Tensor:
    """A soft mask ``(z, y, x)`` in [0, 1] as ``relion_mask_create`` makes one (``mask.cpp``'s
    ``autoMask``): ``volume >= threshold``, extended to every voxel closer than ``dilate_px``
    to it, then ``0.5 (1 + cos(pi d / soft_edge_px))`` at the Euclidean distance ``d`` from
    that, where ``d < soft_edge_px``. Distances are exact: for each squared distance an
    integer grid allows, the voxels it reaches are those whose ball of that radius holds a
    voxel of the mask (a convolution by FFT, in a box padded against wrap-around)."""
    if volume.ndim != 3:
        raise InvalidInputError("auto_mask takes one 3-D map")
    inside = volume >= threshold
    if not bool(inside.any()):
        raise InvalidInputError(f"no voxel at or above the threshold {threshold}")
    reach = math.ceil(max(dilate_px, 0) + max(soft_edge_px, 0)) + 1
    mask = F.pad(inside.to(volume.dtype), (reach,) * 6)
    if dilate_px > 0:
        mask = _reached(mask, dilate_px**2, strict=True).to(volume.dtype)
    core = torch.fft.rfftn(mask)
    soft = mask.clone()
    for r2 in range(1, math.ceil(soft_edge_px**2) if soft_edge_px > 0 else 1):
        if _three_squares(r2):  # the first distance that reaches a voxel is its own
            new = _reached(mask, r2, strict=False, transform=core) & (soft == 0)
            soft[new] = 0.5 * (1 + math.cos(math.pi * math.sqrt(r2) / soft_edge_px))
    n = volume.shape
    return soft[reach : reach + n[0], reach : reach + n[1], reach : reach + n[2]]


def _three_squares(k: int) -> bool:
    """Whether ``k`` is a sum of three squares (Legendre: unless ``4^a (8b + 7)``)."""
    while k % 4 == 0:
        k //= 4
    return k % 8 != 7


def _reached(binary: torch.Tensor, r2: float, strict: bool, transform=None) -> torch.Tensor:
    """The voxels with a voxel of ``binary`` (0/1) at a squared distance below ``r2`` (or at
    most, with ``strict`` off): its convolution with that ball counts them, by FFT
    (``transform``: ``binary``'s rfft, when known)."""
    shape = tuple(binary.shape)
    grid = real_space_grid(shape, dtype=binary.dtype, device=binary.device)
    d2 = (grid**2).sum(-1)  # integers: exact
    ball = torch.fft.ifftshift(((d2 < r2) if strict else (d2 <= r2)).to(binary.dtype))
    transform = torch.fft.rfftn(binary) if transform is None else transform
    return torch.fft.irfftn(transform * torch.fft.rfftn(ball), s=shape) > 0.5


def randomize_phases(
    volume: torch.Tensor, from_shell: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The map ``(z, y, x)`` with Fourier phases at shells ``>= from_shell`` replaced by random ones
    (amplitudes kept; Hermitian symmetry kept by randomising the rfft half and the real part)."""
    shape = tuple(volume.shape[-3:])
    f = fft_nd(volume, 3, rfft=True)
    shells = shell_index(shape, device=volume.device)
    phase = uniform(f.shape, generator, volume.dtype, volume.device)
    random = torch.polar(f.abs(), 2 * torch.pi * phase)
    f = torch.where(shells >= from_shell, random, f)
    return ifft_nd(f, shape, rfft=True)


def corrected_fsc(
    masked: torch.Tensor, randomized: torch.Tensor, randomize_from_shell: int
) -> torch.Tensor:
    """Chen et al. 2013 (RELION's ``postprocess``): from shell ``randomize_from_shell + 2`` on,
    ``(FSC_masked - FSC_randomized) / (1 - FSC_randomized)``; the masked FSC below it."""
    shells = torch.arange(masked.shape[-1], device=masked.device)
    true = (masked - randomized) / (1 - randomized).clamp(min=1e-12)
    return torch.where(shells >= randomize_from_shell + 2, true, masked)
