"""Covariance Wiener filtering (CWF; Bhamre, Zhang & Singer 2016, J. Struct. Biol. 195:72):
the posterior mean of each image under a Gaussian prior whose mean and covariance are
estimated from the CTF-affected, noisy images themselves.

Steerable coordinates (``denoising.rings``): an image's spectrum as coefficients ``c_q(j)`` per
ring ``j`` and angular frequency ``q``. Particles seen at uniformly random in-plane angles have a
mean only at ``q = 0`` and a covariance that is block-diagonal in ``q``: one ``R x R`` matrix
``C_q`` over the rings per angular frequency. The CTF, averaged over each ring (astigmatism is
ignored, as by the radial CTF of the published method), is diagonal: ``h_i(j)``. Model per
image ``i`` and ``q``: ``y = h x + e``, ``x ~ N(mu [q = 0], C_q)``, the noise ``e`` of variance
``nu(j, q)`` (the noise power of the ring, ``imaging.estimate_noise_from_background``, times the
fit's gain).

* Mean: ``mu(j) = sum_i h_i(j) y_i(j) / sum_i h_i(j)^2`` (``q = 0``).
* Covariance: ``B = sum_i h_i z_i z_i^H h_i`` (``z = y - h mu``) has the noise part
  ``diag(nu W)``, ``W = sum_i h_i^2``. Whitened by it, its eigenvalues are shrunk by the
  Frobenius-optimal shrinker of the spiked model (Donoho, Gavish & Johnstone 2018, Ann. Stat.
  46:1742: zero below the bulk edge ``(1 + sqrt(gamma))^2``, ``gamma = R_q / N``), which removes
  the noise and keeps the signal's part; then ``C_q = B_signal / A`` elementwise with
  ``A(j, j') = sum_i h_i(j)^2 h_i(j')^2`` (the least-squares solution: ``h`` is diagonal), made
  positive semi-definite.
* Denoising: ``x_hat = mu + C h (h C h + diag(nu))^{-1} z`` per image and ``q``; the image is
  ``x_hat`` (CTF-corrected) or its CTF-filtered version ``CTF x_hat`` (the noise-free image).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from cryomath.ctf import compute_ctf
from cryomath.denoising.rings import Rings, from_rings, image_rings, to_rings
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import complex_dtype, fft_nd, ifft_nd
from cryomath.fourier.shells import shell_index
from cryomath.imaging import NoiseSpectrum, ParticleBatch


@dataclass
class SteerableCovariance:
    """The CWF prior: ``mean (R,)`` (``q = 0``), ``covariance (Q + 1, R, R)`` (``C_q``) and the
    rings they live on."""

    rings: Rings
    mean: torch.Tensor
    covariance: torch.Tensor


def _full_ctf(batch: ParticleBatch) -> torch.Tensor | None:
    """The batch's CTF on the full ``(B, n, n)`` grid, or None."""
    if batch.ctf is None:
        return None
    n = batch.image_size
    return compute_ctf(batch.ctf, (n, n), batch.pixel_size_angstrom, rfft=False)


def _ring_ctf(batch: ParticleBatch, rings: Rings, values: torch.Tensor | None) -> torch.Tensor:
    """``h_i(j)`` ``(B, R)``: each image's CTF ``values`` (:func:`_full_ctf`) averaged over each
    ring (1 without a CTF)."""
    if values is None:
        return torch.ones(len(batch), len(rings.indices), dtype=batch.dtype, device=batch.device)
    flat = values.flatten(-2)
    return torch.stack([flat[:, index].mean(-1) for index in rings.indices], -1)


def _coefficients(batch: ParticleBatch, rings: Rings) -> torch.Tensor:
    spectra = fft_nd(batch.images(), 2, rfft=False)
    return to_rings(spectra.to(complex_dtype(batch.dtype)), rings)


def _noise(batch: ParticleBatch, noise: NoiseSpectrum, rings: Rings) -> torch.Tensor:
    """``nu(j, q)`` ``(R, Q + 1)``: a sample's variance on ring ``j`` (``2 sigma2``) times the
    fit's gain."""
    n = batch.image_size
    power = 2 * noise.for_batch(batch)
    shells = shell_index((n, n), rfft=False, device=batch.device).flatten()
    per_ring = torch.stack([power[shells[index]].mean() for index in rings.indices])
    return per_ring[:, None] * rings.noise_gain


def _shrink(matrix: torch.Tensor, gamma: float) -> torch.Tensor:
    """Frobenius-optimal shrinkage of a whitened (noise = identity) Hermitian matrix: its
    signal part (module docstring)."""
    values, vectors = torch.linalg.eigh(matrix)
    edge = (1 + gamma**0.5) ** 2
    ell = values.clamp(min=edge)
    spike = ((ell + 1 - gamma) + ((ell + 1 - gamma) ** 2 - 4 * ell).clamp(min=0).sqrt()) / 2 - 1
    spike = spike.clamp(min=1e-30)
    cosine2 = (1 - gamma / spike**2) / (1 + gamma / spike)
    shrunk = torch.where(values > edge, spike * cosine2.clamp(min=0), 0.0)
    return (vectors * shrunk.to(vectors.dtype)) @ vectors.mH


def estimate_steerable_covariance(
    batches: Iterable[ParticleBatch] | Callable[[], Iterable[ParticleBatch]], noise: NoiseSpectrum
) -> SteerableCovariance:
    """The CWF prior (module docstring) from ``batches``: a callable returning a fresh
    iterable of batches is read twice (the mean, then the covariance around it); an iterable
    is read once into memory. ``noise``: the noise power per shell."""
    source = batches if callable(batches) else _replay(list(batches))
    rings = count = None
    for batch in source():  # pass 1: the mean
        if rings is None:
            rings = image_rings(batch.image_size, batch.dtype, batch.device)
            numerator = torch.zeros(len(rings.indices), dtype=batch.dtype, device=batch.device)
            weight = torch.zeros_like(numerator)
            count = 0
        h = _ring_ctf(batch, rings, _full_ctf(batch))
        numerator += (h * _coefficients(batch, rings)[..., 0].real).sum(0)
        weight += (h * h).sum(0)
        count += len(batch)
    if rings is None:
        raise InvalidInputError("no images to estimate the CWF covariance from")
    mean = numerator / weight.clamp(min=1e-30)
    r, q = rings.valid.shape
    b = torch.zeros((q, r, r), dtype=complex_dtype(mean.dtype), device=mean.device)
    a = torch.zeros((r, r), dtype=mean.dtype, device=mean.device)
    noise_weight = torch.zeros((r, q), dtype=mean.dtype, device=mean.device)
    for batch in source():  # pass 2: the covariance around the mean
        h = _ring_ctf(batch, rings, _full_ctf(batch))
        z = _coefficients(batch, rings)
        z[..., 0] -= h * mean
        hz = (h[..., None] * z).movedim(-1, 0)  # (Q + 1, B, R)
        b += hz.mT @ hz.conj()  # sum_i (h z)(h z)^H, per q
        a += (h * h).T @ (h * h)
        noise_weight += (h * h).sum(0)[:, None] * _noise(batch, noise, rings)
    return SteerableCovariance(rings, mean, _solve_covariance(b, a, noise_weight, rings, count))


def _replay(batches: list):
    return lambda: iter(batches)


def _solve_covariance(b, a, noise_weight, rings: Rings, count: int) -> torch.Tensor:
    """``C_q`` per angular frequency from the sums (module docstring)."""
    out = torch.zeros_like(b)
    for q in range(b.shape[0]):
        keep = rings.valid[:, q].nonzero()[:, 0]
        if len(keep) == 0:
            continue
        scale = noise_weight[keep, q].clamp(min=1e-30).sqrt()  # whitens the noise part
        whitened = b[q][keep][:, keep] / (scale[:, None] * scale[None, :])
        signal = _shrink(whitened, len(keep) / count) * (scale[:, None] * scale[None, :])
        covariance = signal / a[keep][:, keep].clamp(min=1e-30)
        values, vectors = torch.linalg.eigh((covariance + covariance.mH) / 2)
        psd = (vectors * values.clamp(min=0).to(vectors.dtype)) @ vectors.mH
        out[q, keep[:, None], keep[None, :]] = psd
    return out


def cwf_denoise(batch: ParticleBatch, prior: SteerableCovariance, noise: NoiseSpectrum,
                ctf_corrected: bool = False) -> torch.Tensor:  # fmt: skip
    """``(B, n, n)`` posterior means of the batch's images under ``prior`` (module docstring):
    the noise-free images with their CTF, or the CTF-corrected ones with ``ctf_corrected``."""
    rings = prior.rings
    n = batch.image_size
    if n != rings.n:
        raise InvalidInputError(f"the CWF prior is for {rings.n}-pixel images, got {n}")
    ctf = _full_ctf(batch)
    h = _ring_ctf(batch, rings, ctf).to(prior.mean.dtype)
    z = _coefficients(batch, rings).to(prior.covariance.dtype)
    z[..., 0] -= h * prior.mean
    nu = _noise(batch, noise, rings).to(prior.mean.dtype)
    estimate = torch.zeros_like(z)
    for q in range(z.shape[-1]):
        c = prior.covariance[q]
        hc = h[:, :, None] * c  # (B, R, R): h C
        system = hc * h[:, None, :] + torch.diag_embed(nu[:, q].clamp(min=1e-30)).to(z.dtype)
        # x = C h (h C h + nu)^-1 z; (h C)^H = C h for the Hermitian C and real h
        solved = torch.linalg.solve(system, z[:, :, q, None])
        estimate[:, :, q] = (hc.mH @ solved)[..., 0]
    estimate[..., 0] += prior.mean
    spectra = from_rings(estimate, rings)
    if not ctf_corrected and ctf is not None:
        spectra = spectra * ctf
    return ifft_nd(spectra, (n, n), rfft=False)
