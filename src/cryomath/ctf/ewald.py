"""The Ewald sphere: a particle's image samples its 3-D transform on a sphere, not a plane.

The linear image of a weak phase object is the sum of two single side-bands on caps of opposite
curvature (Wolf, DeRosier & Grigorieff 2006; Russo & Henderson 2018): for an rfft frequency
``k`` (``kx >= 0``) of the image,

``X(k) = H(k) V(A^T (k, +c |k|^2)) + conj(H(k)) V(A^T (k, -c |k|^2))``,
``H = (CTF - i E cos gamma) / 2``,

with ``CTF = -E sin gamma`` (``ctf.compute_ctf``, envelope ``E``) and the curvature
``c = wavelength / (2 * pixel)`` in cycles/pixel (the sphere of radius ``1 / wavelength``, to
second order). ``H + conj(H) = CTF``: on a flat slice (``c -> 0``) the two side-bands add up to
the usual ``CTF V``. The sign of the curvature is RELION's (docs/conventions.md): RELION's
``relion_reconstruct --ewald`` inserts ``2 conj(H) X`` at ``+c`` (``CTF::getCTFPImage``,
``is_positive``) and ``2 H X`` at ``-c``; ``curvature_sign = -1`` is its
``--reverse_curvature``, which is also what a map of the other hand needs.
"""

from dataclasses import replace

import torch

from cryomath.ctf.ctf import CTF, compute_ctf
from cryomath.ctf.wavelength import electron_wavelength_angstrom
from cryomath.errors import InvalidInputError, holds


def ewald_curvature(ctf: CTF, pixel_size_angstrom: float, curvature_sign: int = 1) -> float:
    """``c = sign * wavelength / (2 * pixel)`` (cycles/pixel) for the images of ``ctf``, which
    must share one voltage (a batch of one optics group)."""
    if curvature_sign not in (1, -1):
        raise InvalidInputError(f"curvature_sign must be 1 or -1, got {curvature_sign}")
    voltage = ctf.voltage_kv.reshape(-1)
    if not holds((voltage == voltage[0]).all()):
        raise InvalidInputError("Ewald-sphere curvature needs one voltage per batch of images")
    wavelength = float(electron_wavelength_angstrom(voltage[0]))
    return curvature_sign * wavelength / (2 * pixel_size_angstrom)


def single_sideband_ctf(
    ctf: CTF,
    image_shape: tuple[int, int],
    pixel_size_angstrom: float,
    sign: str = "relion",
    rfft: bool = True,
) -> torch.Tensor:
    """``H = (CTF - i E cos gamma) / 2`` ``(..., h, w // 2 + 1)`` complex (``(..., h, w)`` when
    not ``rfft``; module docstring): the transfer of the ``+c`` side-band; ``conj(H)`` is that
    of the ``-c`` one."""
    sine = compute_ctf(ctf, image_shape, pixel_size_angstrom, rfft=rfft, sign=sign)
    # -E sin(gamma - pi/2) = E cos(gamma): the same CTF with 90 degrees more phase shift
    turned = replace(ctf, phase_shift_degrees=ctf.phase_shift_degrees + 90.0)
    cosine = compute_ctf(turned, image_shape, pixel_size_angstrom, rfft=rfft, sign=sign)
    return torch.complex(sine, -cosine) / 2
