"""Wiener denoising of particle images with the signal's power per shell estimated from the
images themselves (the Gaussian posterior mean: docs/guide 04).

Model per rfft sample ``k`` of image ``i``: ``X = C Y + noise``, the CTF-free signal ``Y`` with
power ``P(shell)`` (``E |Y_k|^2``) and noise of power ``2 sigma2(shell)`` (``imaging``'s
``NoiseSpectrum``: ``sigma2`` per real and imaginary part). The power of the images is
``C^2 P + 2 sigma2``, so ``P = sum (m |X|^2 - 2 m sigma2) / sum m C^2`` over the images and the
samples of a shell (``m`` the Hermitian multiplicity), clamped at 0. The posterior mean of the
noise-free image ``C Y`` is ``C^2 P / (C^2 P + 2 sigma2) X`` (and of ``Y``,
``C P / (C^2 P + 2 sigma2) X``, the CTF-corrected estimate).
"""

from collections.abc import Iterable

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import ifft_nd
from cryomath.fourier.shells import hermitian_multiplicity, shell_index, shell_sum
from cryomath.imaging import NoiseSpectrum, ParticleBatch


def estimate_signal_power(batches: Iterable[ParticleBatch], noise: NoiseSpectrum) -> NoiseSpectrum:
    """The CTF-free signal power ``P`` per optics group and shell (module docstring), in a
    :class:`NoiseSpectrum` 's layout (``sigma2`` holds ``P``)."""
    sums: dict[int, list[torch.Tensor]] = {}
    for batch in batches:
        n = batch.image_size
        shells = shell_index((n, n), device=batch.device)
        m = hermitian_multiplicity((n, n), device=batch.device, dtype=torch.float64)
        sigma2 = noise.for_batch(batch).double()[shells]
        ctf = batch.ctf_values()
        c2 = torch.ones_like(m) if ctf is None else ctf.double() ** 2
        w = batch.weights.double()[:, None, None]
        excess = (w * m * (batch.spectra.abs().double() ** 2 - 2 * sigma2)).sum(0)
        transfer = (w * m * c2.expand(len(batch), n, n // 2 + 1)).sum(0)
        size = int(shells.max()) + 1
        parts = [shell_sum(excess, shells, size).cpu(), shell_sum(transfer, shells, size).cpu()]
        if batch.optics_group in sums:
            parts = [a + b for a, b in zip(sums[batch.optics_group], parts, strict=True)]
        sums[batch.optics_group] = parts
    if not sums:
        raise InvalidInputError("no images to estimate the signal power from")
    groups = tuple(sorted(sums))
    power = torch.stack([(sums[g][0] / sums[g][1].clamp(min=1e-30)).clamp(min=0) for g in groups])
    return NoiseSpectrum(groups, power)


def wiener_denoise(batch: ParticleBatch, signal: NoiseSpectrum, noise: NoiseSpectrum,
                   ctf_corrected: bool = False) -> torch.Tensor:  # fmt: skip
    """``(B, n, n)`` posterior means of the batch's noise-free images ``C Y`` (or of the
    CTF-free ``Y`` with ``ctf_corrected``), module docstring."""
    n = batch.image_size
    shells = shell_index((n, n), device=batch.device)
    power = signal.for_batch(batch)[shells]
    noise_power = 2 * noise.for_batch(batch)[shells]
    ctf = batch.ctf_values()
    c = torch.ones_like(power) if ctf is None else ctf
    gain = (c if ctf_corrected else c * c) * power / (c * c * power + noise_power)
    return ifft_nd(batch.spectra * gain, (n, n), rfft=True)
