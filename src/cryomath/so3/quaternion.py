"""Unit quaternions ``(w, x, y, z)`` (Hamilton, scalar first) and rotation matrices.

A quaternion ``q`` represents the active rotation ``R(q)``: ``v' = R v`` for column vectors,
the same convention as ``scipy.spatial.transform.Rotation`` (which stores ``(x, y, z, w)``).
"""

import torch


def matrix_from_quaternion(q: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` quaternions -> ``(..., 3, 3)`` rotation matrices.

    The homogeneous form (every entry a quadratic in q divided by ``|q|^2``) normalises without
    a square root and builds the matrix in one stack.
    """
    w, x, y, z = q.unbind(-1)
    ww, xx, yy, zz = w * w, x * x, y * y, z * z
    norm_sq = ww + xx + yy + zz
    s = 2 / norm_sq
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    entries = (
        (ww + xx - yy - zz) / norm_sq, s * (xy - wz), s * (xz + wy),
        s * (xy + wz), (ww - xx + yy - zz) / norm_sq, s * (yz - wx),
        s * (xz - wy), s * (yz + wx), (ww - xx - yy + zz) / norm_sq,
    )  # fmt: skip
    return torch.stack(entries, dim=-1).reshape(*q.shape[:-1], 3, 3)


def quaternion_from_matrix(matrix: torch.Tensor, canonical: bool = True) -> torch.Tensor:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 4)`` unit quaternions ``(w, x, y, z)``.

    Shepperd's method: of the four algebraically equivalent formulas, each element uses the one
    whose pivot (``1 + trace`` or ``1 + 2 R_ii - trace``) is largest, so no division by a small
    number happens anywhere in SO(3). ``canonical`` makes ``w >= 0``.
    """
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = matrix.flatten(-2).unbind(-1)
    trace = m00 + m11 + m22
    # pivots 4 q_i^2 on the diagonal; row i holds 4 q_i q
    p0, p1, p2, p3 = 1 + trace, 1 + 2 * m00 - trace, 1 + 2 * m11 - trace, 1 + 2 * m22 - trace
    a, b, c = m21 - m12, m02 - m20, m10 - m01
    d, e, f = m01 + m10, m02 + m20, m12 + m21
    candidates = torch.stack([p0, a, b, c, a, p1, d, e, b, d, p2, f, c, e, f, p3], -1)
    candidates = candidates.reshape(*matrix.shape[:-2], 4, 4)
    best = torch.stack([p0, p1, p2, p3], -1).argmax(-1, keepdim=True)
    q = torch.take_along_dim(candidates, best[..., None], dim=-2).squeeze(-2)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return canonical_quaternion(q) if canonical else q


def canonical_quaternion(q: torch.Tensor) -> torch.Tensor:
    """Pick the sign of ``q (..., 4)`` that makes ``w >= 0`` (``q`` and ``-q`` are one rotation).
    With ``w = 0`` the first non-zero of ``(x, y, z)`` is made positive (EMAN2's output rule)."""
    first = torch.where(q[..., 0] != 0, q[..., 0], q[..., 1])
    first = torch.where(first != 0, first, q[..., 2])
    first = torch.where(first != 0, first, q[..., 3])
    return torch.where((first < 0)[..., None], -q, q)


def quaternion_multiply(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``p q`` of ``(..., 4)`` quaternions: ``R(p q) = R(p) R(q)``."""
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        dim=-1,
    )


def quaternion_conjugate(q: torch.Tensor) -> torch.Tensor:
    """``(w, -x, -y, -z)``: the inverse rotation of a unit quaternion."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])
