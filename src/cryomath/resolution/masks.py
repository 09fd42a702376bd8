"""Masks for FSC: from a threshold (binarise, extend, soft edge: RELION's ``mask_create``),
and phase randomisation to correct the FSC of masked maps (Chen et al., Ultramicroscopy 135,
24-35, 2013)."""

import math

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.shells import shell_index
from cryomath.noise.draws import uniform


def auto_mask(
    volume: torch.Tensor, threshold: float, dilate_px: float = 3.0, soft_edge_px: float = 6.0
) -> torch.Tensor:
    """A soft mask ``(z, y, x)`` in [0, 1] as ``relion_mask_create`` makes one (``mask.cpp``'s
    ``autoMask``): ``volume >= threshold``, extended to every voxel closer than ``dilate_px``
    to it, then ``0.5 (1 + cos(pi d / soft_edge_px))`` at the Euclidean distance ``d`` from
    that, where ``d < soft_edge_px``."""
    if volume.ndim != 3:
        raise InvalidInputError("auto_mask takes one 3-D map")
    inside = volume >= threshold
    if not bool(inside.any()):
        raise InvalidInputError(f"no voxel at or above the threshold {threshold}")
    if dilate_px > 0:
        inside = _squared_distance(inside, math.ceil(dilate_px), volume.dtype) < dilate_px**2
    mask = inside.to(volume.dtype)
    if soft_edge_px > 0:
        d2 = _squared_distance(inside, math.ceil(soft_edge_px), volume.dtype)
        edge = (d2 > 0) & (d2 < soft_edge_px**2)
        mask[edge] = 0.5 * (1 + torch.cos(math.pi * d2[edge].sqrt() / soft_edge_px))
    return mask


def _squared_distance(inside: torch.Tensor, reach: int, dtype: torch.dtype) -> torch.Tensor:
    """The squared Euclidean distance of every voxel to the nearest voxel of ``inside``, exact
    up to ``reach`` voxels (beyond: larger, or inf): ``dz^2 + dy^2 + dx^2`` is minimised one
    axis at a time, each a minimum over the shifts ``-reach..reach`` (no wrap-around)."""
    d2 = torch.where(inside, 0.0, math.inf).to(dtype)
    for axis in range(3):
        n = d2.shape[axis]
        best = d2.clone()
        for step in range(1, min(reach, n - 1) + 1):
            ahead, behind = d2.narrow(axis, step, n - step), d2.narrow(axis, 0, n - step)
            near = best.narrow(axis, 0, n - step)  # a voxel and the one ``step`` after it
            torch.minimum(near, ahead + step**2, out=near)
            far = best.narrow(axis, step, n - step)
            torch.minimum(far, behind + step**2, out=far)
        d2 = best
    return d2


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
