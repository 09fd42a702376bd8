"""Masks for FSC: from a threshold (binarise, dilate, soft edge), and phase randomisation to
correct the FSC of masked maps (Chen et al., Ultramicroscopy 135, 24-35, 2013)."""

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.shells import shell_index
from cryomath.noise.draws import uniform


def auto_mask(
    volume: torch.Tensor, threshold: float, dilate_px: float = 3.0, soft_edge_px: float = 6.0
) -> torch.Tensor:
    """A soft mask ``(z, y, x)`` in [0, 1]: ``volume > threshold``, dilated by ``dilate_px`` and
    given a raised-cosine edge of ``soft_edge_px``: distances come from repeated 3x3x3
    max-pooling (chessboard metric)."""
    if volume.ndim != 3:
        raise InvalidInputError("auto_mask takes one 3-D map")
    inside = (volume > threshold).to(volume.dtype)
    if not bool(inside.any()):
        raise InvalidInputError(f"no voxel above the threshold {threshold}")
    total = int(dilate_px + soft_edge_px + 1)
    current = inside[None, None]
    distance = torch.where(inside > 0, 0.0, float("inf")).to(volume.dtype)
    for step in range(1, total + 1):
        current = F.max_pool3d(current, 3, stride=1, padding=1)
        distance = torch.where((current[0, 0] > 0) & torch.isinf(distance), float(step), distance)
    t = ((distance - dilate_px) / max(soft_edge_px, 1e-9)).clamp(0, 1)
    return torch.where(torch.isinf(distance), 0.0, 0.5 * (1 + torch.cos(torch.pi * t))).to(
        volume.dtype
    )


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
