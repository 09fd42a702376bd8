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
``[Re A, -Im A] @ [Re P, Im P]^T`` of ``(B S, 2K)`` by ``(2K, R)``, with ``A = 2 w C conj(X')``;
the power term is another, ``(w C^2) @ |P|^2^T``, ``(B, K)`` by ``(K, R)``. ``K``: the rfft
samples of the shells 1 to ``max_shell`` (a band limit below Nyquist, ``n // 2 - 1`` at most).
The origin does not count (as in RELION): images are normalised to a zero background, so their
noise has no power there and a ``1 / sigma2`` weight would swamp every other frequency.
Projections of each image's own hypotheses ``(B, R, ...)`` (local searches) make both
products batched over the images. A table of projections kept for many batches (a global
search's) is best held as :class:`BandProjections` (``inference.band``), the two right factors
themselves; each image's own rows of it (:class:`OwnRows`) are gathered a few images at a time
into one buffer and scored there.
"""

import math

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging import NoiseSpectrum, ParticleBatch
from cryomath.inference.band import BandProjections, OwnRows, scored_samples
from cryomath.inference.poisson import poisson_pose_scores

# bytes of each image's own rows gathered at once (OwnRows): a few images, in cache
_GATHER_BYTES = 16 * 2**20


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


def gaussian_pose_scores(
    batch: ParticleBatch,
    projections: torch.Tensor | BandProjections | OwnRows,
    shifts_px: torch.Tensor,
    noise: NoiseSpectrum,
    max_shell: int | None = None,
) -> torch.Tensor:
    """``(B, S, R)`` log-likelihoods of the batch's images for every shift ``shifts_px (S, 2)``
    and every reference projection ``projections (R, n, n // 2 + 1)`` (complex rfft central
    slices, e.g. ``projection.extract_central_slices_rfft_3d``; ``(B, R, n, n // 2 + 1)``: each
    image's own; or their :class:`BandProjections` at the same ``max_shell``, or
    :class:`OwnRows` of such a table), equal to
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
    own = projections if isinstance(projections, OwnRows) else None
    band = _band(projections if own is None else own.table, n, limit, len(batch), batch.device)
    if own is not None and (band.power.ndim != 2 or own.rows.shape[0] != len(batch)):
        raise InvalidInputError(f"own rows must be ({len(batch)}, J) of a shared table")
    device, dtype = batch.device, batch.dtype
    keep, m, s2 = band_samples_and_noise(batch, noise, limit)
    w = m / (4 * s2)
    x = batch.spectra.reshape(len(batch), -1)[:, keep]  # (B, K)
    ctf = batch.ctf_values()
    c = torch.ones_like(x.real) if ctf is None else ctf.reshape(len(batch), -1)[:, keep]
    ramp = phase_ramp((n, n), shifts_px.to(device, dtype), rfft=True).reshape(len(shifts_px), -1)
    image = (w * x.real**2 + w * x.imag**2).sum(-1)  # (B,)
    a = (2 * w * c * x.conj())[:, None, :] * ramp[:, keep][None]  # (B, S, K): 2 w C conj(X')
    a = torch.cat([a.real, -a.imag], -1)
    if own is not None:
        cross, power = _own_rows_terms(a, w * c * c, own)
    elif band.power.ndim == 3:  # each image's own projections
        power = torch.einsum("bk,brk->br", w * c * c, band.power)
        cross = torch.bmm(a, band.parts.transpose(1, 2))  # (B, S, R)
    else:
        power = (w * c * c) @ band.power.T  # (B, R)
        cross = (a.flatten(0, 1) @ band.parts.T).view(len(batch), len(shifts_px), -1)
    constant = (m / 2 * torch.log(4 * math.pi * s2 / n**2)).sum()
    # in place on the product (its backward does not need it): one pass, no (B, S, R) copies
    return cross.sub_((power + image[:, None] + constant)[:, None, :])


def _own_rows_terms(a: torch.Tensor, wcc: torch.Tensor, own: OwnRows):
    """The cross ``(B, S, J)`` and power ``(B, J)`` terms against each image's own rows,
    gathered into one buffer a few images at a time."""
    table, rows = own.table, own.rows
    b, j = rows.shape
    width = table.parts.shape[-1] + table.power.shape[-1]
    step = max(1, _GATHER_BYTES // max(1, j * width * table.parts.element_size()))
    cross = a.new_empty((b, a.shape[1], j))
    power = wcc.new_empty((b, j))
    parts = table.parts.new_empty((min(step, b) * j, table.parts.shape[-1]))
    powers = table.power.new_empty((min(step, b) * j, table.power.shape[-1]))
    for start in range(0, b, step):
        chunk = rows[start : start + step]
        count = len(chunk) * j
        index = chunk.reshape(-1)
        got = torch.index_select(table.parts, 0, index, out=parts[:count]).view(len(chunk), j, -1)
        torch.bmm(a[start : start + step], got.transpose(1, 2), out=cross[start : start + step])
        got = torch.index_select(table.power, 0, index, out=powers[:count]).view(len(chunk), j, -1)
        for i in range(len(chunk)):  # by torch.mv: bmm with one column is 8x slower on the CPU
            torch.mv(got[i], wcc[start + i], out=power[start + i])
    return cross, power


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
    projections: torch.Tensor | BandProjections | OwnRows,
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
    if isinstance(projections, BandProjections | OwnRows):
        raise InvalidInputError("Poisson scores need full projections (they count the origin)")
    return poisson_pose_scores(batch, projections, shifts_px, dose_e_per_a2, max_shell)
