"""The Ewald sphere (``ctf.ewald``, ``imaging.ewald``): the two single side-bands against their
closed form, the forward model against the analytic transform of a Gaussian sampled on two
spheres, insertion as its exact adjoint, the resolution a flat slice loses and the correction
gives back (against the truth of a simulation), the hand the curvature reveals, and the
curvature sign proven against ``relion_reconstruct --ewald``'s own maps of our images
(``tests/reference/ewald``, written by ``bench/ewald.py --write-reference``)."""

import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.ctf import CTF, compute_ctf, ewald_curvature, single_sideband_ctf
from cryomath.errors import InvalidInputError
from cryomath.fourier import fftfreq_grid, hermitian_multiplicity
from cryomath.imaging import (
    Ewald,
    FourierAccumulator,
    ParticleBatch,
    insert_spectra,
    predict_spectra,
)
from cryomath.io import read_mrc, read_particles
from cryomath.pipelines import read_volume, reconstruct_particles, simulate_dataset
from cryomath.projection import prepare_volume
from cryomath.reconstruction import accumulate_halves, invert
from cryomath.resolution import flatten_spectrum, fourier_shell_correlation, resolution_angstrom
from cryomath.simulate import SimulationSettings
from tests.conftest import DATA

HERE = Path(__file__).parent / "reference" / "ewald"
# bench/ewald.py's particle and optics: EMD-3488 at a 64 box, flat spectrum, 0.25 A voxels,
# 100 kV (a 700-A particle at 3 A and 300 kV, scaled down)
VOXEL, VOLTAGE, MASK = 0.25, 100.0, 14.4


def _ctf(b, voltage=VOLTAGE, bfactor=0.0, defocus=500.0):
    one = torch.ones(b, dtype=torch.float64)
    return CTF(defocus * one, (defocus - 50) * one, 30 * one, voltage * one, 2.7 * one,
               0.1 * one, bfactor_angstrom2=bfactor)  # fmt: skip


def test_the_side_bands_add_up_to_the_ctf_and_the_sphere_curves_by_half_a_wavelength():
    ctf = _ctf(2, bfactor=40.0)
    h = single_sideband_ctf(ctf, (32, 32), 1.0)
    flat = compute_ctf(ctf, (32, 32), 1.0)
    assert float((h + h.conj() - flat).abs().max()) < 1e-12
    # |2H| is the envelope alone: sin^2 + cos^2 = 1 under exp(-B k^2 / 4)
    k2 = fftfreq_grid((32, 32), rfft=True, dtype=torch.float64).square().sum(-1)
    assert float(((2 * h).abs() - torch.exp(-40.0 * k2 / 4)).abs().max()) < 1e-12
    # lambda(100 kV) = 0.0370144 A (relativistic): c = lambda / (2 pixel), signed
    assert ewald_curvature(ctf, 0.5) == pytest.approx(0.0370144 / 1.0, rel=1e-5)
    assert ewald_curvature(ctf, 0.5, -1) == pytest.approx(-0.0370144, rel=1e-5)
    with pytest.raises(InvalidInputError, match="one voltage"):
        ewald_curvature(CTF(*(torch.ones(2) * 1e4,) * 2, torch.zeros(2),
                            torch.tensor([100.0, 300.0]), torch.ones(2) * 2.7,
                            torch.ones(2) * 0.1), 1.0)  # fmt: skip


def _gaussian_transform(points, sigma, centre):
    """The transform of ``exp(-|r - centre|^2 / (2 sigma^2))`` at ``points (..., 3)`` (x, y, z;
    cycles/voxel), origin at voxel ``n // 2``."""
    amplitude = (2 * math.pi * sigma**2) ** 1.5
    envelope = torch.exp(-2 * math.pi**2 * sigma**2 * points.square().sum(-1))
    return amplitude * envelope * torch.exp(-2j * math.pi * (points * centre).sum(-1))


def test_the_forward_model_samples_a_gaussian_on_two_spheres_of_opposite_curvature():
    n, pixel, sigma = 32, 0.25, 1.5
    centre = torch.tensor([3.0, -2.0, 5.0], dtype=torch.float64)
    z, y, x = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) - n // 2] * 3, indexing="ij")
    r2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
    volume = torch.exp(-r2 / (2 * sigma**2))
    spectrum = prepare_volume(volume, 2.0, "cubic", voxel_size_angstrom=pixel)
    rotations = so3.random_rotations(4, 5)
    batch = ParticleBatch.from_tensors(None, rotations, pixel, None, _ctf(4), image_size=n)
    got = predict_spectra(spectrum, batch, ewald=Ewald())
    k = fftfreq_grid((n, n), rfft=True, dtype=torch.float64)  # (n, m, 2) cycles/pixel
    c = 0.0370144 / (2 * pixel)
    h = single_sideband_ctf(batch.ctf, (n, n), pixel)
    expected = 0
    for side, transfer in ((1, h), (-1, h.conj())):
        planar = torch.cat([k, side * c * k.square().sum(-1, keepdim=True)], -1)
        points = torch.einsum("nmi,bij->bnmj", planar, rotations)  # A^T (kx, ky, kz)
        expected = expected + transfer * _gaussian_transform(points, sigma, centre)
    inside = k.square().sum(-1) <= 0.25
    error = float((got - expected)[:, inside].abs().max() / expected.abs().max())
    assert error < 2e-3
    # the curvature is seen: the flat slice, or the spheres swapped, are far off
    swapped = predict_spectra(spectrum, batch, ewald=Ewald(-1))
    flat = predict_spectra(spectrum, batch)
    for other in (swapped, flat):
        assert float((other - expected)[:, inside].abs().max() / expected.abs().max()) > 50 * error


def test_side_band_insertion_is_the_exact_adjoint_of_the_curved_forward_model():
    g = torch.Generator().manual_seed(2)
    n = 16
    spectrum = prepare_volume(torch.randn(n, n, n, generator=g, dtype=torch.float64), 2.0,
                              voxel_size_angstrom=0.5)  # fmt: skip
    b, hyp = 3, 2
    rotations = so3.random_rotations(b * hyp, 3).reshape(b, hyp, 3, 3)
    batch = ParticleBatch.from_tensors(None, rotations[:, 0], 0.5, None, _ctf(b), image_size=n)
    weights = torch.rand(b, hyp, generator=g, dtype=torch.float64)
    y = torch.complex(*torch.randn(2, b, hyp, n, n // 2 + 1, generator=g, dtype=torch.float64))
    predicted = predict_spectra(spectrum, batch, rotations, ewald=Ewald())
    m = hermitian_multiplicity((n, n), dtype=torch.float64)
    lhs = (predicted * (weights[..., None, None] * y).conj() * m).real.sum()
    acc = FourierAccumulator(n, 2.0, torch.float64, voxel_size_angstrom=0.5)
    insert_spectra(acc, y, batch, rotations, weights=weights, ewald=Ewald())
    rhs = (torch.complex(spectrum.data[0, 0], spectrum.data[0, 1]) * acc.data.conj()).real.sum()
    assert float((lhs - rhs).abs() / lhs.abs()) < 1e-12


def _truth() -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EMD-3488's header statistics
        volume, _ = read_volume(DATA / "map_model" / "emd_3488.mrc", 64, 1.05 * 100 / 64)
    return flatten_spectrum(volume)


def _settings(n_particles, snr):
    return SimulationSettings(
        n_particles=n_particles, pixel_size_angstrom=VOXEL, seed=3, voltage_kv=VOLTAGE,
        defocus_min_angstrom=5000.0, defocus_max_angstrom=15000.0, snr=snr, ewald=True,
    )  # fmt: skip


def _map(star, ewald):
    table = read_particles(star)
    sums = accumulate_halves(table, np.ones(table.n, dtype=np.int64), ewald=ewald)[1]
    return invert(sums, prior_weight=1e-3)


def _outer_fsc(volume, truth):
    return float(fourier_shell_correlation(volume, truth, VOXEL).fsc[24:32].mean())


def test_a_flat_slice_loses_resolution_the_correction_restores_and_the_curvature_shows_the_hand(
    tmp_path,
):
    truth = _truth()
    settings = _settings(2000, 0.005)
    simulate_dataset(truth, tmp_path / "ewald", settings)
    simulate_dataset(truth, tmp_path / "flat", replace(settings, ewald=False))

    def resolution(star, ewald):
        curve = fourier_shell_correlation(_map(star, ewald), truth, VOXEL)
        return resolution_angstrom(curve, 0.5)

    star = tmp_path / "ewald" / "particles.star"
    reference = resolution(tmp_path / "flat" / "particles.star", None)  # no curvature at all
    flat = resolution(star, None)
    corrected = resolution(star, Ewald(1, MASK))
    # measured: 0.53 A without curvature; 0.64 A flat; 0.52 A corrected; 0.77 A reversed
    assert flat > 1.12 * reference
    assert corrected < 1.02 * reference
    # the hand: with the wrong curvature (a map of the other hand) the half maps agree less
    right, wrong = (
        resolution_angstrom(reconstruct_particles(read_particles(star), ewald=Ewald(s)).fsc)
        for s in (1, -1)
    )  # fmt: skip
    assert wrong > 1.1 * right


def test_relion_reconstructs_our_curved_images_best_with_its_own_positive_curvature(tmp_path):
    """relion_reconstruct --ewald --mask_diameter 14.4 (and --reverse_curvature) of 1,000
    noiseless images of this simulation: RELION's positive curvature is ours (its map fits the
    truth, the reversed one does not), and our corrected map fits it at least as well."""
    truth = _truth()
    simulate_dataset(truth, tmp_path, _settings(1000, None))
    relion = {name: torch.from_numpy(read_mrc(HERE / f"relion_{name}.mrc.gz", np.float64)[0])
              for name in ("ewald", "reverse")}  # fmt: skip
    scores = {name: _outer_fsc(volume, truth) for name, volume in relion.items()}
    assert scores["ewald"] > 0.98 and scores["reverse"] < 0.8  # measured 0.987 and 0.731
    star = tmp_path / "particles.star"
    ours = _outer_fsc(_map(star, Ewald(1, MASK)), truth)
    reverse = _outer_fsc(_map(star, Ewald(-1, MASK)), truth)
    assert ours >= scores["ewald"]  # measured 0.991
    assert reverse == pytest.approx(scores["reverse"], abs=0.02)  # measured 0.737
