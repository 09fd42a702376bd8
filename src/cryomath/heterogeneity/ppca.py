"""Probabilistic PCA of 3-D structure by expectation-maximisation, with known poses and CTFs
(Tagare et al. 2015; the model of cryoSPARC's 3D variability analysis, Punjani & Fleet 2021).

Model: image ``i`` is ``X_i = C_i P_i (mu + sum_k z_ik V_k) + noise``, the latent ``z_i ~ N(0,
I_K)``, ``mu`` the consensus map (fixed: reconstructed from all particles first), ``V_k`` the
``K`` component volumes, the noise Gaussian with the power per shell of the images'
background. Everything is in Fourier space through ``imaging``'s forward model and its adjoint.

* E-step, per image: with ``A_k = C P V_k`` and the residual ``r = X - C P mu`` (rfft samples
  weighted by ``m / (2 sigma2)``, ``m`` the Hermitian multiplicity), ``G = <A_k, A_l>``,
  ``b = <A_k, r>``: the posterior of ``z`` is ``N((I + G)^-1 b, (I + G)^-1)``.
* M-step (one insertion pass per batch for all the sums): the normal equations
  ``sum_i E[z z^T]_kl P^T C^2 P V_l = sum_i E[z_k] P^T C r`` with ``P^T C^2 P`` taken as the
  insertion of ``C^2`` (direct Fourier inversion's approximation):
  one ``K x K`` system per voxel of the padded transform, a ridge of ``prior_weight``
  unit-CTF observations, and the components zero beyond ``max_shell``. The noise is taken as
  white in the M-step (the mean of the shells).
* The components are multiplied by a mask after each M-step (default: a sphere around the
  particle): variability outside the particle is noise.
* At the end the components are made orthonormal and ordered by variance: ``V = Q R``,
  ``R S R^T = E L E^T`` with ``S`` the mean ``E[z z^T]``; the eigenvolumes are ``Q E``, their
  variances ``L`` (per unit volume norm), the latent coordinates ``E^T R z``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.shells import hermitian_multiplicity
from cryomath.heterogeneity.projected import default_mask, project_components, volume_spectra
from cryomath.imaging import (
    FourierAccumulator,
    NoiseSpectrum,
    ParticleBatch,
    frequency_scale,
)
from cryomath.projection import accumulate_central_slices_rfft_3d, prepare_volume
from cryomath.reconstruction import invert
from cryomath.resolution import weight_by_shell


@dataclass
class PrincipalComponents:
    """``components (K, n, n, n)`` orthonormal eigenvolumes (largest variance first),
    ``variances (K,)``, ``latent (N, K)`` each particle's posterior mean coordinates (in the
    order of the batches' ``indices``) and ``latent_sd (N, K)`` their posterior standard
    deviations, ``mean (n, n, n)``; ``log_likelihood_gain`` per iteration (the sum of the
    E-steps' ``b^T (I + G)^-1 b - log det (I + G)``, up to constants; empty for a method that
    does not iterate)."""

    components: torch.Tensor
    variances: torch.Tensor
    latent: torch.Tensor
    latent_sd: torch.Tensor
    mean: torch.Tensor
    log_likelihood_gain: list[float]


def fit_principal_components(
    batches: Callable[[], Iterable[ParticleBatch]],
    mean: torch.Tensor,
    voxel_size_angstrom: float,
    noise: NoiseSpectrum,
    n_components: int = 2,
    iterations: int = 20,
    max_shell: int | None = None,
    prior_weight: float = 1.0,
    mask: torch.Tensor | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    initial: torch.Tensor | None = None,
) -> PrincipalComponents:
    """PPCA by EM (module docstring) of the particles ``batches()`` yields (read once per
    iteration; memory: the accumulators and one batch) around the consensus ``mean (n, n, n)``;
    ``max_shell`` (default ``n // 4``): the components' band limit; ``mask (n, n, n)``
    (default: a sphere of radius ``0.45 n`` with a 3-voxel soft edge) multiplies the components
    after every M-step (fewer free voxels: less noise fitted); ``progress(i)`` after each
    iteration; ``initial (K, n, n, n)``: the starting components (default: band-limited noise
    drawn with ``seed``), each scaled by its standard deviation."""
    n = mean.shape[-1]
    if n_components < 1 or iterations < 1:
        raise InvalidInputError("need at least one component and one iteration")
    max_shell = n // 4 if max_shell is None else max_shell
    if initial is None:
        g = torch.Generator().manual_seed(seed)
        initial = torch.randn((n_components, n, n, n), generator=g, dtype=mean.dtype)
        keep = torch.ones(max_shell + 1, dtype=mean.dtype, device=mean.device)
        initial = weight_by_shell(initial.to(mean.device), keep) * 1e-2  # band-limited
    elif tuple(initial.shape) != (n_components, n, n, n):
        raise InvalidInputError(f"initial components must be {(n_components, n, n, n)}")
    components = initial
    if mask is None:
        mask = default_mask(mean)
    mean_spectrum = prepare_volume(mean, 2.0, voxel_size_angstrom=voxel_size_angstrom)
    gains, latent = [], None
    for _ in range(iterations):
        sums = _Sums(n, n_components, mean.dtype, mean.device, voxel_size_angstrom)
        spectra = volume_spectra(components, voxel_size_angstrom)
        latent, gain = [], 0.0
        for batch in batches():
            residual, z, cov, zz, step = _expectation(batch, mean_spectrum, spectra, noise,
                                                      max_shell)  # fmt: skip
            sums.add(batch, residual, z, zz)
            latent.append((batch.indices, z, cov))
            gain += step
        gains.append(gain)
        components = sums.solve(prior_weight, max_shell) * mask
        if progress is not None:
            progress(len(gains))
    order = torch.cat([i for i, _, _ in latent]).argsort()
    z = torch.cat([v for _, v, _ in latent])[order]
    cov = torch.cat([c for _, _, c in latent])[order]
    return _orthonormal(components, z, cov, sums.second_moment / len(z), mean, gains)


def _expectation(batch, mean_spectrum, spectra, noise, max_shell):
    """The residual spectra ``X - C P mu``, the posterior means ``z (B, K)``, covariances
    ``(B, K, K)`` and second moments ``E[z z^T] (B, K, K)`` (module docstring), and the batch's
    log-likelihood gain."""
    seen = project_components(batch, mean_spectrum, spectra, noise, max_shell)
    k = seen.gram.shape[1]
    precision = torch.eye(k, dtype=seen.gram.dtype, device=seen.gram.device) + seen.gram
    covariance = torch.linalg.inv(precision)
    z = (covariance @ seen.b[..., None])[..., 0]
    zz = covariance + z[:, :, None] * z[:, None, :]
    gain = float((seen.b * z).sum() - torch.linalg.slogdet(precision)[1].sum())
    return seen.residual, z, covariance, zz, gain


class _Sums:
    """The M-step's sums, inserted in one pass per batch: per component the insertion of
    ``E[z_k] C r`` (two channels), per pair ``k <= l`` that of ``E[z_k z_l] C^2``, and
    ``sum_i E[z z^T]``."""

    def __init__(self, n, k, dtype, device, voxel):
        self.n, self.k, self.voxel, self.n_pad = n, k, voxel, 2 * n
        self.pairs = [(a, b) for a in range(k) for b in range(a, k)]
        shape = (self.n_pad, self.n_pad, self.n_pad // 2 + 1)
        self.sums = torch.zeros((1, 2 * k + len(self.pairs), *shape), dtype=dtype, device=device)
        self.second_moment = torch.zeros((k, k), dtype=dtype, device=device)

    def add(self, batch, residual, z, zz):
        n = batch.image_size
        ctf = batch.ctf_values()
        ctf = torch.ones((n, n // 2 + 1), dtype=batch.dtype, device=batch.device) if (
            ctf is None) else ctf  # fmt: skip
        residual = batch.centred(residual)
        m = hermitian_multiplicity((n, n), dtype=batch.dtype, device=batch.device)
        data = (residual * (ctf * m))[:, None] * z[:, :, None, None]  # (B, K, n, m)
        weights = torch.stack([ctf * ctf * m * zz[:, a, b, None, None] for a, b in self.pairs], 1)
        accumulate_central_slices_rfft_3d(
            self.sums,
            data,
            batch.rotations,
            weights,
            frequency_scale=frequency_scale(self.voxel, batch),
        )
        self.second_moment += zz.sum(0)

    def solve(self, prior_weight: float, max_shell: int) -> torch.Tensor:
        """The components ``(K, n, n, n)``: the per-voxel ``K x K`` systems, inverted."""
        k, sums = self.k, self.sums[0]
        matrix = torch.zeros((*sums.shape[1:], k, k), dtype=sums.dtype, device=sums.device)
        for p, (a, b) in enumerate(self.pairs):
            matrix[..., a, b] = matrix[..., b, a] = sums[2 * k + p]
        matrix = matrix + prior_weight * torch.eye(k, dtype=matrix.dtype, device=matrix.device)
        data = torch.stack([torch.complex(sums[2 * c], sums[2 * c + 1]) for c in range(k)], -1)
        solved = torch.linalg.solve(matrix.to(data.dtype), data[..., None])[..., 0]
        shell = FourierAccumulator(self.n, 2.0, sums.dtype, sums.device, self.voxel)
        inside = shell.shells() <= max_shell
        volumes = []
        for c in range(k):
            values = torch.where(inside, solved[..., c], 0)
            shell.sums[0, 0], shell.sums[0, 1], shell.sums[0, 2] = values.real, values.imag, 1
            volumes.append(invert(shell, mask_radius_px=None))
        return torch.stack(volumes)


def _orthonormal(components, z, cov, second_moment, mean, gains) -> PrincipalComponents:
    """Orthonormal eigenvolumes ordered by variance (module docstring); the posterior
    covariances ``cov (N, K, K)`` carried into their coordinates."""
    k, shape = components.shape[0], components.shape[1:]
    q, r = torch.linalg.qr(components.reshape(k, -1).T)  # V^T = Q R
    values, vectors = torch.linalg.eigh(r @ second_moment @ r.T)
    order = values.argsort(descending=True)
    values, vectors = values[order], vectors[:, order]
    eigenvolumes = (q @ vectors).T.reshape(k, *shape)
    to_eigen = vectors.T @ r
    latent = z @ to_eigen.T
    sd = torch.einsum("kl,nlm,km->nk", to_eigen, cov, to_eigen).clamp(min=0).sqrt()
    return PrincipalComponents(eigenvolumes, values, latent, sd, mean, gains)
