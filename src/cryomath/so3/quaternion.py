"""Unit quaternions ``(w, x, y, z)`` (Hamilton, scalar first) and rotation matrices.

A quaternion ``q`` represents the active rotation ``R(q)``: ``v' = R v`` for column vectors,
the same convention as ``scipy.spatial.transform.Rotation`` (which stores ``(x, y, z, w)``).
"""

import torch


def matrix_from_quaternion(q: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` quaternions (normalised here) -> ``(..., 3, 3)`` rotation matrices."""
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def quaternion_from_matrix(matrix: torch.Tensor, canonical: bool = True) -> torch.Tensor:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 4)`` unit quaternions ``(w, x, y, z)``.

    Shepperd's method: of the four algebraically equivalent formulas, each element uses the one
    whose pivot (``1 + trace`` or ``1 + 2 R_ii - trace``) is largest, so no division by a small
    number happens anywhere in SO(3). ``canonical`` makes ``w >= 0``.
    """
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    # Row i holds 4 * (q_i * q) computed with pivot i; pivot = 4 q_i^2.
    candidates = torch.stack(
        [
            torch.stack([1 + trace, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, 1 + 2 * m00 - trace, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, 1 + 2 * m11 - trace, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 + 2 * m22 - trace], -1),
        ],
        dim=-2,
    )
    pivots = torch.stack(
        [1 + trace, 1 + 2 * m00 - trace, 1 + 2 * m11 - trace, 1 + 2 * m22 - trace], -1
    )
    best = pivots.argmax(-1, keepdim=True)
    q = torch.take_along_dim(candidates, best[..., None], dim=-2).squeeze(-2)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    if canonical:
        q = torch.where(q[..., :1] < 0, -q, q)
    return q
