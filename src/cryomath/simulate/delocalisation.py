"""What a finite box loses: the CTF acts on the whole micrograph, so the signal it moves
(``ctf.delocalisation``: by ``R(k)``) beyond the box that is cut out around a particle is gone
(Glaeser et al. 2021: Thon rings fade toward high defocus in small boxes).

The particle's CTF-free image is placed in an empty field of ``field_px`` (large enough that
nothing the CTF moves wraps around), the CTF applied there, and the box cut out. The
neighbours' signal that would come in is not modelled (the field around the particle is
empty). A box of ``ctf.box_size_for_resolution`` keeps everything.
"""

import math

import torch

from cryomath.ctf import CTF, compute_ctf, delocalisation_bound_angstrom
from cryomath.fourier import crop_or_pad
from cryomath.fourier.fft import fft_nd, ifft_nd


def field_size_px(image_size: int, pixel_size_angstrom: float, defocus_max_angstrom: float,
                  spherical_aberration_mm: float, voltage_kv: float) -> int:  # fmt: skip
    """An even field that holds the box plus the farthest delocalisation (at Nyquist, the
    largest defocus) on both sides."""
    reach = float(delocalisation_bound_angstrom(1 / (2 * pixel_size_angstrom),
                                                defocus_max_angstrom, spherical_aberration_mm,
                                                voltage_kv))  # fmt: skip
    field = image_size + 2 * math.ceil(reach / pixel_size_angstrom)
    return field + field % 2


def ctf_over_field(images: torch.Tensor, ctf: CTF, pixel_size_angstrom: float, field_px: int,
                   sign: str = "relion") -> torch.Tensor:  # fmt: skip
    """``images (B, n, n)`` without CTF -> ``(B, n, n)``: each placed in a field of
    ``field_px``, the CTF applied over the field, the box cut out (module docstring)."""
    n = images.shape[-1]
    field = crop_or_pad(images, (field_px, field_px))
    values = compute_ctf(ctf, (field_px, field_px), pixel_size_angstrom, sign=sign)
    spectra = fft_nd(field, 2, rfft=True) * values.to(images.dtype)
    return crop_or_pad(ifft_nd(spectra, (field_px, field_px), rfft=True), (n, n))
