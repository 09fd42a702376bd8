"""What the linear heterogeneity methods see of one batch: the noise-whitened inner products of
the projected components with each other and with the residual images.

For volumes ``V_k`` and the consensus ``mu``: ``A_k = C P V_k`` (``imaging.predict_spectra``),
the residual ``r = X - C P mu``, and with the rfft weights ``w = m / (2 sigma2)`` (``m`` the
Hermitian multiplicity; ``docs/conventions.md``: the Gaussian log-likelihood's Fisher
information) ``G_kl = Re sum w conj(A_k) A_l`` and ``b_k = Re sum w conj(A_k) r``. For
``r = A z + noise``, ``b`` has mean ``G z`` and the noise part of ``b`` has covariance ``G``.
"""

from dataclasses import dataclass

import torch

from cryomath.fourier.masks import spherical_mask
from cryomath.fourier.shells import hermitian_multiplicity, shell_index
from cryomath.imaging import NoiseSpectrum, ParticleBatch, predict_spectra
from cryomath.projection import VolumeSpectrum, prepare_volume


def sample_weights(batch: ParticleBatch, noise: NoiseSpectrum, max_shell: int) -> torch.Tensor:
    """``w = m / (2 sigma2)`` per rfft sample, zero at the origin (the images' background means
    are removed: no noise power is known there) and beyond ``max_shell``: ``(n, n // 2 + 1)``."""
    n = batch.image_size
    shells = shell_index((n, n), device=batch.device)
    m = hermitian_multiplicity((n, n), dtype=batch.dtype, device=batch.device)
    sigma2 = noise.for_batch(batch)[shells]
    used = (shells >= 1) & (shells <= max_shell) & (sigma2 > 0)
    return torch.where(used, m / (2 * sigma2.clamp(min=1e-30)), 0)


def default_mask(like: torch.Tensor) -> torch.Tensor:
    """The components' default mask on the grid of ``like (n, n, n)``: a sphere of radius
    ``0.45 n`` with a 3-voxel soft edge (variability outside the particle is noise)."""
    n = like.shape[-1]
    return spherical_mask((n, n, n), 0.45 * n, 3.0, dtype=like.dtype, device=like.device)


def volume_spectra(volumes: torch.Tensor, voxel_size_angstrom: float) -> list[VolumeSpectrum]:
    """The padded spectra of ``volumes (K, n, n, n)`` for :func:`project_components`."""
    return [prepare_volume(v, 2.0, voxel_size_angstrom=voxel_size_angstrom) for v in volumes]


@dataclass
class Projected:
    """``residual (B, n, n // 2 + 1)`` complex, ``gram (B, K, K)``, ``b (B, K)``."""

    residual: torch.Tensor
    gram: torch.Tensor
    b: torch.Tensor


def project_components(
    batch: ParticleBatch,
    mean_spectrum: VolumeSpectrum,
    spectra: list[VolumeSpectrum],
    noise: NoiseSpectrum,
    max_shell: int,
) -> Projected:
    """The batch's residuals and whitened ``G`` and ``b`` (module docstring) for the volumes
    whose padded spectra are ``spectra`` (``projection.prepare_volume``)."""
    w = sample_weights(batch, noise, max_shell)
    residual = batch.spectra - predict_spectra(mean_spectrum, batch)
    # the components count only where w does: predicted there alone
    a = torch.stack([predict_spectra(s, batch, max_shell=max_shell) for s in spectra], 1)
    weighted = a * w
    gram = torch.einsum("bkyx,blyx->bkl", weighted.conj(), a).real
    b = torch.einsum("bkyx,byx->bk", weighted.conj(), residual).real
    return Projected(residual, gram, b)
