"""Where a CTF oscillates faster than a box samples it."""

import torch

from cryomath.ctf.ctf import CTF
from cryomath.ctf.wavelength import electron_wavelength_angstrom


def ctf_aliasing_frequency(ctf: CTF, image_size: int, pixel_size_angstrom: float) -> torch.Tensor:
    """Spatial frequency (1/A) per particle ``(...)`` beyond which the CTF rings are closer than
    two Fourier samples of an ``image_size`` box: the ring period at ``k`` is
    ``1 / (lambda df k)`` and the sampling ``1 / (image_size pixel)``, so
    ``k = image_size pixel / (2 lambda df)`` (mean defocus; Cs ignored, a lower bound where it
    matters)."""
    wavelength = electron_wavelength_angstrom(ctf.voltage_kv)
    defocus = (ctf.defocus_u_angstrom + ctf.defocus_v_angstrom) / 2
    return image_size * pixel_size_angstrom / (2 * wavelength * defocus)
