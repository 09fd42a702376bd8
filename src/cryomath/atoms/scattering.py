"""Electron scattering factors: the five-Gaussian fits of Peng, Ren, Dudarev & Whelan (Acta
Cryst. A52, 257-276, 1996), as tabulated in International Tables for Crystallography Vol. C,
Table 4.3.2.2 (read from gemmi's copy of that table):
``f(s) = sum_i a_i exp(-b_i s^2)`` (Angstrom), ``s = sin(theta) / lambda = q / 2``.

In real space one atom with B-factor B is ``sum_i a_i (4 pi / b'_i)^(3/2)
exp(-4 pi^2 r^2 / b'_i)`` with ``b'_i = b_i + B`` (Angstrom^-2 units of the projected-potential
convention; times 47.878 V A^2 for volts, Kirkland 2010), and its projection along z is
``sum_i a_i (4 pi / b'_i) exp(-4 pi^2 rho^2 / b'_i)``.
"""

from functools import lru_cache

import numpy as np

from cryomath.errors import InvalidInputError


@lru_cache(maxsize=128)
def _coefficients(element: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    import gemmi

    found = gemmi.Element(element)
    coefs = found.c4322.get_coefs()
    if found.atomic_number == 0 or not any(coefs):
        raise InvalidInputError(f"no electron scattering factors for element {element!r}")
    return tuple(coefs[:5]), tuple(coefs[5:])


def peng_coefficients(elements) -> tuple[np.ndarray, np.ndarray]:
    """``(a (n, 5), b (n, 5))`` in Angstrom and Angstrom^2 for element symbols ``(n,)``."""
    pairs = [_coefficients(str(e).strip().capitalize()) for e in elements]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def molmap_sigma_angstrom(resolution_angstrom: float) -> float:
    """Chimera's ``molmap`` Gaussian width for a resolution: ``sigma = resolution / (pi sqrt 2)``
    (its default sigmaFactor 0.225)."""
    return resolution_angstrom / (np.pi * np.sqrt(2.0))
