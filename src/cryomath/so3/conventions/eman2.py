"""EMAN2 / SPARX ``Transform`` rotation types (Baldwin & Penczek, JSB 2007), to and from the pose
matrix A. EMAN2 stores the matrix M it applies to the object, and ``M = A`` for every type.

Parameters (degrees unless noted), with the ranges EMAN2's ``get_rotation`` returns:

- ``eman (az, alt, phi)``: ``M^T = Rz(az) Rx(alt) Rz(phi)``, i.e. RELION's (az - 90, alt,
  phi + 90). az, phi in (-180, 180], alt in [0, 180]; at alt = 0 or 180, az = 0.
  ``imagic (alpha, beta, gamma)`` is the same triplet.
- ``spider (phi, theta, psi)`` and ``mrc (phi, theta, omega)``: RELION's angles, with phi and
  psi in [0, 360).
- ``xyz (xtilt, ytilt, ztilt)``: ``M^T = Rx(xtilt) Ry(ytilt) Rz(ztilt)`` (intrinsic). Angles in
  (-180, 180] (EMAN2 itself can return ztilt > 360; that is not copied).
- ``quaternion (e0, e1, e2, e3)``: the Hamilton quaternion of ``M^T``, e0 >= 0.
- ``spin (omega, n1, n2, n3)``: ``M^T`` as angle omega in [0, 180] about unit axis n (n = z at
  the identity); ``sgirot (q, n1, n2, n3)`` the same; ``spinvec (v1, v2, v3)`` = n * omega / 360
  (length in turns). Axes given on input are normalised.
"""

import math

import torch

from cryomath.so3.axis_angle import matrix_from_rotvec
from cryomath.so3.conventions.ranges import wrap_positive_degrees, wrap_signed_degrees
from cryomath.so3.conventions.relion import matrix_from_relion_euler, relion_euler_from_matrix
from cryomath.so3.euler import SCIPY_GIMBAL_TOLERANCE_RAD, euler_from_matrix, matrix_from_euler
from cryomath.so3.quaternion import matrix_from_quaternion, quaternion_from_matrix


def _t(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.transpose(-1, -2)


def matrix_from_eman(angles_degrees: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` (az, alt, phi) -> ``(..., 3, 3)`` pose matrices A."""
    return _t(matrix_from_euler(torch.deg2rad(angles_degrees), "ZXZ"))


def eman_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` A -> ``(..., 3)`` (az, alt, phi) with EMAN2's ranges and gimbal rule."""
    az, alt, phi = torch.rad2deg(
        euler_from_matrix(_t(matrix), "ZXZ", SCIPY_GIMBAL_TOLERANCE_RAD)
    ).unbind(-1)
    # euler_from_matrix zeroes the third angle at gimbal lock; EMAN2 zeroes az instead.
    tolerance = math.degrees(SCIPY_GIMBAL_TOLERANCE_RAD)
    upright = alt <= tolerance
    locked = upright | (alt >= 180 - tolerance)
    phi = torch.where(locked, torch.where(upright, az, -az), phi)
    az = torch.where(locked, torch.zeros_like(az), az)
    return wrap_signed_degrees(torch.stack([az, alt, phi], -1))


def matrix_from_spider(angles_degrees: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` (phi, theta, psi) -> A (RELION's triplet)."""
    return matrix_from_relion_euler(angles_degrees)


def spider_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """A -> (phi, theta, psi) with phi, psi in [0, 360)."""
    phi, theta, psi = relion_euler_from_matrix(matrix).unbind(-1)
    return torch.stack([wrap_positive_degrees(phi), theta, wrap_positive_degrees(psi)], -1)


def matrix_from_xyz(angles_degrees: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` (xtilt, ytilt, ztilt) -> A."""
    return _t(matrix_from_euler(torch.deg2rad(angles_degrees), "XYZ"))


def xyz_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """A -> (xtilt, ytilt, ztilt) in (-180, 180]."""
    return wrap_signed_degrees(
        torch.rad2deg(euler_from_matrix(_t(matrix), "XYZ", SCIPY_GIMBAL_TOLERANCE_RAD))
    )


def matrix_from_eman_quaternion(q: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` (e0, e1, e2, e3) -> A."""
    return _t(matrix_from_quaternion(q))


def eman_quaternion_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """A -> (e0, e1, e2, e3) with e0 >= 0."""
    return quaternion_from_matrix(_t(matrix))


def matrix_from_spin(spin: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` (omega degrees, n1, n2, n3) -> A; also EMAN2's ``sgirot``."""
    axis = spin[..., 1:] / torch.linalg.vector_norm(spin[..., 1:], dim=-1, keepdim=True)
    return _t(matrix_from_rotvec(axis * torch.deg2rad(spin[..., :1])))


def spin_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """A -> (omega in [0, 180], n1, n2, n3), axis z at the identity."""
    q = quaternion_from_matrix(_t(matrix))
    sin_half = torch.linalg.vector_norm(q[..., 1:], dim=-1, keepdim=True)
    omega = torch.rad2deg(2 * torch.atan2(sin_half, q[..., :1]))
    z_axis = torch.zeros_like(q[..., 1:])
    z_axis[..., 2] = 1
    axis = torch.where(sin_half > 0, q[..., 1:] / torch.where(sin_half > 0, sin_half, 1), z_axis)
    return torch.cat([omega, axis], -1)


def matrix_from_spinvec(v: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` spin vector (length in turns) -> A."""
    return _t(matrix_from_rotvec(v * (2 * torch.pi)))


def spinvec_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """A -> spin vector n * omega / 360."""
    spin = spin_from_matrix(matrix)
    return spin[..., 1:] * spin[..., :1] / 360.0
