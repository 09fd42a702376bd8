"""The von Mises-Fisher distribution on the sphere S^2 (for projection directions).

Density ``kappa / (4 pi sinh kappa) exp(kappa <mu, x>)`` wrt area; sampling by Wood (1994), whose
inverse CDF for S^2 is closed form: ``w = 1 + log(u + (1 - u) exp(-2 kappa)) / kappa``.
Moment used by the tests: ``E<mu, x> = coth(kappa) - 1 / kappa``.
"""

import math

import torch

from cryomath.errors import InvalidInputError


class VonMisesFisher:
    """vMF on S^2 with unit mean direction ``mu (3,)`` and concentration ``kappa > 0``."""

    def __init__(self, mu: torch.Tensor, kappa: float):
        if not kappa > 0:
            raise InvalidInputError(f"kappa must be > 0, got {kappa}")
        self.mu = mu / torch.linalg.vector_norm(mu)
        self.kappa = float(kappa)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density of ``(..., 3)`` unit vectors wrt the area measure on S^2."""
        k = self.kappa
        # log(k / (4 pi sinh k)) = log k - log(2 pi) - k - log(1 - exp(-2k))
        log_norm = math.log(k) - math.log(2 * math.pi) - k - math.log1p(-math.exp(-2 * k))
        return log_norm + k * (x @ self.mu)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, 3)`` unit vectors."""
        dtype, device, k = self.mu.dtype, self.mu.device, self.kappa
        u = torch.rand(n, generator=generator, dtype=dtype, device=device)
        w = 1 + torch.log(u + (1 - u) * math.exp(-2 * k)) / k
        v = torch.randn(n, 3, generator=generator, dtype=dtype, device=device)
        v = v - (v @ self.mu)[:, None] * self.mu  # tangent at mu
        v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        return w[:, None] * self.mu + torch.sqrt((1 - w * w).clamp(min=0))[:, None] * v
