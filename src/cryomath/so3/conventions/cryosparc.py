"""cryoSPARC poses: ``alignments3D/pose`` is an axis-angle vector in radians with
``Rodrigues(pose) = A^T`` (A = RELION's pose matrix)."""

import torch

from cryomath.so3.axis_angle import matrix_from_rotvec, rotvec_from_matrix


def matrix_from_cryosparc_pose(pose_radians: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` cryoSPARC pose vectors -> ``(..., 3, 3)`` pose matrices A."""
    return matrix_from_rotvec(pose_radians).transpose(-1, -2)


def cryosparc_pose_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` pose matrices A -> ``(..., 3)`` cryoSPARC pose vectors (radians)."""
    return rotvec_from_matrix(matrix.transpose(-1, -2))
