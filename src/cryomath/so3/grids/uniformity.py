"""How uniformly a finite set covers SO(3).

``covering_radius`` (the dispersion of Yershova et al. 2010): the largest geodesic angle from a
point of SO(3) to its nearest grid rotation, estimated from Haar-random probes (a lower bound
that tightens with more probes).
``minimum_separation``: the smallest angle between two grid rotations (the packing side).
Both work on unit quaternions in chunks, so memory stays bounded.
"""

import torch

from cryomath.so3.random import random_quaternions


def _max_abs_dot(a: torch.Tensor, b: torch.Tensor, chunk: int, exclude_self: bool) -> torch.Tensor:
    # at most ``chunk`` rows of ``a`` at a time, and a block of at most 2^25 dot products
    # (256 MB in float64), whatever the size of ``b``
    chunk = max(1, min(chunk, 2**25 // max(1, b.shape[0])))
    best = []
    for start in range(0, a.shape[0], chunk):
        dot = (a[start : start + chunk] @ b.T).abs()
        if exclude_self:
            rows = torch.arange(dot.shape[0], device=dot.device)
            dot[rows, rows + start] = -1
        best.append(dot.amax(-1))
    return torch.cat(best)


def _angle(abs_dot: torch.Tensor) -> torch.Tensor:
    return 2 * torch.acos(abs_dot.clamp(max=1.0))


def covering_radius(
    quaternions: torch.Tensor, n_probes: int = 100_000, seed: int = 0, chunk: int = 2048
) -> float:
    """Estimated covering radius (radians) of ``(n, 4)`` unit quaternions."""
    probes = random_quaternions(n_probes, seed, quaternions.dtype, quaternions.device)
    return float(_angle(_max_abs_dot(probes, quaternions, chunk, False)).max())


def minimum_separation(quaternions: torch.Tensor, chunk: int = 2048) -> float:
    """Smallest pairwise geodesic angle (radians) between ``(n, 4)`` unit quaternions."""
    return float(_angle(_max_abs_dot(quaternions, quaternions, chunk, True)).min())
