"""Best rotations between paired vectors and points.

``wahba``: the rotation R minimising ``sum_i w_i ||b_i - R a_i||^2`` (Wahba's problem), from the
SVD of ``B = sum_i w_i b_i a_i^T`` with the reflection guard ``diag(1, 1, det(U V^T))``
(Markley 1988). ``kabsch``: the same after removing the weighted centroids, giving
``target ~ R source + t``.
"""

import torch

from cryomath.errors import InvalidInputError


def _check(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if a.shape != b.shape or a.ndim < 2 or a.shape[-1] != 3:
        raise InvalidInputError(f"need two (..., n, 3) arrays, got {a.shape} and {b.shape}")
    if weights is None:
        return torch.ones(a.shape[:-1], dtype=a.dtype, device=a.device)
    if weights.shape != a.shape[:-1] or bool((weights < 0).any()):
        raise InvalidInputError("weights must be (..., n) and non-negative")
    return weights


def wahba(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``(..., n, 3)`` source and target vectors -> ``(..., 3, 3)`` R with target ~ R source."""
    w = _check(source, target, weights)
    b = (target * w[..., None]).transpose(-1, -2) @ source
    u, _, vh = torch.linalg.svd(b)
    det = torch.linalg.det(u @ vh)
    ones = torch.ones_like(det)
    return u @ torch.diag_embed(torch.stack([ones, ones, det], -1)) @ vh


def kabsch(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(..., n, 3)`` points -> ``(R (..., 3, 3), t (..., 3))`` minimising the weighted
    ``sum w ||R source + t - target||^2`` (proper rotations only)."""
    w = _check(source, target, weights)
    total = w.sum(-1, keepdim=True)[..., None]
    source_mean = (source * w[..., None]).sum(-2, keepdim=True) / total
    target_mean = (target * w[..., None]).sum(-2, keepdim=True) / total
    rotation = wahba(source - source_mean, target - target_mean, w)
    t = target_mean[..., 0, :] - (rotation @ source_mean[..., 0, :, None])[..., 0]
    return rotation, t
