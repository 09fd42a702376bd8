"""Rotation averaging (Hartley, Trumpf, Dai & Li, IJCV 2013).

Single rotation averaging of ``(..., n, 3, 3)`` rotations with optional ``(..., n)`` weights:
- ``karcher_mean``: geodesic L2 mean, Algorithm 1 (log, average, exp, repeat);
- ``weiszfeld_median``: geodesic L1 median (Weiszfeld iterations in the tangent space);
- ``chordal_mean``: chordal L2 mean, the SVD projection of the weighted arithmetic mean;
- ``quaternion_mean``: top eigenvector of ``sum w q q^T``; the same rotation as the chordal L2
  mean (it minimises ``sum w ||R - S||_F^2 = sum w 8 (1 - <q, p>^2)``).

Multiple rotation averaging (synchronisation): from relative rotations ``R_ij ~ R_i R_j^T`` on
the edges of a graph, recover ``R_i`` up to one global rotation ``R_i G``: ``synchronize``
(spectral: top three eigenvectors of the block matrix, Singer 2011 / Hartley Sec. 6) and
``synchronize(..., robust=True)`` (iteratively reweighted with Cauchy weights).
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.lie import exp_map, log_map
from cryomath.so3.metrics import geodesic_distance
from cryomath.so3.orthogonalize import nearest_rotation
from cryomath.so3.quaternion import matrix_from_quaternion, quaternion_from_matrix


def _weights(rotations: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if rotations.ndim < 3 or tuple(rotations.shape[-2:]) != (3, 3) or rotations.shape[-3] == 0:
        raise InvalidInputError(f"need (..., n>0, 3, 3) rotations, got {tuple(rotations.shape)}")
    if weights is None:
        weights = torch.ones(rotations.shape[:-2], dtype=rotations.dtype, device=rotations.device)
    if weights.shape != rotations.shape[:-2] or bool((weights < 0).any()):
        raise InvalidInputError("weights must be (..., n) and non-negative")
    return weights / weights.sum(-1, keepdim=True)


def chordal_mean(rotations: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Chordal L2 mean of ``rotations (..., n, 3, 3)`` (``weights (..., n)``) -> ``(..., 3, 3)``:
    the rotation nearest to ``sum w R`` (Frobenius)."""
    w = _weights(rotations, weights)
    return nearest_rotation((rotations * w[..., None, None]).sum(-3), max_distance=None)


def pose_errors_degrees(truth: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
    """``(n,)`` degrees between ``found (n, 3, 3)`` and ``truth (n, 3, 3)`` after the one rotation
    ``G`` that best aligns the sets (``truth G ~ found``, ``G`` the chordal mean of ``truth^T
    found``): the poses of a map in another frame (ab initio, a refinement) are judged as a set."""
    d = truth.transpose(-1, -2) @ found
    return torch.rad2deg(geodesic_distance(d, chordal_mean(d).expand_as(d)))


def quaternion_mean(rotations: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Quaternion L2 mean of ``rotations (..., n, 3, 3)`` -> ``(..., 3, 3)`` (sign-blind): the top
    eigenvector of ``sum w q q^T``; equal to the chordal L2 mean."""
    w = _weights(rotations, weights)
    q = quaternion_from_matrix(rotations)
    m = (q[..., :, None] * q[..., None, :] * w[..., None, None]).sum(-3)
    _, vectors = torch.linalg.eigh(m)
    return matrix_from_quaternion(vectors[..., -1])


def karcher_mean(
    rotations: torch.Tensor,
    weights: torch.Tensor | None = None,
    tolerance: float = 1e-12,
    max_iterations: int = 100,
) -> torch.Tensor:
    """Geodesic L2 mean of ``rotations (..., n, 3, 3)`` -> ``(..., 3, 3)`` (Hartley Algorithm 1),
    started from the chordal mean; stops when the
    tangent step is below ``tolerance`` radians or after ``max_iterations``."""
    w = _weights(rotations, weights)
    mean = chordal_mean(rotations, weights)
    for _ in range(max_iterations):
        step = (log_map(mean[..., None, :, :].transpose(-1, -2) @ rotations) * w[..., None]).sum(-2)
        mean = mean @ exp_map(step)
        if float(torch.linalg.vector_norm(step, dim=-1).max()) < tolerance:
            break
    return mean


def weiszfeld_median(
    rotations: torch.Tensor,
    weights: torch.Tensor | None = None,
    tolerance: float = 1e-10,
    max_iterations: int = 200,
) -> torch.Tensor:
    """Geodesic L1 median by Weiszfeld's algorithm on SO(3) (Hartley Algorithm 3), started from
    the chordal mean. Samples within 1e-9 rad of the estimate are skipped for the step."""
    w = _weights(rotations, weights)
    median = chordal_mean(rotations, weights)
    for _ in range(max_iterations):
        v = log_map(median[..., None, :, :].transpose(-1, -2) @ rotations)
        distance = torch.linalg.vector_norm(v, dim=-1)
        far = distance > 1e-9
        inverse = torch.where(far, w / torch.where(far, distance, 1.0), 0.0)
        step = (v * inverse[..., None]).sum(-2) / inverse.sum(-1, keepdim=True)
        median = median @ exp_map(step)
        if float(torch.linalg.vector_norm(step, dim=-1).max()) < tolerance:
            break
    return median


def _check_edges(relative: torch.Tensor, edges: torch.Tensor, n: int) -> None:
    if relative.ndim != 3 or tuple(relative.shape[1:]) != (3, 3):
        raise InvalidInputError(f"relative rotations must be (m, 3, 3), got {relative.shape}")
    if edges.shape != (relative.shape[0], 2):
        raise InvalidInputError(f"edges must be (m, 2) node indices, got {tuple(edges.shape)}")
    if bool((edges < 0).any() | (edges >= n).any()):
        raise InvalidInputError(f"edge indices must lie in [0, {n})")


def _spectral(relative, edges, n, edge_weights):
    dtype, device = relative.dtype, relative.device
    blocks = torch.zeros(n, n, 3, 3, dtype=dtype, device=device)
    i, j = edges[:, 0], edges[:, 1]
    weighted = relative * edge_weights[:, None, None]
    blocks.index_put_((i, j), weighted, accumulate=True)
    blocks.index_put_((j, i), weighted.transpose(-1, -2), accumulate=True)
    eye = torch.eye(3, dtype=dtype, device=device)
    blocks[torch.arange(n), torch.arange(n)] += eye * edge_weights.max()
    matrix = blocks.permute(0, 2, 1, 3).reshape(3 * n, 3 * n)
    _, vectors = torch.linalg.eigh(matrix)
    top = vectors[:, -3:].reshape(n, 3, 3)  # row block i ~ R_i G
    if float(torch.linalg.det(top).sum()) < 0:  # eigenvectors come with an arbitrary sign
        top = -top
    return nearest_rotation(top, max_distance=None)


def synchronize(
    relative: torch.Tensor,
    edges: torch.Tensor,
    n: int,
    robust: bool = False,
    iterations: int = 30,
) -> torch.Tensor:
    """Absolute ``(n, 3, 3)`` rotations from ``(m, 3, 3)`` relative ``R_ij ~ R_i R_j^T`` on
    ``(m, 2)`` edges ``(i, j)``, up to a global right factor.

    ``robust``: from the spectral start, ``iterations`` rounds of iteratively reweighted least
    squares: each node becomes the weighted chordal mean of its neighbours' predictions
    ``R_ij R_j``, with Cauchy weights ``1 / (1 + (r / c)^2)`` of the edge residual angle r
    (c = the median residual), which all but ignores outlier edges.
    """
    _check_edges(relative, edges, n)
    weights = torch.ones(relative.shape[0], dtype=relative.dtype, device=relative.device)
    rotations = _spectral(relative, edges, n, weights)
    i, j = edges[:, 0], edges[:, 1]
    for _ in range(iterations if robust else 0):
        predicted = rotations[i] @ rotations[j].transpose(-1, -2)
        residual = torch.linalg.vector_norm(log_map(predicted.transpose(-1, -2) @ relative), dim=-1)
        scale = residual.median().clamp(min=1e-6)
        w = (1 / (1 + (residual / scale) ** 2))[:, None, None]
        total = torch.zeros_like(rotations)
        total.index_add_(0, i, w * (relative @ rotations[j]))
        total.index_add_(0, j, w * (relative.transpose(-1, -2) @ rotations[i]))
        rotations = nearest_rotation(total, max_distance=None)
    return rotations
