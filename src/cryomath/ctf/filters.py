"""Correcting images for the CTF: phase flipping and Wiener filtering (rfft images)."""

import torch

from cryomath.fourier.fft import irfft_2d, rfft_2d


def phase_flip(images: torch.Tensor, ctf_values: torch.Tensor) -> torch.Tensor:
    """Multiply the spectra of ``(..., h, w)`` images by ``sign(CTF)`` (rfft CTF values)."""
    h, w = images.shape[-2:]
    return irfft_2d(rfft_2d(images) * torch.sign(ctf_values), (h, w))


def wiener_filter(
    images: torch.Tensor, ctf_values: torch.Tensor, snr: float | torch.Tensor
) -> torch.Tensor:
    """Wiener estimate of the CTF-free images: ``F * CTF / (CTF^2 + 1 / SNR)`` per frequency
    (``snr`` a constant or a tensor broadcast to the rfft grid)."""
    h, w = images.shape[-2:]
    filtered = rfft_2d(images) * ctf_values / (ctf_values**2 + 1 / torch.as_tensor(snr))
    return irfft_2d(filtered, (h, w))
