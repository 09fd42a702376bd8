"""Delocalisation (``ctf.delocalisation``) against the CTF itself: the point-spread function of a
band of frequencies (``ctf.compute_ctf`` on a 512^2 grid) lies at the stationary-phase
displacement ``R(k)``, for underfocus and overfocus; Glaeser's bound is never below it."""

import math

import pytest
import torch

from cryomath.ctf import CTF, compute_ctf
from cryomath.ctf.delocalisation import (
    box_size_for_resolution,
    delocalisation_bound_angstrom,
    delocalisation_radius_angstrom,
)
from cryomath.errors import InvalidInputError


@pytest.mark.parametrize("defocus", [20000.0, 8000.0, -15000.0])
def test_the_point_spread_of_a_frequency_band_sits_at_the_delocalisation_radius(defocus):
    """The energy-weighted mean radius of the point-spread function of a Gaussian band of
    frequencies (``k0 = 0.25``, sd 0.02 1/A; 300 kV, Cs 2.7 mm, no amplitude contrast) equals
    the band's average of ``R(k)`` (weights: the band's power times ``k``) within 0.5 A."""
    n, pixel, k0, width = 512, 1.0, 0.25, 0.02
    one = torch.tensor(1.0, dtype=torch.float64)
    ctf = CTF(defocus * one, defocus * one, 0 * one, 300 * one, 2.7 * one, 0 * one)
    ky = torch.fft.fftfreq(n, d=pixel, dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(n, d=pixel, dtype=torch.float64)[None]
    band = torch.exp(-((torch.sqrt(ky**2 + kx**2) - k0) ** 2) / (2 * width**2))
    psf = torch.fft.fftshift(torch.fft.irfft2(compute_ctf(ctf, (n, n), pixel) * band, s=(n, n)))
    y, x = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    energy = psf**2
    measured = float((torch.sqrt((x**2 + y**2).double()) * energy).sum() / energy.sum()) * pixel
    k = torch.linspace(1e-3, 0.5, 5000, dtype=torch.float64)
    weight = torch.exp(-((k - k0) ** 2) / width**2) * k
    expected = float((delocalisation_radius_angstrom(k, defocus) * weight).sum() / weight.sum())
    assert measured == pytest.approx(expected, abs=0.5)
    assert float(delocalisation_bound_angstrom(k0, defocus)) >= float(
        delocalisation_radius_angstrom(k0, defocus)
    )


def test_the_box_holds_the_particle_and_twice_the_bound():
    # 300 kV (lambda 0.0196875 A), 2 um underfocus, Cs 2.7 mm, 3 A: R = 131.25 + 7.63 A
    reach = 0.0196875 * 20000 / 3 + 2.7e7 * 0.0196875**3 / 27
    assert float(delocalisation_bound_angstrom(1 / 3, 20000.0)) == pytest.approx(reach, rel=1e-4)
    box = box_size_for_resolution(3.0, 100.0, 1.0, 20000.0)
    assert box == 2 * math.ceil((100 + 2 * reach) / 2)
    with pytest.raises(InvalidInputError):
        box_size_for_resolution(1.0, 100.0, 1.0, 20000.0)  # finer than Nyquist
