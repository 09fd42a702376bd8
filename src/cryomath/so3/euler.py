"""Euler angles <-> rotation matrices for all 12 axis sequences, intrinsic and extrinsic.

Sequences follow scipy: three letters from ``xyz``; upper case (``"ZYZ"``) is intrinsic (rotate
about the moving axes: ``R = R1(a) R2(b) R3(c)``), lower case (``"zyz"``) is extrinsic (fixed
axes: ``R = R3(c) R2(b) R1(a)``). Matrices are active (``v' = R v``); angles in radians.
Reading angles back gives scipy's ranges and gimbal-lock rule: first and third angles in
``[-pi, pi]``, the second in ``[0, pi]`` (proper, e.g. ZYZ) or ``[-pi/2, pi/2]`` (Tait-Bryan,
e.g. XYZ); at gimbal lock the third angle (of the intrinsic sequence; the first of an extrinsic
one) is 0. Gimbal lock means the second angle lies within ``gimbal_tolerance_rad`` of its lock
value: 0 by default (exact lock only, so round trips are exact to float precision everywhere);
scipy uses ``SCIPY_GIMBAL_TOLERANCE_RAD`` = 1e-7, which the ``scipy`` convention passes.
The method is Bernardes & Maggio (PLoS ONE 2022) on the unit quaternion: no arcsin or arccos
of matrix entries, so it is accurate everywhere.
"""

import math

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.quaternion import quaternion_from_matrix

_AXES = {"x": 0, "y": 1, "z": 2}


def matrix_about_axis(angle: torch.Tensor, axis: str) -> torch.Tensor:
    """Active rotation by ``angle (...)`` radians about ``axis`` in ``"xyz"``: ``(..., 3, 3)``."""
    if axis.lower() not in _AXES:
        raise InvalidInputError(f"axis must be one of x, y, z, got {axis!r}")
    i = _AXES[axis.lower()]
    j, k = (i + 1) % 3, (i + 2) % 3
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    entries = [[zero] * 3 for _ in range(3)]
    entries[i][i] = one
    entries[j][j], entries[j][k] = c, -s
    entries[k][j], entries[k][k] = s, c
    return torch.stack([torch.stack(row, -1) for row in entries], -2)


def check_sequence(seq: str) -> None:
    if len(seq) != 3 or not (seq.isupper() or seq.islower()) or set(seq.lower()) - set(_AXES):
        raise InvalidInputError(
            f"Euler sequence must be 3 letters of xyz, all upper or all lower: {seq!r}"
        )
    if seq[0].lower() == seq[1].lower() or seq[1].lower() == seq[2].lower():
        raise InvalidInputError(f"consecutive Euler axes must differ: {seq!r}")


def matrix_from_euler(angles: torch.Tensor, seq: str) -> torch.Tensor:
    """``(..., 3)`` Euler angles (radians) in sequence ``seq`` -> ``(..., 3, 3)`` matrices."""
    check_sequence(seq)
    m = [matrix_about_axis(angles[..., i], seq[i]) for i in range(3)]
    return m[0] @ m[1] @ m[2] if seq.isupper() else m[2] @ m[1] @ m[0]


SCIPY_GIMBAL_TOLERANCE_RAD = 1e-7  # scipy's: a second angle this close to its lock value


def euler_from_matrix(
    matrix: torch.Tensor, seq: str, gimbal_tolerance_rad: float = 0.0
) -> torch.Tensor:
    """``(..., 3, 3)`` matrices -> ``(..., 3)`` Euler angles (radians) in sequence ``seq``."""
    check_sequence(seq)
    extrinsic = seq.islower()
    axes = seq.lower() if extrinsic else seq.lower()[::-1]  # intrinsic = reversed extrinsic
    i, j, k = (_AXES[c] for c in axes)
    proper = i == k
    if proper:
        k = 3 - i - j
    sign = (i - j) * (j - k) * (k - i) // 2  # parity of the permutation (i, j, k)
    q = quaternion_from_matrix(matrix, canonical=False)
    w, v = q[..., 0], q[..., 1:]
    if proper:
        a, b, c, d = w, v[..., i], v[..., j], v[..., k] * sign
    else:
        a = w - v[..., j]
        b = v[..., i] + v[..., k] * sign
        c = v[..., j] + w
        d = v[..., k] * sign - v[..., i]
    second = 2 * torch.atan2(torch.hypot(c, d), torch.hypot(a, b))
    half_sum, half_diff = torch.atan2(b, a), torch.atan2(d, c)
    near_zero = second.abs() <= gimbal_tolerance_rad
    near_pi = (second - math.pi).abs() <= gimbal_tolerance_rad
    locked = near_zero | near_pi
    lock_angle = torch.where(near_zero, 2 * half_sum, 2 * half_diff * (-1 if extrinsic else 1))
    first = half_sum - half_diff
    third = half_sum + half_diff
    zero = torch.zeros_like(second)
    if extrinsic:  # in the order (i, j, k) the locked-out angle is the third
        first, third = torch.where(locked, lock_angle, first), torch.where(locked, zero, third)
    else:
        first, third = torch.where(locked, zero, first), torch.where(locked, lock_angle, third)
    if not proper:
        third = third * sign
        second = second - math.pi / 2
    if not extrinsic:
        first, third = third, first
    angles = torch.stack([first, second, third], -1)
    # half-angle sums reach (-2 pi, 2 pi): bring them back into [-pi, pi] as scipy does
    angles = torch.where(angles < -math.pi, angles + 2 * math.pi, angles)
    return torch.where(angles > math.pi, angles - 2 * math.pi, angles)
