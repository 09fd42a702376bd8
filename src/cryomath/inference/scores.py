"""Gaussian log-likelihoods of images against pose hypotheses, as dense linear algebra.

For image ``b`` (rfft spectrum ``X_b``, CTF ``C_b``, noise power ``sigma2`` per shell of its
optics group), reference projection ``P_r`` (a central slice without CTF, any class and
orientation) and shift ``t_s`` (pixels, replacing the image's own), the prediction is
``C_b P_r exp(-2 pi i k.t_s)`` (``imaging.predict_spectra``). Below Nyquist the ramp has modulus
1, so the residual may be shifted onto the image, ``X'_bs = X_b exp(+2 pi i k.t_s)``, and with
``w_k = m_k / (4 sigma2_k)`` (``imaging.likelihood``: Hermitian multiplicity ``m_k``)

``log p(b, s, r) = -sum_k w |X_b|^2 - sum_k w C_b^2 |P_r|^2 + 2 Re sum_k w C_b conj(X'_bs) P_r
- const``.

The cross term of all ``(b, s)`` against all ``r`` is one real matrix product
``[Re A, -Im A] @ [Re P, Im P]^T`` of ``(B S, 2K)`` by ``(2K, R)``, with ``A = w C conj(X')``;
the power term is another, ``(w C^2) @ |P|^2^T``, ``(B, K)`` by ``(K, R)``. ``K``: the rfft
samples of the shells 1 to ``max_shell`` (a band limit below Nyquist, ``n // 2 - 1`` at most).
The origin does not count (as in RELION): images are normalised to a zero background, so their
noise has no power there and a ``1 / sigma2`` weight would swamp every other frequency.
Projections of each image's own hypotheses ``(B, R, ...)`` (local searches) make both
products batched over the images. A table of projections kept for many batches (a global
search's) is best held as :class:`BandProjections`, the two right factors themselves: each
image's rows are then gathered at half the bytes of the full rfft and scored without a copy.
"""

import math
from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.shells import hermitian_multiplicity, shell_index
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import NoiseSpectrum, ParticleBatch
from cryomath.inference.poisson import poisson_pose_scores


def scored_samples(n: int, max_shell: int, device=None, dtype=torch.float32):
    """``(keep, m, shells)``, each ``(K,)``: the flat indices into an ``(n, n // 2 + 1)`` rfft
    of the samples in shells 1 to ``max_shell`` (the ones a score counts), their Hermitian
    multiplicity and their shell."""
    shells = shell_index((n, n), device=device).reshape(-1)
    m = hermitian_multiplicity((n, n), device=device, dtype=dtype).reshape(-1)
    keep = ((shells <= max_shell) & (shells >= 1) & (m > 0)).nonzero()[:, 0]
    return keep, m[keep], shells[keep]


def band_samples_and_noise(batch: ParticleBatch, noise: NoiseSpectrum, max_shell: int):
    """``(keep, m, sigma2)``, each ``(K,)``: :func:`scored_samples` and the batch's noise
    power there."""
    sigma2 = noise.for_batch(batch)
    if len(sigma2) <= max_shell:
        raise InvalidInputError(
            f"the noise spectrum has {len(sigma2)} shells; need {max_shell + 1}"
        )
    keep, m, shells = scored_samples(batch.image_size, max_shell, batch.device, batch.dtype)
    return keep, m, sigma2[shells]


@dataclass
class BandProjections:
    """Projections ``([B,] R, n, n // 2 + 1)`` at the samples a score counts
    (:func:`scored_samples` of ``image_size`` and ``max_shell``): ``parts ([B,] R, 2K)`` real,
    ``[Re P, Im P]`` (the cross term's right factor), and ``power ([B,] R, K)``, ``|P|^2``.
    Indexing takes rows: ``table[rows]`` with ``rows (B, J)`` is each image's own ``J``."""

    parts: torch.Tensor
    power: torch.Tensor
    image_size: int
    max_shell: int

    @classmethod
    def of(cls, projections: torch.Tensor, max_shell: int) -> "BandProjections":
        """The band of complex ``projections (..., R, n, n // 2 + 1)``."""
        n = projections.shape[-2]
        keep = scored_samples(n, max_shell, projections.device)[0]
        p = projections.flatten(-2)[..., keep]
        return cls(torch.cat([p.real, p.imag], -1), p.real**2 + p.imag**2, n, max_shell)

    @property
    def count(self) -> int:
        """``R``: the projections of the table, or of each image."""
        return self.power.shape[-2]

    def __getitem__(self, rows) -> "BandProjections":
        return BandProjections(self.parts[rows], self.power[rows], self.image_size,
                               self.max_shell)  # fmt: skip

    def spectra(self) -> torch.Tensor:
        """The complex ``(..., n, n // 2 + 1)`` projections, zero outside the band."""
        n, k = self.image_size, self.power.shape[-1]
        keep = scored_samples(n, self.max_shell, self.parts.device)[0]
        values = torch.complex(self.parts[..., :k], self.parts[..., k:])
        out = values.new_zeros((*values.shape[:-1], n * (n // 2 + 1)))
        out[..., keep] = values
        return out.unflatten(-1, (n, n // 2 + 1))


def gaussian_pose_scores(
    batch: ParticleBatch,
    projections: torch.Tensor | BandProjections,
    shifts_px: torch.Tensor,
    noise: NoiseSpectrum,
    max_shell: int | None = None,
) -> torch.Tensor:
    """``(B, S, R)`` log-likelihoods of the batch's images for every shift ``shifts_px (S, 2)``
    and every reference projection ``projections (R, n, n // 2 + 1)`` (complex rfft central
    slices, e.g. ``projection.extract_central_slices_rfft_3d``; ``(B, R, n, n // 2 + 1)``: each
    image's own; or their :class:`BandProjections` at the same ``max_shell``), equal to
    ``imaging.gaussian_log_likelihood`` of the predictions ``C P_r ramp(t_s)`` with the same
    ``max_shell`` (default and maximum: ``n // 2 - 1``)."""
    n = batch.image_size
    if batch.spectra is None:
        raise InvalidInputError("pose scores need the batch's images")
    if shifts_px.ndim != 2 or shifts_px.shape[-1] != 2:
        raise InvalidInputError(f"shifts_px must be (S, 2), got {tuple(shifts_px.shape)}")
    limit = n // 2 - 1 if max_shell is None else int(max_shell)
    if not 0 <= limit <= n // 2 - 1:
        raise InvalidInputError(f"max_shell must be in [0, {n // 2 - 1}], got {max_shell}")
    band = _band(projections, n, limit, len(batch), batch.device)
    per_image = band.power.ndim == 3
    device, dtype = batch.device, batch.dtype
    keep, m, s2 = band_samples_and_noise(batch, noise, limit)
    w = m / (4 * s2)
    x = batch.spectra.reshape(len(batch), -1)[:, keep]  # (B, K)
    ctf = batch.ctf_values()
    c = torch.ones_like(x.real) if ctf is None else ctf.reshape(len(batch), -1)[:, keep]
    ramp = phase_ramp((n, n), shifts_px.to(device, dtype), rfft=True).reshape(len(shifts_px), -1)
    image = (w * x.real**2 + w * x.imag**2).sum(-1)  # (B,)
    a = (w * c * x.conj())[:, None, :] * ramp[:, keep][None]  # (B, S, K): w C conj(X')
    a = torch.cat([a.real, -a.imag], -1)
    if per_image:
        power = torch.einsum("bk,brk->br", w * c * c, band.power)
        cross = torch.bmm(a, band.parts.transpose(1, 2))  # (B, S, R)
    else:
        power = (w * c * c) @ band.power.T  # (B, R)
        cross = (a.flatten(0, 1) @ band.parts.T).view(len(batch), len(shifts_px), -1)
    constant = (m / 2 * torch.log(4 * math.pi * s2 / n**2)).sum()
    log_p = 2 * cross - power[:, None, :]
    return log_p - image[:, None, None] - constant


def _band(projections, n: int, max_shell: int, n_images: int, device) -> BandProjections:
    """``projections`` as :class:`BandProjections` at ``max_shell``, their layout checked."""
    expected = f"projections must be ([{n_images},] R, {n}, {n // 2 + 1})"
    if isinstance(projections, BandProjections):
        if (projections.image_size, projections.max_shell) != (n, max_shell):
            raise InvalidInputError(
                f"the projections' band is for images of {projections.image_size} px to shell "
                f"{projections.max_shell}; scoring {n} px to shell {max_shell}"
            )
        band = projections
    elif projections.shape[-2:] != (n, n // 2 + 1) or projections.ndim not in (3, 4):
        raise InvalidInputError(f"{expected}, got {tuple(projections.shape)}")
    else:
        band = BandProjections.of(projections.to(device), max_shell)
    if band.power.shape[:-2] not in ((), (n_images,)):
        raise InvalidInputError(f"{expected}, got {band.count} for each of "
                                f"{tuple(band.power.shape[:-2])} images")  # fmt: skip
    return band


def pose_scores(
    batch: ParticleBatch,
    projections: torch.Tensor | BandProjections,
    shifts_px: torch.Tensor,
    noise: NoiseSpectrum,
    max_shell: int | None = None,
    dose_e_per_a2: float | None = None,
) -> torch.Tensor:
    """:func:`gaussian_pose_scores`, or with ``dose_e_per_a2`` the Poisson scores of counting
    images (``inference.poisson``; ``noise`` unused; full projections only: a Poisson score
    counts the origin)."""
    if dose_e_per_a2 is None:
        return gaussian_pose_scores(batch, projections, shifts_px, noise, max_shell)
    if isinstance(projections, BandProjections):
        raise InvalidInputError("Poisson scores need full projections (they count the origin)")
    return poisson_pose_scores(batch, projections, shifts_px, dose_e_per_a2, max_shell)
