"""FSC against RELION's own curves and tables; criteria, masks and post-processing against
their definitions."""

import math
import warnings

import numpy as np
import pytest
import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier import spherical_mask
from cryomath.io import read_mrc, read_star
from cryomath.resolution import (
    FSCCurve,
    apply_bfactor,
    auto_mask,
    corrected_fsc,
    fit_bfactor,
    fourier_ring_correlation,
    fourier_shell_correlation,
    fsc_weighting,
    half_bit_threshold,
    low_pass,
    randomize_phases,
    resolution_angstrom,
)
from tests.conftest import DATA

HALVES = DATA / "relion313_reference" / "halfmaps_600"


def _map(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, info = read_mrc(path, np.float64)
    return torch.from_numpy(data), float(info.voxel_size_angstrom[0])


def _table(path, block):
    return read_star(path)[block]


def test_fsc_of_relions_half_maps_equals_relions_curve():
    h1, voxel = _map(HALVES / "half1.mrc")
    h2, _ = _map(HALVES / "half2.mrc")
    ours = fourier_shell_correlation(h1, h2, voxel)
    relion = _table(HALVES / "fsc_half1_half2_relion.star", "fsc")
    expected = relion["rlnFourierShellCorrelation"].to_numpy()
    assert len(expected) == len(ours.fsc)
    assert np.abs(ours.fsc.numpy() - expected).max() <= 0.02  # measured 0.012
    frequency = relion["rlnResolution"].to_numpy()
    np.testing.assert_allclose(
        ours.spatial_frequency_per_angstrom.numpy()[1:],
        frequency[1:],
        atol=1e-6,  # RELION prints 6 decimals
    )
    # the same 0.143 resolution within one shell
    theirs = FSCCurve(torch.tensor(expected), torch.tensor(frequency), ours.counts)
    shell = 1 / (100 * voxel)
    assert abs(1 / resolution_angstrom(ours) - 1 / resolution_angstrom(theirs)) <= shell
    assert resolution_angstrom(ours) == pytest.approx(6.7, abs=0.2)  # RELION's halves: ~6.6 A


def test_relion_postprocess_table_parses_and_its_numbers_follow():
    path = DATA / "star_files" / "postprocess.star"
    general, fsc = read_star(path)["general"], _table(path, "fsc")
    masked = torch.tensor(fsc["rlnFourierShellCorrelationMaskedMaps"].to_numpy())
    randomized = torch.from_numpy(
        fsc["rlnCorrectedFourierShellCorrelationPhaseRandomizedMaskedMaps"].to_numpy().copy()
    )
    frequency = torch.tensor(fsc["rlnResolution"].to_numpy())
    shell = int((frequency - 1 / general["rlnRandomiseFrom"]).abs().argmin())
    ours = corrected_fsc(masked, randomized, shell)
    expected = fsc["rlnFourierShellCorrelationCorrected"].to_numpy()
    np.testing.assert_allclose(ours.numpy()[1:], expected[1:], atol=1e-4)
    curve = FSCCurve(ours, frequency, torch.ones_like(ours))
    # RELION reports the last shell above 0.143; ours interpolates: within one shell
    step = float(frequency[2] - frequency[1])
    assert abs(1 / resolution_angstrom(curve) - 1 / general["rlnFinalResolution"]) <= step


def test_self_fsc_is_one_and_noise_fsc_is_zero_within_3_over_sqrt_n():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 64, 64, generator=g, dtype=torch.float64)
    b = torch.randn(64, 64, 64, generator=g, dtype=torch.float64)
    self_curve = fourier_shell_correlation(a, a)
    torch.testing.assert_close(self_curve.fsc, torch.ones(33, dtype=torch.float64))
    noise = fourier_shell_correlation(a, b)
    # independent noise: FSC ~ N(0, 1 / n) per shell, n = full-spectrum samples in it
    bound = 3 / torch.sqrt(noise.counts)
    assert bool((noise.fsc[1:].abs() <= bound[1:]).all())
    frc = fourier_ring_correlation(a[0], a[0])
    torch.testing.assert_close(frc.fsc, torch.ones(33, dtype=torch.float64))
    # batched: one call for several pairs
    both = fourier_shell_correlation(torch.stack([a, a]), torch.stack([a, b]))
    torch.testing.assert_close(both.fsc[1], noise.fsc)


def test_criteria():
    counts = torch.tensor([1.0, 100.0, 10_000.0, 1e8])
    # half-bit tends to 0.1716 (= 0.2071 / 1.2071) for large shells
    assert float(half_bit_threshold(counts)[-1]) == pytest.approx(0.2071 / 1.2071, abs=1e-3)
    frequency = torch.linspace(0, 0.5, 11, dtype=torch.float64)
    fsc = 1 - 2 * frequency  # crosses 0.5 at 0.25 and 0.143 at 0.4285
    curve = FSCCurve(fsc, frequency, torch.full((11,), 1e4))
    assert resolution_angstrom(curve, 0.5) == pytest.approx(4.0)
    assert resolution_angstrom(curve, 0.143) == pytest.approx(1 / 0.4285, rel=1e-6)
    assert 1 / resolution_angstrom(curve, "half-bit") == pytest.approx(
        (1 - float(half_bit_threshold(torch.tensor(1e4)))) / 2, rel=1e-6
    )
    assert resolution_angstrom(curve, "3-sigma") > 2.0


def test_masks_and_phase_randomisation():
    blob = spherical_mask((48, 48, 48), 10.0, 0, dtype=torch.float64)
    mask = auto_mask(blob, 0.5, dilate_px=2, soft_edge_px=4)
    # RELION's rules: extended to distances below 2 (to x = 11), then the cosine at d < 4
    assert float(mask[24, 24, 24]) == 1.0 and float(mask[24, 24, 24 + 11]) == 1.0
    assert float(mask[24, 24, 24 + 12]) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert float(mask[24, 24, 24 + 15]) == 0.0 and 0 < float(mask[24, 24, 24 + 14]) < 1
    with pytest.raises(InvalidInputError):
        auto_mask(blob, 2.0)
    g = torch.Generator().manual_seed(1)
    volume = torch.randn(32, 32, 32, generator=g, dtype=torch.float64)
    random = randomize_phases(volume, 6, generator=g)
    curve = fourier_shell_correlation(volume, random)
    torch.testing.assert_close(curve.fsc[:6], torch.ones(6, dtype=torch.float64))
    assert float(curve.fsc[8:].abs().max()) < 0.3
    same_amplitudes = fourier_shell_correlation(random, random)
    torch.testing.assert_close(same_amplitudes.fsc, torch.ones(17, dtype=torch.float64))


def test_postprocessing_tools():
    fsc = torch.tensor([1.0, 0.5, 0.0, -0.2])
    np.testing.assert_allclose(fsc_weighting(fsc).numpy(), [1.0, math.sqrt(2 / 3), 0.0, 0.0])
    # a map blurred by B = 100 A^2 gives back B = 100 from its Guinier slope, and sharpening
    # by -100 restores the original
    g = torch.Generator().manual_seed(2)
    white = torch.randn(64, 64, 64, generator=g, dtype=torch.float64)
    blurred = apply_bfactor(white, 100.0, 1.0)
    assert fit_bfactor(blurred, 1.0, 10.0, 3.0) == pytest.approx(100.0, rel=0.05)
    torch.testing.assert_close(apply_bfactor(blurred, -100.0, 1.0), white)
    filtered = low_pass(white, 8.0, 1.0)  # cutoff at shell 64 / 8 = 8, edge 2 shells wide
    from cryomath.fourier.fft import fft_nd
    from cryomath.fourier.shells import shell_index

    ratio = fft_nd(filtered, 3, rfft=True).abs() / fft_nd(white, 3, rfft=True).abs()
    shells = shell_index((64, 64, 64))
    torch.testing.assert_close(ratio[shells <= 6], torch.ones_like(ratio[shells <= 6]))
    assert float(ratio[shells >= 10].max()) < 1e-9


def test_bad_fsc_inputs():
    a = torch.randn(8, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InvalidInputError, match="shape"):
        fourier_shell_correlation(a, torch.zeros(9, 9, 9))
    with pytest.raises(InvalidInputError, match="mask"):
        fourier_shell_correlation(a, a, mask=torch.ones(4, 4, 4))
    with pytest.raises(InvalidInputError, match="the mask is all zeros"):
        fourier_shell_correlation(a, a, mask=torch.zeros(8, 8, 8))
    with pytest.raises(InvalidInputError, match="NaN"):
        fourier_shell_correlation(a, torch.full((8, 8, 8), float("nan")))
    with pytest.raises(InvalidInputError, match="the second map is all zeros"):
        fourier_shell_correlation(a, torch.zeros(8, 8, 8))
    with pytest.raises(InvalidInputError, match="the voxel size is NaN"):
        fourier_shell_correlation(a, a, voxel_size_angstrom=float("nan"))


def test_local_resolution_is_worse_where_the_noise_is_stronger():
    from cryomath.fourier.fft import fft_nd, ifft_nd
    from cryomath.resolution import local_resolution

    g = torch.Generator().manual_seed(5)
    n = 40
    signal = torch.randn(n, n, n, generator=g, dtype=torch.float64)
    noise_level = torch.ones(n, n, n, dtype=torch.float64)
    noise_level[:, :, n // 2 :] = 4.0  # the +x half is four times noisier
    h1 = signal + noise_level * torch.randn(n, n, n, generator=g, dtype=torch.float64)
    h2 = signal + noise_level * torch.randn(n, n, n, generator=g, dtype=torch.float64)
    # give the signal a falling spectrum so the FSC crosses 0.143 inside the window
    k = torch.fft.fftfreq(n, dtype=torch.float64)
    radius = (
        k[:, None, None] ** 2
        + k[None, :, None] ** 2
        + torch.fft.rfftfreq(n, dtype=torch.float64) ** 2
    ).sqrt()
    damp = torch.exp(-(radius**2) / (2 * 0.12**2))
    h1 = ifft_nd(fft_nd(h1, 3, rfft=True) * damp, (n, n, n), rfft=True)
    h2 = ifft_nd(fft_nd(h2, 3, rfft=True) * damp, (n, n, n), rfft=True)
    local = local_resolution(h1, h2, 1.0, window_px=16, step_px=4)
    assert local.shape == (n, n, n)
    clean_side = float(local[n // 2, n // 2, 8:14].mean())
    noisy_side = float(local[n // 2, n // 2, 26:32].mean())
    assert noisy_side > clean_side * 1.1
    assert float(local.min()) >= 2.0  # never beyond Nyquist


@pytest.mark.parametrize("n", [30, 31])
def test_streamed_fsc_equals_the_in_memory_one(n):
    from cryomath.resolution.streamed import fourier_shell_correlation_streamed

    g = np.random.default_rng(n)
    a = g.standard_normal((n, n, n))
    b = a + 2 * g.standard_normal((n, n, n))
    whole = fourier_shell_correlation(torch.from_numpy(a), torch.from_numpy(b), 1.3)
    # tiny chunks: many slabs in pass 1, many ky rows in pass 2
    streamed = fourier_shell_correlation_streamed(a, b, 1.3, torch.float64, chunk_samples=2000)
    assert float((streamed.fsc - whole.fsc).abs().max()) < 1e-12
    assert torch.equal(streamed.counts, whole.counts)
    # RELION's half maps read a slab at a time from their files, in float32
    from cryomath.io import ImageStack

    half = DATA / "relion313_reference" / "halfmaps_600"
    with ImageStack(half / "half1.mrc") as h1, ImageStack(half / "half2.mrc") as h2:
        streamed = fourier_shell_correlation_streamed(h1, h2, 1.0, chunk_samples=5000)
    maps = [torch.from_numpy(read_mrc(half / f"half{i}.mrc", np.float64)[0]) for i in (1, 2)]
    assert float((streamed.fsc.double() - fourier_shell_correlation(*maps).fsc).abs().max()) < 1e-5
