"""The forward model: a prepared volume to particle images, ``image = F^-1[ slice(A) * CTF *
shift ]``, the way RELION's ``relion_project`` forms them (tested against it)."""

import torch

from cryomath.ctf import CTF, compute_ctf
from cryomath.fourier.fft import ifft_nd
from cryomath.fourier.shift import phase_ramp
from cryomath.projection import VolumeSpectrum, extract_central_slices_rfft_3d


def form_images(
    spectrum: VolumeSpectrum,
    rotations: torch.Tensor,
    pixel_size_angstrom: float,
    shifts_px: torch.Tensor | None = None,
    ctf: CTF | None = None,
    ctf_sign: str = "relion",
) -> torch.Tensor:
    """``(..., n, n)`` images at ``rotations (..., 3, 3)`` with optional ``shifts_px (..., 2)``
    (content moves by them; RELION: ``-origin / pixel``) and per-image ``ctf`` (batch ``(...)``)."""
    n = spectrum.n
    slices = extract_central_slices_rfft_3d(spectrum, rotations)
    if ctf is not None:
        slices = slices * compute_ctf(ctf, (n, n), pixel_size_angstrom, sign=ctf_sign).to(
            slices.real.dtype
        )
    if shifts_px is not None:
        slices = slices * phase_ramp((n, n), shifts_px.to(slices.real.dtype), rfft=True)
    return ifft_nd(slices, (n, n), rfft=True)
