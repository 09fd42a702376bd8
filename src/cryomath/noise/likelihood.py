"""Log-likelihoods of an observed image given a model image (summed over the last two axes)."""

import math

import torch


def gaussian_log_likelihood(
    image: torch.Tensor, model: torch.Tensor, sigma: float | torch.Tensor
) -> torch.Tensor:
    """``sum -(x - m)^2 / (2 sigma^2) - log(2 pi sigma^2) / 2`` over ``(..., h, w)``."""
    sigma = torch.as_tensor(sigma, dtype=image.dtype, device=image.device)
    residual = ((image - model) ** 2).sum((-1, -2))
    n = image.shape[-1] * image.shape[-2]
    return -residual / (2 * sigma**2) - n * (torch.log(sigma) + 0.5 * math.log(2 * math.pi))


def poisson_log_likelihood(counts: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """``sum k log(lambda) - lambda - log(k!)`` over ``(..., h, w)``."""
    terms = torch.xlogy(counts, expected) - expected - torch.lgamma(counts + 1)
    return terms.sum((-1, -2))
