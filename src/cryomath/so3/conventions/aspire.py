"""ASPIRE: ``Rotation.from_euler(angles)`` takes RELION's (rot, tilt, psi) in radians and builds
``scipy 'ZYZ' = A^T``; its ``angles`` read back with scipy's ranges (tilt in [0, pi], at gimbal
lock psi = 0)."""

import torch

from cryomath.so3.euler import SCIPY_GIMBAL_TOLERANCE_RAD, euler_from_matrix, matrix_from_euler


def matrix_from_aspire_euler(angles_radians: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` ASPIRE Euler angles (radians) -> ``(..., 3, 3)`` pose matrices A."""
    return matrix_from_euler(angles_radians, "ZYZ").transpose(-1, -2)


def aspire_euler_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` A -> ``(..., 3)`` ASPIRE Euler angles (radians)."""
    return euler_from_matrix(matrix.transpose(-1, -2), "ZYZ", SCIPY_GIMBAL_TOLERANCE_RAD)
