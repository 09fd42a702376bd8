"""What a finite box loses (``simulate.delocalisation``): the share of a point-like particle's
CTF-filtered energy that stays in a 64-pixel box, against its stationary-phase prediction (each
frequency's energy moved to a ring of radius ``R(k)``, ``ctf.delocalisation``; the share of
that ring inside the square box is ``1 - (4 / pi) arccos(h / R)`` between the half side ``h``
and ``h sqrt 2``), at three defoci; and ``simulate --delocalisation`` on a model."""

import math

import pytest
import torch

from cryomath.ctf import CTF, compute_ctf, delocalisation_radius_angstrom
from cryomath.fourier import crop_or_pad
from cryomath.simulate.delocalisation import ctf_over_field, field_size_px


@pytest.mark.parametrize(("defocus", "kept"), [(5000.0, 1.0), (15000.0, 0.947),
                                               (30000.0, 0.523)])  # fmt: skip
def test_the_box_keeps_the_share_of_delocalised_rings_inside_it(defocus, kept):
    n, pixel = 64, 1.5
    y, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) - n // 2] * 2, indexing="ij")
    blob = torch.exp(-(x**2 + y**2) / 2)[None]  # sd 1 pixel
    one = torch.ones(1, dtype=torch.float64)
    ctf = CTF(defocus * one, defocus * one, 0 * one, 300 * one, 2.7 * one, 0.1 * one)
    m = field_size_px(n, pixel, defocus, 2.7, 300.0)
    boxed = ctf_over_field(blob, ctf, pixel, m)
    spectrum = torch.fft.rfft2(crop_or_pad(blob, (m, m))) * compute_ctf(ctf, (m, m), pixel)
    whole = torch.fft.irfft2(spectrum, s=(m, m))  # nothing cut
    ky = torch.fft.fftfreq(m, d=pixel, dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(m, d=pixel, dtype=torch.float64)[None]
    ring = delocalisation_radius_angstrom(torch.sqrt(ky**2 + kx**2), defocus) / pixel
    h = n / 2
    inside = (1 - 4 / math.pi * torch.arccos((h / ring).clamp(max=1))).clamp(min=0)
    power = spectrum.abs() ** 2
    power[:, :, 1:-1] *= 2  # Hermitian multiplicity
    predicted = float((power * inside).sum() / power.sum())
    measured = float((boxed**2).sum() / (whole**2).sum())
    assert measured == pytest.approx(predicted, abs=0.01)
    assert measured == pytest.approx(kept, abs=0.01)


def test_simulate_with_delocalisation_loses_signal_only_at_high_defocus(tmp_path):
    """``simulate`` of the bundled model (box 48, 1.5 A, no noise) with and without
    ``delocalisation``: at 0.5 um the images agree to 1 %, at 4 um the box keeps visibly less
    (under 90 % of the energy)."""
    from cryomath.demo import BUNDLED_MODEL
    from cryomath.imaging import iter_batches
    from cryomath.pipelines import read_volume
    from cryomath.projection import prepare_volume
    from cryomath.simulate import SimulationSettings, ground_truth, simulate_images

    volume, pixel = read_volume(BUNDLED_MODEL, 48, 1.5)
    spectrum = prepare_volume(volume, 2.0, voxel_size_angstrom=pixel)
    for defocus, low, high in ((5000.0, 0.99, 1.01), (40000.0, 0.0, 0.9)):
        energies = []
        for flag in (False, True):
            s = SimulationSettings(n_particles=8, pixel_size_angstrom=pixel, snr=None,
                                   defocus_min_angstrom=defocus, defocus_max_angstrom=defocus,
                                   astigmatism_angstrom=0.0, delocalisation=flag)  # fmt: skip
            table = ground_truth(s, 48)
            batch = next(iter_batches(table, 8, None, torch.float64, read_images=False))
            clean, _ = simulate_images(spectrum, batch, s)
            energies.append(float((clean**2).sum()))
        assert low <= energies[1] / energies[0] <= high
