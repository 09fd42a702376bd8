"""cryoDRGN poses: the rotation in a pose pickle ``(R, t)`` is RELION's A itself (proven against
cryoDRGN's ``pose.star.pkl`` / ``pose.cs.pkl``). Its translation is handled in ``io.cryodrgn``.
(cryoDRGN's own quaternion helpers are scalar-last and transposed; they are not used.)"""

import torch


def matrix_from_cryodrgn_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` cryoDRGN rotations -> pose matrices A (the same matrices)."""
    return rotation


def cryodrgn_rotation_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """Pose matrices A -> ``(..., 3, 3)`` cryoDRGN rotations (the same matrices)."""
    return matrix
