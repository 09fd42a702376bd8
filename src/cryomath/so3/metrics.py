"""Distances between rotations (Hartley, Trumpf, Dai & Li, IJCV 2013, Table 2).

With theta the geodesic angle between R and S:
``||R - S||_F = 2 sqrt(2) sin(theta / 2)`` (chordal) and
``min(||q - p||, ||q + p||) = 2 sin(theta / 4)`` (quaternion). The angle is computed from the
chord for theta < pi/2 (the difference of two nearby float32 matrices is exact, so tiny angles
keep their relative precision) and from ``atan2(|skew(R^T S)|, trace - 1)`` above (accurate
near pi); never from arccos of the trace, which loses everything below ~1e-4 rad in float32.
"""

import math

import torch

from cryomath.so3.checks import check_rotation_matrices
from cryomath.so3.quaternion import quaternion_from_matrix

_SQRT2 = math.sqrt(2.0)


def _safe_norm(x: torch.Tensor) -> torch.Tensor:
    """Frobenius norm over the last two dims with a zero (not NaN) gradient at 0."""
    squared = (x * x).sum((-1, -2))
    positive = squared > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, squared, 1.0)), 0.0)


def geodesic_distance(r: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Angle (radians, in ``[0, pi]``) of ``R^T S`` for ``(..., 3, 3)`` matrices (broadcast).
    Gradients are finite everywhere (0 at R = S and at theta = pi). Matrices that are not
    rotations (NaN, not orthogonal, det -1) are refused."""
    r, s = check_rotation_matrices(r), check_rotation_matrices(s)
    chord = _safe_norm(r - s)
    use_chord = chord < 2.0  # chord 2 <=> theta = pi / 2
    small = 2 * torch.asin(torch.where(use_chord, chord, 0.0) / (2 * _SQRT2))
    relative = r.transpose(-1, -2) @ s
    skew = relative - relative.transpose(-1, -2)
    trace = relative.diagonal(dim1=-2, dim2=-1).sum(-1)
    large = torch.atan2(_safe_norm(skew) / _SQRT2, trace - 1)
    return torch.where(use_chord, small, large)


def chordal_distance(r: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``||R - S||_F`` for ``(..., 3, 3)`` rotation matrices."""
    return torch.linalg.matrix_norm(check_rotation_matrices(r) - check_rotation_matrices(s))


def quaternion_distance(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``min(||q - p||, ||q + p||)`` for ``(..., 4)`` unit quaternions (sign-blind)."""
    minus = torch.linalg.vector_norm(q - p, dim=-1)
    plus = torch.linalg.vector_norm(q + p, dim=-1)
    return torch.minimum(minus, plus)


def quaternion_geodesic_distance(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (radians) between the rotations of ``(..., 4)`` unit quaternions:
    ``4 atan2(||q - p||, ||q + p||)`` with the signs aligned (accurate at 0 and pi)."""
    aligned = torch.where(((q * p).sum(-1, keepdim=True) < 0), -p, p)
    minus = torch.linalg.vector_norm(q - aligned, dim=-1)
    plus = torch.linalg.vector_norm(q + aligned, dim=-1)
    return 4 * torch.atan2(minus, plus)


def chordal_from_angle(theta: torch.Tensor) -> torch.Tensor:
    """Chordal distance ``2 sqrt(2) sin(theta / 2)`` for geodesic angle ``theta``."""
    return 2 * _SQRT2 * torch.sin(theta / 2)


def angle_from_chordal(chord: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`chordal_from_angle` on ``[0, 2 sqrt(2)]``."""
    return 2 * torch.asin(torch.clamp(chord / (2 * _SQRT2), max=1.0))


def quaternion_from_angle(theta: torch.Tensor) -> torch.Tensor:
    """Quaternion distance ``2 sin(theta / 4)`` for geodesic angles ``theta (...)`` (radians)."""
    return 2 * torch.sin(theta / 4)


def angle_from_quaternion_distance(distance: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`quaternion_from_angle` on ``[0, sqrt(2)]``."""
    return 4 * torch.asin(distance / 2)


def pairwise_geodesic_distance(
    r: torch.Tensor, s: torch.Tensor, max_elements: int = 2**22
) -> torch.Tensor:
    """``(m, 3, 3)`` and ``(n, 3, 3)`` -> ``(m, n)`` geodesic angles (radians), through unit
    quaternions, in row blocks of at most ``max_elements`` pairs (bounded memory)."""
    r, s = check_rotation_matrices(r), check_rotation_matrices(s)
    q, p = quaternion_from_matrix(r), quaternion_from_matrix(s)
    step = max(1, max_elements // max(p.shape[0], 1))
    rows = [
        quaternion_geodesic_distance(q[i : i + step, None, :], p[None, :, :])
        for i in range(0, q.shape[0], step)
    ]
    return torch.cat(rows) if rows else q.new_zeros((0, p.shape[0]))
