"""Projection of nearly orthogonal matrices onto SO(3)."""

import torch

from cryomath.errors import InvalidInputError, NotARotationError

# Frobenius distance to the nearest rotation accepted by default: matrices written with 3-4
# decimals (||E||_F ~ 1e-3) pass; a reflection (distance >= 2) or a shear fails.
DEFAULT_MAX_DISTANCE = 0.1


def nearest_rotation(
    matrix: torch.Tensor, max_distance: float | None = DEFAULT_MAX_DISTANCE
) -> torch.Tensor:
    """``(..., 3, 3)`` -> the nearest rotations in the Frobenius norm (``U diag(1, 1, det) V^T``
    from the SVD ``M = U S V^T``). Raises :class:`NotARotationError` if some ``||M - R||_F``
    exceeds ``max_distance`` (``None`` accepts anything)."""
    if matrix.ndim < 2 or tuple(matrix.shape[-2:]) != (3, 3):
        raise InvalidInputError(f"matrices must be (..., 3, 3), got {tuple(matrix.shape)}")
    if not bool(torch.isfinite(matrix).all()):
        raise InvalidInputError("matrices contain NaN or inf")
    u, _, vh = torch.linalg.svd(matrix)
    det = torch.linalg.det(u @ vh)
    ones = torch.ones_like(det)
    rotation = u @ torch.diag_embed(torch.stack([ones, ones, det], -1)) @ vh
    if max_distance is not None:
        distance = torch.linalg.matrix_norm(matrix - rotation)
        if bool((distance > max_distance).any()):
            raise NotARotationError(
                f"{int((distance > max_distance).sum())} matrices are far from any rotation "
                f"(largest ||M - R||_F = {float(distance.max()):.3g} > {max_distance})"
            )
    return rotation
