"""The matrix Fisher distribution on SO(3): ``p(R) = exp(tr(F^T R)) / c(F)`` wrt the normalised
Haar measure (Downs 1972; Khatri & Mardia 1977).

With the proper SVD ``F = U diag(s) V^T`` (U, V rotations, s3 possibly negative),
``c(F) = c(diag(s)) = int_{-1}^{1} 1/2 I0((s1 - s2)(1 - u) / 2) I0((s1 + s2)(1 + u) / 2)
exp(s3 u) du`` (Lee, "Bayesian attitude estimation with the matrix Fisher distributions on
SO(3)", IEEE TAC 2018, eq. 8), evaluated by Gauss-Legendre quadrature with scaled Bessel
functions (differentiable). ``tr(F^T R(q)) = q^T B q`` makes it a Bingham distribution in the
quaternion, which gives exact sampling. The maximum-likelihood fit solves
``grad log c(s) = d`` (d the proper singular values of the sample mean) by Newton's method.
"""

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.so3.distributions.bingham import Bingham
from cryomath.so3.quaternion import matrix_from_quaternion

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(400)


def proper_svd(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``F = U diag(s) V^T`` with ``det U = det V = 1`` (the last singular value takes the sign)."""
    u, s, vh = torch.linalg.svd(f)
    du, dv = torch.linalg.det(u), torch.linalg.det(vh)
    flip = torch.stack([torch.ones_like(du), torch.ones_like(du), du * dv], -1)
    u = u * torch.stack([torch.ones_like(du), torch.ones_like(du), du], -1)[..., None, :]
    vh = vh * torch.stack([torch.ones_like(dv), torch.ones_like(dv), dv], -1)[..., :, None]
    return u, s * flip, vh.transpose(-1, -2)


def log_normalizer(s: torch.Tensor) -> torch.Tensor:
    """``log c(diag(s))`` for ``(..., 3)`` proper singular values (differentiable)."""
    nodes = torch.as_tensor(_NODES, dtype=s.dtype, device=s.device)
    log_w = torch.log(torch.as_tensor(_WEIGHTS, dtype=s.dtype, device=s.device))
    s1, s2, s3 = s[..., :1], s[..., 1:2], s[..., 2:]
    a = 0.5 * (s1 - s2) * (1 - nodes)
    b = 0.5 * (s1 + s2) * (1 + nodes)
    log_terms = (
        torch.log(torch.special.i0e(a))
        + a.abs()
        + torch.log(torch.special.i0e(b))
        + b.abs()
        + s3 * nodes
    )
    return torch.logsumexp(log_w + log_terms, -1) - np.log(2.0)


def bingham_matrix(f: torch.Tensor) -> torch.Tensor:
    """The symmetric ``B (4, 4)`` with ``q^T B q = tr(F^T R(q))`` for unit ``q = (w, x, y, z)``."""
    f00, f01, f02 = f[0, 0], f[0, 1], f[0, 2]
    f10, f11, f12 = f[1, 0], f[1, 1], f[1, 2]
    f20, f21, f22 = f[2, 0], f[2, 1], f[2, 2]
    rows = [
        [f00 + f11 + f22, f21 - f12, f02 - f20, f10 - f01],
        [f21 - f12, f00 - f11 - f22, f01 + f10, f02 + f20],
        [f02 - f20, f01 + f10, f11 - f00 - f22, f12 + f21],
        [f10 - f01, f02 + f20, f12 + f21, f22 - f00 - f11],
    ]
    return torch.stack([torch.stack(r) for r in rows])


class MatrixFisher:
    """Matrix Fisher distribution with parameter ``F (3, 3)``; mode ``U V^T``."""

    def __init__(self, f: torch.Tensor):
        if tuple(f.shape) != (3, 3) or not bool(torch.isfinite(f).all()):
            raise InvalidInputError("the matrix Fisher parameter must be a finite (3, 3) matrix")
        self.f = f

    def log_normalizer(self) -> torch.Tensor:
        """``log c(F)``."""
        return log_normalizer(proper_svd(self.f)[1])

    def log_prob(self, rotations: torch.Tensor) -> torch.Tensor:
        """Log density of ``(..., 3, 3)`` rotations wrt the normalised Haar measure."""
        return (self.f * rotations).sum((-1, -2)) - self.log_normalizer()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, 3, 3)`` rotations (exact, through the Bingham form)."""
        return matrix_from_quaternion(Bingham(bingham_matrix(self.f)).sample(n, generator))

    @classmethod
    def fit(cls, rotations: torch.Tensor, iterations: int = 50) -> "MatrixFisher":
        """Maximum-likelihood fit to ``(n, 3, 3)`` rotations."""
        u, d, v = proper_svd(rotations.double().mean(0))
        if float(d[0]) >= 1 - 1e-9:
            raise InvalidInputError("all rotations are equal: the concentration is infinite")
        s = torch.zeros(3, dtype=torch.float64)
        for _ in range(iterations):  # Newton on the convex log c(s) - <s, d>
            grad = torch.autograd.functional.jacobian(log_normalizer, s) - d
            hess = torch.autograd.functional.hessian(log_normalizer, s)
            step = torch.linalg.solve(hess, grad)
            s = s - step
            if float(step.abs().max()) < 1e-10:
                break
        return cls((u @ torch.diag(s) @ v.T).to(rotations.dtype))
