"""Pose distributions for simulated datasets: Haar-uniform, a grid, or preferred orientation
(a mixture of uniform poses and poses whose projection direction follows a von Mises-Fisher
distribution around a preferred direction, with uniform in-plane angle)."""

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3 import matrix_from_relion_euler, random_rotations
from cryomath.so3.distributions import VonMisesFisher
from cryomath.so3.grids import healpix_poses

DISTRIBUTIONS = ("uniform", "grid", "preferred")


def sample_poses(
    n: int,
    distribution: str = "uniform",
    generator: torch.Generator | None = None,
    grid_order: int = 2,
    preferred_direction=(0.0, 0.0, 1.0),
    preferred_fraction: float = 0.5,
    preferred_kappa: float = 20.0,
) -> torch.Tensor:
    """``(n, 3, 3)`` pose matrices A (float64)."""
    if distribution == "uniform":
        return random_rotations(n, generator)
    if distribution == "grid":
        grid = healpix_poses(grid_order)
        return grid[torch.randint(len(grid), (n,), generator=generator)]
    if distribution == "preferred":
        if not 0 <= preferred_fraction <= 1:
            raise InvalidInputError("preferred_fraction must be in [0, 1]")
        poses = random_rotations(n, generator)
        chosen = torch.rand(n, generator=generator, dtype=torch.float64) < preferred_fraction
        k = int(chosen.sum())
        mu = torch.as_tensor(preferred_direction, dtype=torch.float64)
        d = VonMisesFisher(mu, preferred_kappa).sample(k, generator)
        rot = torch.rad2deg(torch.atan2(d[:, 1], d[:, 0]))
        tilt = torch.rad2deg(torch.acos(d[:, 2].clamp(-1, 1)))
        psi = torch.rand(k, generator=generator, dtype=torch.float64) * 360 - 180
        poses[chosen] = matrix_from_relion_euler(torch.stack([rot, tilt, psi], -1))
        return poses
    raise InvalidInputError(f"unknown pose distribution {distribution!r}; one of {DISTRIBUTIONS}")
