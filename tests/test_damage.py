"""The exposure filter and dose weighting (``ctf.damage``) against Grant & Grigorieff (2015):
the optimal exposure of an unweighted sum is 2.51 N_e (their published number), the weighted
sum of noise-free frames carries ``sqrt(sum q_f^2)`` of the signal (their eq. 9) and RELION's
voltage rule (the exposure divided by 0.8 at 200 kV, by 0.64 at 100 kV); and the weights are
those in RELION's own dose-weighted sum of a movie."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cryomath.ctf.damage import (
    critical_exposure,
    dose_weighted_sum,
    exposure_filter,
    frame_exposures,
)
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd


@pytest.mark.parametrize("resolution_angstrom", [8.0, 4.0, 2.5])
def test_an_unweighted_sum_is_best_at_2_51_critical_exposures(resolution_angstrom):
    k = torch.tensor(1 / resolution_angstrom, dtype=torch.float64)
    exposures = frame_exposures(40000, 0.0025)  # 100 e/A^2 in thin frames
    q = exposure_filter(k, exposures)
    snr = torch.cumsum(q, 0) ** 2 / torch.arange(1, len(q) + 1)  # signal^2 / noise power
    best = float(exposures[snr.argmax()])
    assert best / float(critical_exposure(k)) == pytest.approx(2.51, abs=0.01)


def test_the_weighted_sum_carries_the_root_sum_of_squares_of_the_filters():
    g = torch.Generator().manual_seed(0)
    n, pixel, frames = 32, 1.2, 12
    image = torch.randn(n, n, generator=g, dtype=torch.float64)
    exposures = frame_exposures(frames, 2.5, pre_exposure=1.0)
    ky = torch.fft.fftfreq(n, d=pixel, dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(n, d=pixel, dtype=torch.float64)[None]
    q = exposure_filter(torch.sqrt(ky**2 + kx**2), exposures)  # (F, n, n // 2 + 1)
    movie = torch.fft.irfft2(torch.fft.rfft2(image) * q, s=(n, n))  # noise-free damaged frames
    summed = fft_nd(dose_weighted_sum(movie, pixel, exposures), 2, rfft=True)
    expected = fft_nd(image, 2, rfft=True) * torch.sqrt((q * q).sum(0))
    assert float((summed - expected).abs().max()) < 1e-9 * float(expected.abs().max())
    # and that beats the plain sum's signal-to-noise ratio at every frequency (Cauchy-Schwarz)
    assert bool(((q * q).sum(0) >= q.sum(0) ** 2 / frames - 1e-12).all())


def test_slower_electrons_damage_more_as_relion_counts_it():
    k = torch.linspace(0.05, 0.5, 10, dtype=torch.float64)
    for kv, factor in ((200.0, 0.8), (100.0, 0.64)):
        assert torch.allclose(exposure_filter(k, 30.0, kv), exposure_filter(k, 30.0 / factor))
    with pytest.raises(InvalidInputError, match="300, 200 and 100 kV"):
        critical_exposure(k, 120.0)


def test_dose_weights_are_the_ones_relion_applies():
    """RELION 3.1.3's ``relion_run_motioncorr --use_own --dose_weighting`` (4 e/A^2 per frame,
    300 kV; ``tests/reference/dose_weighting``) of a seeded 8-frame movie: its sum is, shell by
    shell, a weighted sum of the frames moved by its own shifts. The weights, found by least
    squares over each shell's samples, are ours (``ctf.dose_weights`` at the frames' end
    exposures 4, 8, ... 32): RELION's exposure filter, its critical exposure and its
    normalisation (sum of squares 1 per frequency)."""
    from cryomath.ctf import dose_weights, frame_exposures
    from cryomath.fourier import fft_nd, phase_ramp
    from cryomath.fourier.shells import shell_index
    from cryomath.io import read_mrc, read_star
    from tests.reference.make_relion_references import dose_weighting_movie

    folder = Path(__file__).parent / "reference" / "dose_weighting"
    frames = dose_weighting_movie().double()
    shifts = read_star(folder / "movie.star")["global_shift"]
    moves = torch.from_numpy(shifts[["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy())
    summed = fft_nd(torch.from_numpy(read_mrc(folder / "movie_sum.mrc", np.float64)[0][0]), 2)
    spectra = fft_nd(frames, 2) * phase_ramp((128, 128), moves.double())
    ours = dose_weights((128, 128), 1.0, frame_exposures(8, 4.0), 300.0)
    shells = shell_index((128, 128))
    for shell in range(5, 64, 5):
        pick = shells == shell
        found = torch.linalg.lstsq(spectra[:, pick].T, summed[pick][:, None]).solution[:, 0]
        assert float((found.real - ours[:, pick].mean(1)).abs().max()) < 0.01, shell
        assert float(found.imag.abs().max()) < 0.01
