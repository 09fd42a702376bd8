"""cryoJAX: ``EulerAnglePose(phi, theta, psi)`` (degrees) is the active extrinsic ``zyz`` rotation
``Rz(psi) Ry(theta) Rz(phi)`` applied to the volume, which is A; RELION's (rot, tilt, psi) is
reached as ``(-rot, -tilt, -psi)``. Read back with scipy's ``zyz`` ranges (theta in [0, 180])."""

import torch

from cryomath.so3.euler import SCIPY_GIMBAL_TOLERANCE_RAD, euler_from_matrix, matrix_from_euler


def matrix_from_cryojax_euler(angles_degrees: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` cryoJAX (phi, theta, psi) in degrees -> ``(..., 3, 3)`` pose matrices A."""
    return matrix_from_euler(torch.deg2rad(angles_degrees), "zyz")


def cryojax_euler_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` A -> ``(..., 3)`` cryoJAX (phi, theta, psi) in degrees."""
    return torch.rad2deg(euler_from_matrix(matrix, "zyz", SCIPY_GIMBAL_TOLERANCE_RAD))
