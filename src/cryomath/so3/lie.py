"""The Lie algebra so(3): ``hat``/``vee`` between vectors and skew matrices, and the exponential
and logarithm maps between so(3) and SO(3).

``exp_map(v) = expm(hat(v))`` (Rodrigues) and ``log_map(R)`` (angle in ``[0, pi]``) go through the
unit quaternion, so both have a small-angle series branch and no arccos near pi; gradients are
finite at the identity and at pi.
"""

import torch

from cryomath.so3.axis_angle import matrix_from_rotvec, rotvec_from_matrix


def hat(v: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` vectors -> ``(..., 3, 3)`` skew matrices with ``hat(v) u = v x u``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [
            torch.stack([zero, -z, y], -1),
            torch.stack([z, zero, -x], -1),
            torch.stack([-y, x, zero], -1),
        ],
        -2,
    )


def vee(m: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` skew matrices -> ``(..., 3)`` vectors (the skew part of ``m`` is used)."""
    return 0.5 * torch.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]],
        -1,
    )


def exp_map(v: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` tangent vectors (radians) -> ``(..., 3, 3)`` rotations ``expm(hat(v))``."""
    return matrix_from_rotvec(v)


def log_map(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` rotations -> ``(..., 3)`` tangent vectors with norm in ``[0, pi]``."""
    return rotvec_from_matrix(matrix)


def right_jacobian(v: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` -> ``(..., 3, 3)`` ``J_r(v)`` with ``exp(v + dv) = exp(v) exp(J_r(v) dv)`` to
    first order: ``I - (1 - cos t) / t^2 K + (t - sin t) / t^3 K^2``, ``K = hat(v)``, ``t = |v|``
    (series below 1e-4 rad)."""
    t2 = (v * v).sum(-1)[..., None, None]
    t = torch.sqrt(t2.clamp(min=1e-30))
    small = t2 < 1e-8
    a = torch.where(small, 0.5 - t2 / 24, (1 - torch.cos(t)) / t2.clamp(min=1e-30))
    b = torch.where(small, 1 / 6 - t2 / 120, (t - torch.sin(t)) / (t * t2).clamp(min=1e-30))
    k = hat(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(k.shape)
    return eye - a * k + b * (k @ k)
