"""Maps at chosen points of a latent space by kernel regression: each point's map is the
direct Fourier inversion of all particles, each weighted by a Gaussian kernel of its latent
distance to the point (the Nadaraya-Watson estimate of the map as a function of the latent
coordinate; what the linear series ``mu + c V_k`` cannot show when the motion is large).

Distances are measured in units of each latent dimension's standard deviation over the
particles; each map comes from gold-standard halves (``reconstruction.half_subsets``) joined
with the per-shell prior of their FSC, so a point with few particles nearby is smoothed, not
noisy.
"""

from dataclasses import dataclass, replace

import numpy as np
import torch

from cryomath.devices import resolve_device
from cryomath.errors import InvalidInputError
from cryomath.imaging import FourierAccumulator, iter_batches
from cryomath.reconstruction import half_subsets, insert_particles, maps_from_halves
from cryomath.reconstruction.direct import volume_grid
from cryomath.resolution import resolution_angstrom


@dataclass
class KernelMaps:
    """``maps (P, n, n, n)`` at the points, ``particles (P,)`` the sum of each point's kernel
    weights (its effective number of particles), ``resolution_angstrom (P,)`` at the halves'
    FSC 0.143."""

    maps: torch.Tensor
    particles: torch.Tensor
    resolution_angstrom: list[float]


def kernel_regression_maps(
    table,
    latent: np.ndarray,
    points: np.ndarray,
    bandwidth: float = 0.5,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> KernelMaps:
    """The maps of ``table`` 's particles at ``points (P, K)`` of their ``latent (N, K)``
    coordinates (module docstring) with the kernel's standard deviation ``bandwidth`` (in
    latent standard deviations)."""
    latent, points = np.asarray(latent, np.float64), np.atleast_2d(np.asarray(points, np.float64))
    if latent.ndim != 2 or latent.shape[0] != table.n or points.shape[1] != latent.shape[1]:
        raise InvalidInputError(
            f"need latent (N={table.n}, K) and points (P, K), got {latent.shape} and {points.shape}"
        )
    if not bandwidth > 0:
        raise InvalidInputError(f"the bandwidth must be positive, got {bandwidth}")
    scale = latent.std(0).clip(min=1e-12) * bandwidth
    distance2 = (((latent[:, None, :] - points[None]) / scale) ** 2).sum(-1)  # (N, P)
    weights = np.exp(-0.5 * distance2)
    n, voxel = volume_grid(table)
    device = resolve_device(device)
    halves = half_subsets(table)
    sums = [{h: FourierAccumulator(n, 2.0, torch.float64, device, voxel) for h in (1, 2)}
            for _ in points]  # fmt: skip
    for batch in iter_batches(table, batch_size, device, torch.float64):
        rows = batch.indices.cpu().numpy()
        for p, point_sums in enumerate(sums):
            for h in (1, 2):
                pick = halves[rows] == h
                if pick.any():
                    part = batch.subset(torch.as_tensor(pick, device=batch.device))
                    kernel = torch.as_tensor(weights[rows[pick], p], dtype=part.dtype,
                                             device=part.device)  # fmt: skip
                    insert_particles(point_sums[h], replace(part, weights=part.weights * kernel))
    maps, resolutions = [], []
    for point_sums in sums:
        result = maps_from_halves(point_sums)
        maps.append(result.full)
        resolutions.append(resolution_angstrom(result.fsc, 0.143))
    return KernelMaps(torch.stack(maps), torch.as_tensor(weights.sum(0)), resolutions)
