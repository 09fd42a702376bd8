"""Rigid transforms with uniform scale, ``x' = s R x + t``, as 4x4 matrices.

Composition follows the SPARX/EMAN2 Transform paper (Baldwin & Penczek, JSB 2007): applying
``T1`` then ``T2`` gives ``s = s2 s1``, ``R = R2 R1``, ``t = s2 R2 t1 + t2``, which is the product
of the 4x4 forms ``T2 T1``. Points are ``(x, y, z)``.
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.act import compose


def rigid_matrix(
    rotation: torch.Tensor,
    translation: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(..., 3, 3)`` R, ``(..., 3)`` t, ``(...)`` s -> ``(..., 4, 4)`` ``[[s R, t], [0, 1]]``."""
    batch = rotation.shape[:-2]
    if translation is None:
        translation = rotation.new_zeros((*batch, 3))
    if scale is not None:
        rotation = rotation * torch.as_tensor(scale, dtype=rotation.dtype)[..., None, None]
    top = torch.cat([rotation, translation[..., :, None].expand(*rotation.shape[:-1], 1)], -1)
    bottom = rotation.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(*top.shape[:-2], 1, 4)
    return torch.cat([top, bottom], -2)


def decompose_rigid(transform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(..., 4, 4)`` -> ``(R, t, s)``; the scale is the cube root of the determinant."""
    if tuple(transform.shape[-2:]) != (4, 4):
        raise InvalidInputError(f"rigid transforms must be (..., 4, 4), got {transform.shape}")
    linear = transform[..., :3, :3]
    scale = torch.linalg.det(linear).clamp(min=0) ** (1 / 3)
    return linear / scale[..., None, None], transform[..., :3, 3], scale


def compose_rigid(*transforms: torch.Tensor) -> torch.Tensor:
    """``T1 T2 ... Tn`` (4x4): apply ``Tn`` first."""
    return compose(*transforms)


def invert_rigid(transform: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(..., 4, 4)`` transforms ``x' = s R x + t``: ``x = R^T (x' - t) / s``."""
    rotation, translation, scale = decompose_rigid(transform)
    inverse_rotation = rotation.transpose(-1, -2)
    inverse_t = -(inverse_rotation @ translation[..., None])[..., 0] / scale[..., None]
    return rigid_matrix(inverse_rotation, inverse_t, 1 / scale)


def apply_rigid(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``(..., 4, 4)`` transforms to ``(..., n, 3)`` points."""
    return points @ transform[..., :3, :3].transpose(-1, -2) + transform[..., None, :3, 3]
