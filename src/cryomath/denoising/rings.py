"""A steerable representation of image spectra: the angular Fourier series on each ring of the
Cartesian Fourier grid.

Ring ``j`` holds the samples of the full ``n x n`` spectrum (``fourier.fft_nd`` layout, not
shifted) whose radius rounds to ``j`` pixels, ``j < n / 2`` (the corners beyond are left out).
On it the spectrum is written as ``F(xi) = sum_{|q| <= Q_j} c_q(j) exp(i q phi(xi))`` with
``Q_j = N_j // 2`` for the ring's ``N_j`` samples: one coefficient more than samples (the ring's
even count leaves the highest frequency's two signs indistinct), the minimum-norm solution,
which reproduces every sample exactly. An in-plane rotation by ``alpha`` multiplies
``c_q`` by ``exp(-i q alpha)``, a radial filter (a CTF without astigmatism) multiplies every
``c_q(j)`` by its value on ring ``j``: both are diagonal, which is what makes covariances
block-diagonal in ``q`` (Zhao, Shkolnisky & Singer 2016; Bhamre, Zhang & Singer 2016 use the
Fourier-Bessel basis for the same purpose). A real image has ``c_{-q} = (-1)^q conj(c_q)``
(the ring is symmetric under ``xi -> -xi``), so only ``q >= 0`` is kept:
``coefficients (..., R, Q + 1)`` with ``R = ceil(n / 2)`` rings, zero where ``q > Q_j``.
"""

import math
from dataclasses import dataclass

import torch

from cryomath.fourier.fft import complex_dtype
from cryomath.fourier.grids import fftfreq_grid


@dataclass
class Rings:
    """The rings of an ``n x n`` grid: per ring the flat sample indices, the fit ``E`` (samples x
    angular frequencies ``-Q_j..Q_j``) and its pseudo-inverse; ``valid (R, Q + 1)`` marks the
    ``(ring, q >= 0)`` pairs that exist; ``noise_gain (R, Q + 1)`` the variance of a fitted
    coefficient per unit variance of a sample."""

    n: int
    indices: list[torch.Tensor]
    fits: list[torch.Tensor]
    inverses: list[torch.Tensor]
    valid: torch.Tensor
    noise_gain: torch.Tensor

    @property
    def max_frequency(self) -> int:
        return self.valid.shape[1] - 1


def image_rings(n: int, dtype=torch.float64, device=None) -> Rings:
    """The :class:`Rings` of ``n``-pixel images, in the complex dtype matching ``dtype``."""
    k = fftfreq_grid((n, n), rfft=False, dtype=torch.float64).reshape(-1, 2) * n
    radius = torch.linalg.vector_norm(k, dim=-1)
    angle = torch.atan2(k[:, 1], k[:, 0])
    ring = torch.round(radius).long()
    count = math.ceil(n / 2)
    indices, fits, inverses, orders = [], [], [], []
    for j in range(count):
        index = (ring == j).nonzero()[:, 0]
        order = len(index) // 2
        q = torch.arange(-order, order + 1, dtype=torch.float64)
        fit = torch.exp(1j * angle[index, None] * q[None])
        indices.append(index.to(device))
        fits.append(fit.to(device, complex_dtype(dtype)))
        inverses.append(torch.linalg.pinv(fit).to(device, complex_dtype(dtype)))
        orders.append(len(q) // 2)
    top = max(orders)
    valid = torch.arange(top + 1)[None] <= torch.tensor(orders)[:, None]
    gain = torch.zeros(count, top + 1, dtype=torch.float64)
    for j, inverse in enumerate(inverses):
        variance = (inverse.abs() ** 2).sum(-1).real.double().cpu()  # diag(P P^H), q = -Q..Q
        gain[j, : orders[j] + 1] = variance[orders[j] :]
    return Rings(n, indices, fits, inverses, valid.to(device), gain.to(device, dtype))


def to_rings(spectra: torch.Tensor, rings: Rings) -> torch.Tensor:
    """``(..., R, Q + 1)`` coefficients ``c_q(j)``, ``q >= 0``, of full spectra ``(..., n, n)``."""
    flat = spectra.flatten(-2)
    out = flat.new_zeros((*flat.shape[:-1], *rings.valid.shape))
    for j, (index, inverse) in enumerate(zip(rings.indices, rings.inverses, strict=True)):
        q = inverse.shape[0] // 2
        out[..., j, : q + 1] = (flat[..., index] @ inverse.T)[..., q:]
    return out


def from_rings(coefficients: torch.Tensor, rings: Rings) -> torch.Tensor:
    """Full spectra ``(..., n, n)`` of coefficients ``(..., R, Q + 1)`` (``q >= 0``; the rest
    from ``c_{-q} = (-1)^q conj(c_q)``); zero beyond the last ring."""
    n = rings.n
    out = coefficients.new_zeros((*coefficients.shape[:-2], n * n))
    for j, (index, fit) in enumerate(zip(rings.indices, rings.fits, strict=True)):
        q = fit.shape[1] // 2
        positive = coefficients[..., j, : q + 1]
        sign = 1 - 2 * (torch.arange(1, q + 1, device=positive.device) % 2)
        negative = (positive[..., 1:] * sign).conj().flip(-1)
        out[..., index] = torch.cat([negative, positive], -1) @ fit.T
    return out.unflatten(-1, (n, n))
