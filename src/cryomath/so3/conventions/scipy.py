"""scipy's ``Rotation`` (active, column vectors) of the pose is ``A^T``:
``Rotation.from_euler('ZYZ', [rot, tilt, psi], degrees=True).as_matrix() = A^T``. The ``scipy``
convention is the Euler angles (degrees) of that rotation in any of the 24 sequences, with scipy's
ranges and gimbal-lock rule; ``scipy:ZYZ`` reads RELION's angles."""

import torch

from cryomath.so3.euler import SCIPY_GIMBAL_TOLERANCE_RAD, euler_from_matrix, matrix_from_euler


def matrix_from_scipy_euler(angles_degrees: torch.Tensor, seq: str = "ZYZ") -> torch.Tensor:
    """``(..., 3)`` scipy Euler angles (degrees) in ``seq`` -> ``(..., 3, 3)`` pose matrices A."""
    return matrix_from_euler(torch.deg2rad(angles_degrees), seq).transpose(-1, -2)


def scipy_euler_from_matrix(matrix: torch.Tensor, seq: str = "ZYZ") -> torch.Tensor:
    """``(..., 3, 3)`` A -> ``(..., 3)`` Euler angles in degrees, equal to
    ``Rotation.from_matrix(A.T).as_euler(seq, degrees=True)``."""
    return torch.rad2deg(
        euler_from_matrix(matrix.transpose(-1, -2), seq, SCIPY_GIMBAL_TOLERANCE_RAD)
    )
