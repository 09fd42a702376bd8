"""Soft-edged real-space masks.

Masks are 1 inside, 0 outside, with a raised-cosine edge of width ``soft_edge_px`` starting at
the radius: ``0.5 * (1 + cos(pi * (r - radius) / soft_edge))``. Distances are in pixels from the
centre at index ``N // 2`` (or ``center``, ``(x, y[, z])``). ``radius_px`` may be a tensor of
leading batch shape ``B``; the mask is then ``(*B, *shape)``.
"""

from collections.abc import Sequence

import torch

from cryomath.fourier.grids import real_space_grid


def _soft_step(distance: torch.Tensor, radius: torch.Tensor, soft_edge_px: float) -> torch.Tensor:
    if soft_edge_px <= 0:
        return (distance <= radius).to(distance.dtype)
    t = ((distance - radius) / soft_edge_px).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(torch.pi * t))


def _batched(value, ndim: int, like: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value.reshape(*value.shape, *([1] * ndim))


def spherical_mask(
    shape: Sequence[int],
    radius_px: float | torch.Tensor,
    soft_edge_px: float = 0.0,
    *,
    center: Sequence[float] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Circle (2-D) or sphere (3-D) of ``radius_px``, soft edge outward."""
    grid = real_space_grid(shape, center=center, device=device, dtype=dtype)
    distance = torch.linalg.vector_norm(grid, dim=-1)
    return _soft_step(distance, _batched(radius_px, len(shape), distance), soft_edge_px)


def cylindrical_mask(
    shape: Sequence[int],
    radius_px: float | torch.Tensor,
    height_px: float | torch.Tensor,
    soft_edge_px: float = 0.0,
    *,
    center: Sequence[float] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Cylinder along z, ``(..., d, h, w)``: radius in the xy plane, total ``height_px`` in z."""
    grid = real_space_grid(shape, center=center, device=device, dtype=dtype)
    radial = torch.linalg.vector_norm(grid[..., :2], dim=-1)
    axial = grid[..., 2].abs()
    half_height = _batched(height_px, 3, axial) / 2
    return _soft_step(radial, _batched(radius_px, 3, radial), soft_edge_px) * _soft_step(
        axial, half_height, soft_edge_px
    )
