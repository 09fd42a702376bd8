"""Poisson-Gamma denoising of counting images: the conjugate posterior mean (docs/guide 04).

Counts ``n ~ Poisson(lambda)`` per pixel and a Gamma prior ``lambda ~ Gamma(a, b)`` (shape
``a``, rate ``b``: mean ``a / b``) give the posterior ``Gamma(a + n, b + 1)``, mean
``(a + n) / (b + 1)``: each count shrunk toward the prior mean, more where the prior is
tighter. The prior is estimated from the stack by the method of moments per pixel (images of
one view, aligned: a class or a set of projections): with the counts' mean ``mu`` and variance
``v`` over the images, ``Var lambda = v - mu`` (the Poisson part removed), ``b = mu / Var
lambda`` and ``a = mu b``; where ``v <= mu`` (no spread beyond Poisson) the prior is a point,
``b`` at most ``max_rate``.
"""

from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError


@dataclass
class GammaPrior:
    """Per-pixel Gamma prior ``(h, w)``: ``shape`` (a) and ``rate`` (b)."""

    shape: torch.Tensor
    rate: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.shape / self.rate


def gamma_prior_from_counts(counts: torch.Tensor, max_rate: float = 1e6) -> GammaPrior:
    """The method-of-moments prior of ``counts (N, h, w)`` (module docstring); ``N >= 2``."""
    if counts.ndim != 3 or counts.shape[0] < 2:
        raise InvalidInputError(f"need counts (N >= 2, h, w), got {tuple(counts.shape)}")
    if bool((counts < 0).any()):
        raise InvalidInputError("counts must be non-negative (add the mean count back first)")
    return gamma_prior_from_moments(counts.mean(0), counts.var(0), max_rate)


def gamma_prior_from_moments(mean: torch.Tensor, variance: torch.Tensor,
                             max_rate: float = 1e6) -> GammaPrior:  # fmt: skip
    """The prior of counts with per-pixel ``mean`` and ``variance`` (module docstring)."""
    spread = (variance - mean).clamp(min=mean.clamp(min=1e-12) / max_rate)
    rate = (mean / spread).clamp(min=1e-12, max=max_rate)
    return GammaPrior(mean * rate, rate)


def poisson_gamma_posterior_mean(counts: torch.Tensor, prior: GammaPrior) -> torch.Tensor:
    """``(a + n) / (b + 1)`` for ``counts (..., h, w)`` under ``prior`` (broadcast)."""
    if bool((counts < 0).any()):
        raise InvalidInputError("counts must be non-negative (add the mean count back first)")
    return (prior.shape + counts) / (prior.rate + 1)
