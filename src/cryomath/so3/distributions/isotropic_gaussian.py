"""The isotropic Gaussian on SO(3) (IGSO(3); Nikolayev & Savyolov 1970; Leach et al. 2022).

Density with respect to the normalised Haar measure, for rotation angle omega and scale sigma
(radians): ``f(omega) = sum_l (2l + 1) exp(-l (l + 1) sigma^2 / 2) sin((l + 1/2) omega) /
sin(omega / 2)``: the heat kernel at time sigma^2, so for small sigma the rotation vector is
about N(0, sigma^2 I). Rotations are ``mean @ exp(omega * axis)`` with a uniform axis.
Moments used by the tests: ``E[1 + 2 cos omega] = 3 exp(-sigma^2)``.
"""

import math

import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.distributions.haar import haar_angle_log_prob
from cryomath.so3.lie import exp_map, log_map

_MIN_SIGMA = 0.01  # below this the series needs > 1000 terms; use a Gaussian instead


def _n_terms(sigma: float) -> int:
    return math.ceil(math.sqrt(2 * 40) / sigma) + 5  # last term < exp(-40)


def _series(omega: torch.Tensor, sigma: float) -> torch.Tensor:
    """The density ``f(omega)`` wrt Haar (the sum above), stable at omega -> 0."""
    l_values = torch.arange(_n_terms(sigma), dtype=omega.dtype, device=omega.device)
    weight = (2 * l_values + 1) * torch.exp(-l_values * (l_values + 1) * sigma**2 / 2)
    half = omega[..., None] / 2
    small = half.abs() < 1e-6
    ratio = torch.where(
        small,
        2 * l_values + 1,  # sin((2l+1) x) / sin x -> 2l + 1
        torch.sin((2 * l_values + 1) * half) / torch.where(small, 1.0, torch.sin(half)),
    )
    return (weight * ratio).sum(-1)


class IsotropicGaussian:
    """IGSO(3) with ``mean (3, 3)`` (a pose matrix) and scale ``sigma`` (radians, >= 0.01)."""

    def __init__(self, mean: torch.Tensor, sigma: float):
        if not sigma >= _MIN_SIGMA:
            raise InvalidInputError(f"sigma must be >= {_MIN_SIGMA} rad, got {sigma}")
        self.mean, self.sigma = mean, float(sigma)

    def angle_log_prob(self, omega: torch.Tensor) -> torch.Tensor:
        """Log density of the angle omega in ``[0, pi]`` (wrt Lebesgue measure on the angle)."""
        return torch.log(_series(omega, self.sigma).clamp(min=1e-300)) + haar_angle_log_prob(omega)

    def log_prob(self, rotations: torch.Tensor) -> torch.Tensor:
        """Log density of ``(..., 3, 3)`` rotations wrt the normalised Haar measure."""
        omega = torch.linalg.vector_norm(log_map(self.mean.transpose(-1, -2) @ rotations), dim=-1)
        return torch.log(_series(omega, self.sigma).clamp(min=1e-300))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, 3, 3)`` samples: the angle by inverse CDF on a fine grid, a uniform axis."""
        dtype, device = self.mean.dtype, self.mean.device
        grid = torch.linspace(0, math.pi, 8193, dtype=torch.float64, device=device)
        density = torch.exp(self.angle_log_prob(grid))
        cdf = torch.cat([grid.new_zeros(1), torch.cumsum((density[1:] + density[:-1]) / 2, 0)])
        cdf = cdf / cdf[-1]
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        index = torch.searchsorted(cdf, u).clamp(1, grid.numel() - 1)
        lo, hi = cdf[index - 1], cdf[index]
        t = (u - lo) / (hi - lo).clamp(min=1e-300)
        omega = grid[index - 1] + t * (grid[index] - grid[index - 1])
        axis = torch.randn(n, 3, generator=generator, dtype=torch.float64, device=device)
        axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
        return self.mean @ exp_map(axis * omega[:, None]).to(dtype)
