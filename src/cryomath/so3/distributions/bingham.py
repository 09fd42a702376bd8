"""The Bingham distribution on unit quaternions S^3 (antipodally symmetric, so on SO(3)).

Density up to a constant: ``exp(q^T A q)`` for a symmetric ``A (4, 4)``. Sampling is exact, by
rejection from an angular central Gaussian envelope (Kent, Ganeiber & Mardia 2013, Sec. 4).
"""

import math

import torch

from cryomath.errors import InvalidInputError


class Bingham:
    """Bingham on S^3 with symmetric parameter matrix ``A (4, 4)``."""

    def __init__(self, a: torch.Tensor):
        if tuple(a.shape) != (4, 4) or not torch.allclose(a, a.T):
            raise InvalidInputError("the Bingham parameter must be a symmetric (4, 4) matrix")
        self.a = a

    def unnormalized_log_prob(self, q: torch.Tensor) -> torch.Tensor:
        """``q^T A q`` for ``(..., 4)`` unit quaternions (log density up to a constant)."""
        return ((q @ self.a) * q).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, 4)`` unit quaternions (signs arbitrary)."""
        dtype, device = self.a.dtype, self.a.device
        eigenvalues, vectors = torch.linalg.eigh(self.a.double())
        lam = (eigenvalues[-1] - eigenvalues).clamp(min=0)  # exp(-x^T diag(lam) x), lam >= 0
        # b solves sum 1 / (b + 2 lam_i) = 1 (q = 4 dimensions), by bisection on (0, 4]
        lo, hi = 1e-12, 4.0
        for _ in range(200):
            b = (lo + hi) / 2
            lo, hi = (b, hi) if float((1 / (b + 2 * lam)).sum()) > 1 else (lo, b)
        omega = 1 + 2 * lam / b
        log_m = -(4 - b) / 2 + 2 * math.log(4 / b)  # log of the envelope bound M*
        out, have = [], 0
        while have < n:
            m = max(64, 2 * (n - have))
            y = torch.randn(m, 4, generator=generator, dtype=torch.float64, device=device)
            x = y / torch.sqrt(omega)
            x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
            log_ratio = -(x * x * lam).sum(-1) + 2 * torch.log((x * x * omega).sum(-1)) - log_m
            u = torch.rand(m, generator=generator, dtype=torch.float64, device=device)
            accepted = x[torch.log(u) < log_ratio]
            out.append(accepted)
            have += accepted.shape[0]
        return (torch.cat(out)[:n] @ vectors.T).to(dtype)
