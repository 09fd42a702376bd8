"""Acting with rotations: on points, on each other.

Two ways to rotate points: ``rotate_points`` (matrix) and ``rotate_points_quaternion``
(``v' = v + 2w (u x v) + 2 u x (u x v)`` with ``q = (w, u)``). The matrix path is the faster one
for many points per rotation (9 multiply-adds per point against ~18 for the quaternion formula,
and it runs as one batched matmul); bench/so3.py times both (bench/RESULTS.md). Store rotations
as quaternions (4 numbers, cheap to compose and renormalise), apply them as matrices.
"""

import torch

from cryomath.so3.quaternion import quaternion_conjugate, quaternion_multiply


def rotate_points(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Rotate ``(..., n, 3)`` points ``(x, y, z)`` by ``(..., 3, 3)`` matrices: ``p' = R p``."""
    return points @ matrix.transpose(-1, -2)


def rotate_points_quaternion(q: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Rotate ``(..., n, 3)`` points by ``(..., 4)`` unit quaternions ``(w, x, y, z)``."""
    w, u = q[..., None, :1], q[..., None, 1:]
    t = 2 * torch.linalg.cross(u.expand_as(points), points, dim=-1)
    return points + w * t + torch.linalg.cross(u.expand_as(points), t, dim=-1)


def compose(*matrices: torch.Tensor) -> torch.Tensor:
    """``R1 R2 ... Rn`` of ``(..., 3, 3)`` matrices: apply ``Rn`` first (leading dims broadcast)."""
    out = matrices[0]
    for m in matrices[1:]:
        out = out @ m
    return out


def invert(matrix: torch.Tensor) -> torch.Tensor:
    """The inverse rotations ``R^T`` of ``(..., 3, 3)`` matrices."""
    return matrix.transpose(-1, -2)


def projection_directions(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` unit projection (viewing) directions in the map's frame of ``(..., 3, 3)``
    poses A: the third row of A, the map axis A carries onto the beam (docs/conventions.md)."""
    return matrix[..., 2, :]


def compose_quaternions(*quaternions: torch.Tensor) -> torch.Tensor:
    """``q1 q2 ... qn`` of ``(..., 4)`` quaternions ``(w, x, y, z)`` (Hamilton): apply ``qn``
    first; renormalised against drift."""
    out = quaternions[0]
    for q in quaternions[1:]:
        out = quaternion_multiply(out, q)
    return out / torch.linalg.vector_norm(out, dim=-1, keepdim=True)


def invert_quaternion(q: torch.Tensor) -> torch.Tensor:
    """The inverse rotations of ``(..., 4)`` unit quaternions ``(w, x, y, z)``."""
    return quaternion_conjugate(q)
