"""Rotation vectors (axis * angle in radians) and the exponential / logarithm maps.

``matrix_from_rotvec(v)`` is Rodrigues' formula, ``exp([v]_x)``; ``rotvec_from_matrix`` is its
inverse with the angle in ``[0, pi]``. Both are stable and have finite gradients at the identity
(series expansion below ``_SMALL``) and near pi (through the quaternion, never arccos).
"""

import torch

from cryomath.so3.quaternion import matrix_from_quaternion, quaternion_from_matrix

_SMALL = 1e-4  # below this angle (rad) the truncated series are exact to float64 precision


def quaternion_from_rotvec(rotvec: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` rotation vectors -> ``(..., 4)`` unit quaternions ``(w, x, y, z)``."""
    angle_sq = (rotvec * rotvec).sum(-1, keepdim=True)
    small = angle_sq < _SMALL**2
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle_sq), angle_sq))
    # sin(a/2)/a, with its Taylor series 1/2 - a^2/48 near 0
    scale = torch.where(small, 0.5 - angle_sq / 48, torch.sin(angle / 2) / angle)
    w = torch.where(small, 1 - angle_sq / 8, torch.cos(angle / 2))
    return torch.cat([w, rotvec * scale], dim=-1)


def rotvec_from_quaternion(q: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` quaternions -> ``(..., 3)`` rotation vectors with angle in ``[0, pi]``."""
    q = torch.where(q[..., :1] < 0, -q, q)
    w, xyz = q[..., :1], q[..., 1:]
    sin_half_sq = (xyz * xyz).sum(-1, keepdim=True)
    small = sin_half_sq < (_SMALL / 2) ** 2
    sin_half = torch.sqrt(torch.where(small, torch.ones_like(sin_half_sq), sin_half_sq))
    angle = 2 * torch.atan2(sin_half, w)
    # angle / sin(angle/2) = 2 atan(s/w) / s -> 2 / w * (1 - s^2 / (3 w^2)) near 0
    scale = torch.where(small, 2 / w * (1 - sin_half_sq / (3 * w * w)), angle / sin_half)
    return xyz * scale


def matrix_from_rotvec(rotvec: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` rotation vectors -> ``(..., 3, 3)`` rotation matrices (Rodrigues)."""
    return matrix_from_quaternion(quaternion_from_rotvec(rotvec))


def rotvec_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 3)`` rotation vectors (angle in [0, pi])."""
    return rotvec_from_quaternion(quaternion_from_matrix(matrix))
