"""Delocalisation: how far the CTF moves the signal of each spatial frequency away from where
the particle is, and how large a box must be to keep it (Glaeser et al. 2021, Ultramicroscopy
222:113213: Thon rings fade when the delocalised signal leaves the box).

With the phase ``gamma(k) = -pi lambda df k^2 + pi/2 Cs lambda^3 k^4`` (``ctf.ctf``, underfocus
positive), the signal of frequency ``k`` is displaced by the phase's gradient (stationary
phase): ``R(k) = |d gamma / dk| / (2 pi) = |lambda df k - Cs lambda^3 k^3|``. Glaeser's bound
``lambda |df| k + Cs lambda^3 k^3`` holds for either sign of the defocus and grows with ``k``, so
a box of ``D + 2 R_bound(k_max)`` keeps a particle of diameter ``D`` to resolution
``1 / k_max``.
"""

import math

import torch

from cryomath.ctf.wavelength import electron_wavelength_angstrom
from cryomath.errors import InvalidInputError


def _terms(frequency_per_angstrom, defocus_angstrom, spherical_aberration_mm, voltage_kv):
    k = torch.as_tensor(frequency_per_angstrom, dtype=torch.float64)
    lam = electron_wavelength_angstrom(float(voltage_kv))
    return lam * defocus_angstrom * k, spherical_aberration_mm * 1e7 * lam**3 * k**3


def delocalisation_radius_angstrom(frequency_per_angstrom, defocus_angstrom: float,
                                   spherical_aberration_mm: float = 2.7,
                                   voltage_kv: float = 300.0) -> torch.Tensor:  # fmt: skip
    """``R(k) = |lambda df k - Cs lambda^3 k^3|`` (A) at ``frequency_per_angstrom`` (1/A; any
    shape), ``defocus_angstrom`` underfocus positive."""
    defocus, aberration = _terms(frequency_per_angstrom, defocus_angstrom,
                                 spherical_aberration_mm, voltage_kv)  # fmt: skip
    return (defocus - aberration).abs()


def delocalisation_bound_angstrom(frequency_per_angstrom, defocus_angstrom: float,
                                  spherical_aberration_mm: float = 2.7,
                                  voltage_kv: float = 300.0) -> torch.Tensor:  # fmt: skip
    """Glaeser's ``lambda |df| k + Cs lambda^3 k^3`` (A): at least
    :func:`delocalisation_radius_angstrom` for either sign of the defocus."""
    defocus, aberration = _terms(frequency_per_angstrom, abs(defocus_angstrom),
                                 spherical_aberration_mm, voltage_kv)  # fmt: skip
    return defocus + aberration


def box_size_for_resolution(resolution_angstrom: float, particle_diameter_angstrom: float,
                            pixel_size_angstrom: float, defocus_angstrom: float,
                            spherical_aberration_mm: float = 2.7,
                            voltage_kv: float = 300.0) -> int:  # fmt: skip
    """The smallest even box (pixels) that keeps the signal of a particle of
    ``particle_diameter_angstrom`` up to ``resolution_angstrom`` at ``defocus_angstrom`` (the
    largest of the data): ``D + 2 R_bound(1 / resolution)``."""
    if not (resolution_angstrom >= 2 * pixel_size_angstrom > 0 and particle_diameter_angstrom > 0):
        raise InvalidInputError(
            "need a positive diameter and a resolution no finer than Nyquist (2 pixels)"
        )
    reach = float(delocalisation_bound_angstrom(1 / resolution_angstrom, defocus_angstrom,
                                                spherical_aberration_mm, voltage_kv))  # fmt: skip
    pixels = math.ceil((particle_diameter_angstrom + 2 * reach) / pixel_size_angstrom)
    return pixels + pixels % 2
