"""Continuous refinement of a fit on the fine maps: maximise the correlation between the
reference and the query moved into the reference frame, ``q'(x) = q(R^T (x - T))``, by gradient
steps on SO(3) x R^3 (``R = R0 exp(hat(w))``: Adam on ``(w, T)`` into the basin, then L-BFGS
to convergence), differentiable trilinear resampling throughout."""

import numpy as np
import torch
import torch.nn.functional as F

from cryomath.fourier.grids import grid_sample_coordinates
from cryomath.so3.lie import exp_map


def _positions(shape, voxel, origin, dtype):
    axes = [torch.arange(s, dtype=dtype) for s in shape]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([x, y, z], -1) * voxel + torch.as_tensor(np.asarray(origin), dtype=dtype)


def move_query(query, query_voxel, query_origin, rotation, translation, ref_positions):
    """The query sampled at ``R^T (x - T)`` for reference positions ``x (..., 3)`` (Angstrom)."""
    local = (ref_positions - translation) @ rotation  # R^T (x - T) as row vectors
    index = (local - torch.as_tensor(np.asarray(query_origin), dtype=local.dtype)) / query_voxel
    grid = grid_sample_coordinates(index, query.shape)
    return F.grid_sample(
        query[None, None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=True
    )[0, 0]


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()).clamp(min=1e-30)


def refine_fit(
    reference: torch.Tensor,
    reference_voxel: float,
    reference_origin,
    query: torch.Tensor,
    query_voxel: float,
    query_origin,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    steps: int = 40,
    learning_rate: float = 0.02,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Refined ``(R, T, correlation)`` from a starting fit ``x_ref = R x_query + T``."""
    dtype = reference.dtype
    positions = _positions(reference.shape, reference_voxel, reference_origin, dtype)
    # work in a query frame centred on the query box (rotations about far-away coordinate
    # origins make the problem ill-conditioned): y' = y - c, T' = T + R c
    centre = torch.as_tensor(np.asarray(query_origin), dtype=dtype) + query_voxel * (
        torch.tensor(query.shape[::-1], dtype=dtype) // 2
    )
    query_origin = np.asarray(query_origin) - centre.numpy()
    r0 = rotation.detach().to(dtype)
    w = torch.zeros(3, dtype=dtype, requires_grad=True)
    t = (translation.detach().to(dtype) + r0 @ centre).requires_grad_(True)
    # Adam to get into the basin, then L-BFGS with a strong-Wolfe line search to converge
    adam = torch.optim.Adam(
        [{"params": [w], "lr": learning_rate}, {"params": [t], "lr": learning_rate * 20}]
    )

    def loss():
        moved = move_query(query, query_voxel, query_origin, r0 @ exp_map(w), t, positions)
        return -correlation(reference, moved)

    for _ in range(steps):
        adam.zero_grad()
        value = loss()
        value.backward()
        adam.step()
    lbfgs = torch.optim.LBFGS([w, t], max_iter=50, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        value = loss()
        value.backward()
        return value

    lbfgs.step(closure)
    with torch.no_grad():
        r = r0 @ exp_map(w)
        cc = float(
            correlation(reference, move_query(query, query_voxel, query_origin, r, t, positions))
        )
        translation = t - r @ centre
    return r.detach(), translation.detach(), cc
