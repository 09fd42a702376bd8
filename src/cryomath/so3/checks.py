"""Validation of rotation matrices given by users or read from files."""

import torch

from cryomath.errors import InvalidInputError, NotARotationError, holds


def check_rotation_matrices(matrix: torch.Tensor, atol: float = 1e-4) -> torch.Tensor:
    """Return ``matrix (..., 3, 3)`` if every entry is finite, ``R R^T = I`` and ``det R = 1``
    within ``atol`` (1e-4 accepts matrices stored in float32 files); raise otherwise."""
    if matrix.ndim < 2 or tuple(matrix.shape[-2:]) != (3, 3):
        raise InvalidInputError(f"rotation matrices must be (..., 3, 3), got {tuple(matrix.shape)}")
    if not holds(torch.isfinite(matrix).all()):
        raise InvalidInputError("rotation matrices contain NaN or inf")
    eye = torch.eye(3, dtype=matrix.dtype, device=matrix.device)
    error = (matrix @ matrix.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2))
    det = torch.linalg.det(matrix)
    bad = (error > atol) | ((det - 1).abs() > atol)
    if not holds(~bad.any()):
        i = int(bad.reshape(-1).nonzero()[0])
        raise NotARotationError(
            f"{int(bad.sum())} matrices are not rotations (first at flat index {i}: "
            f"max |R R^T - I| = {float(error.reshape(-1)[i]):.3g}, "
            f"det = {float(det.reshape(-1)[i]):.6g}; "
            f"tolerance {atol})"
        )
    return matrix
