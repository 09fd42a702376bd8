"""The imaging layer: batches from particle files (against RELION's own projections), the forward
model and its exact adjoint, optics groups of different pixel sizes and boxes, the likelihoods
(against the real-space Gaussian and scipy's Poisson) and the noise-spectrum estimates (against
the spectra the noise was drawn with)."""

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.errors import InvalidInputError
from cryomath.fourier import fft_nd, grid_sample_3d_adjoint, ifft_nd, shell_index, spread_trilinear_
from cryomath.imaging import (
    FourierAccumulator,
    NoiseSpectrum,
    NoiseSpectrumEstimator,
    ParticleBatch,
    estimate_noise_from_background,
    gaussian_log_likelihood,
    insert_spectra,
    iter_batches,
    poisson_log_likelihood,
    predict_images,
    predict_spectra,
)
from cryomath.io import ParticleTable, read_mrc, read_relion_star
from cryomath.noise import gaussian_log_likelihood as real_space_gaussian
from cryomath.pipelines import reconstruct_particles, simulate_dataset
from cryomath.projection import prepare_volume
from cryomath.resolution import fourier_shell_correlation
from cryomath.simulate import SimulationSettings
from tests.conftest import DATA

RELION = DATA / "relion313_reference"


def _complex(shape, generator):
    return torch.complex(*torch.randn(2, *shape, generator=generator, dtype=torch.float64))


def _ctf(b, generator):
    defocus = 10000 + 10000 * torch.rand(b, generator=generator, dtype=torch.float64)
    return CTF(defocus, defocus - 300, torch.tensor(20.0), torch.tensor(300.0),
               torch.tensor(2.7), torch.tensor(0.1))  # fmt: skip


def test_the_private_grid_sampler_adjoint_is_autograds():
    """torch's private ``aten::grid_sampler_3d_backward``, wrapped once: if torch changes its
    signature or meaning, this fails before any reconstruction goes wrong."""
    g = torch.Generator().manual_seed(0)
    volume = torch.randn(1, 2, 7, 8, 5, generator=g, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(1, 3, 4, 5, 3, generator=g, dtype=torch.float64) * 2.2 - 1.1
    values = torch.randn(1, 2, 3, 4, 5, generator=g, dtype=torch.float64)
    sampled = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    (expected,) = torch.autograd.grad(sampled, volume, values)
    got = grid_sample_3d_adjoint(values, (7, 8, 5), grid)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_index_add_spread_is_autograds_grid_sampler_adjoint(dtype):
    """``fourier.spread_trilinear_`` (insertion's CPU path) against autograd of ``grid_sample``
    (``align_corners=True``, zero padding) at samples inside, on the faces and corners of the
    array, and outside it (within one voxel and beyond), added to what ``out`` holds."""
    g = torch.Generator().manual_seed(3)
    shape = (7, 8, 5)  # (z, y, x)
    size = torch.tensor(shape[::-1], dtype=torch.float64) - 1
    inside = torch.rand(200, 3, generator=g, dtype=torch.float64) * (size + 3) - 1.5
    edges = torch.cartesian_prod(*[torch.tensor([-1.0, -0.5, 0.0, 0.25, s - 0.5, s, s + 0.5])
                                   for s in size.tolist()])  # fmt: skip
    index = torch.cat([inside, edges])  # (M, 3) array indices (x, y, z)
    values = torch.randn(2, len(index), generator=g, dtype=torch.float64)
    volume = torch.zeros(1, 2, *shape, dtype=torch.float64, requires_grad=True)
    grid = (index * 2 / size - 1).reshape(1, -1, 1, 1, 3)
    sampled = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    (expected,) = torch.autograd.grad(sampled, volume, values.reshape(1, 2, -1, 1, 1))
    start = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    out = start.clone().to(dtype)
    spread_trilinear_(out, index.to(dtype), values.to(dtype))
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    assert float((out.double() - start - expected[0]).abs().max()) < tolerance


@pytest.mark.parametrize(("m", "max_shell", "scale"), [(16, 5, 1.0), (15, 7, 1.0), (18, 8, 1.2)])
def test_a_bands_samples_insert_as_their_full_grids(m, max_shell, scale):
    """``FourierAccumulator.add_samples`` (the M-step's band, no full grids) against ``add`` of
    the same spectra on their full rfft grids, zero beyond the band: the same sums, with
    images of an odd box, and with a coarser volume whose Nyquist circle cuts the band."""
    from cryomath.fourier.shells import shell_index

    g = torch.Generator().manual_seed(4)
    p = 7
    samples = (shell_index((m, m)) <= max_shell).reshape(-1).nonzero()[:, 0]
    data = torch.randn(p, 2, len(samples), generator=g, dtype=torch.float64)
    weights = torch.rand(p, len(samples), generator=g, dtype=torch.float64)
    rotations = so3.random_rotations(p, 5)
    grid = torch.zeros(p, m * (m // 2 + 1), dtype=torch.complex128)
    grid[:, samples] = torch.complex(data[:, 0], data[:, 1])
    full_weights = torch.zeros(p, m * (m // 2 + 1), dtype=torch.float64)
    full_weights[:, samples] = weights
    expected = FourierAccumulator(12, 2.0, torch.float64)
    expected.add(grid.unflatten(1, (m, m // 2 + 1)), full_weights.unflatten(1, (m, m // 2 + 1)),
                 rotations, scale)  # fmt: skip
    got = FourierAccumulator(12, 2.0, torch.float64)
    got.add_samples(data, weights, rotations, m, samples, scale)
    assert got.count == expected.count == p
    assert float((got.sums - expected.sums).abs().max()) < 1e-12 * float(expected.sums.abs().max())
    with pytest.raises(InvalidInputError):
        got.add_samples(data[:, :1], weights, rotations, m, samples)


def test_a_slices_samples_are_its_grid_values_and_the_adjoint_of_their_insertion():
    """``extract_samples_rfft_3d`` at some of a slice's rfft frequencies gives the values
    ``extract_central_slices_rfft_3d`` puts there (two volumes, a coarser voxel), and is the
    adjoint of ``accumulate_samples_rfft_3d``: <S V, Y> = <V, S^T Y> (real inner products,
    the imaginary channel flipped with Friedel's sign in both)."""
    from cryomath.projection import (
        accumulate_samples_rfft_3d,
        extract_central_slices_rfft_3d,
        extract_samples_rfft_3d,
        nyquist_samples,
    )

    g = torch.Generator().manual_seed(6)
    spectrum = prepare_volume(torch.randn(2, 12, 12, 12, generator=g, dtype=torch.float64), 2.0)
    rotations = so3.random_rotations(2 * 5, 6).reshape(2, 5, 3, 3)
    frequencies, keep = nyquist_samples(12, 1.3, torch.float64, None, max_shell=4)
    got = extract_samples_rfft_3d(spectrum, rotations, frequencies, frequency_scale=1.3,
                                  chunk_size=2)  # fmt: skip
    slices = extract_central_slices_rfft_3d(spectrum, rotations, frequency_scale=1.3)
    assert got.shape == (2, 5, len(keep))
    assert torch.equal(got, slices.flatten(-2)[..., keep])
    y = torch.randn(5, 2, len(keep), generator=g, dtype=torch.float64)
    adjoint = torch.zeros((1, *spectrum.data.shape[1:]), dtype=torch.float64)
    accumulate_samples_rfft_3d(adjoint, y, rotations[0], frequencies, frequency_scale=1.3)
    forward = float((got[0].real * y[:, 0]).sum() + (got[0].imag * y[:, 1]).sum())
    assert forward == pytest.approx(float((spectrum.data[0] * adjoint[0]).sum()), rel=1e-12)
    with pytest.raises(InvalidInputError):
        extract_samples_rfft_3d(spectrum, rotations, frequencies[:, :1])


@pytest.mark.parametrize(("n", "image_size", "pixel"), [(16, 16, 1.0), (15, 18, 1.1)])
def test_insertion_is_the_exact_adjoint_of_the_forward_model(n, image_size, pixel):
    """<F V, Y> = <V, F^T Y> with CTF, shifts, pose hypotheses, per-(image, pose) weights, and
    images of another pixel size and box than the map (real inner products; image spectra
    weighted by their Hermitian multiplicity)."""
    g = torch.Generator().manual_seed(1)
    spectrum = prepare_volume(torch.randn(n, n, n, generator=g, dtype=torch.float64), 2.0,
                              voxel_size_angstrom=1.0)  # fmt: skip
    b, h = 3, 4
    rotations = so3.random_rotations(b * h, 2).reshape(b, h, 3, 3)
    shifts = torch.randn(b, h, 2, generator=g, dtype=torch.float64) * 2
    batch = ParticleBatch.from_tensors(None, rotations[:, 0], pixel, None, _ctf(b, g),
                                       image_size=image_size)  # fmt: skip
    weights = torch.rand(b, h, generator=g, dtype=torch.float64)
    y = _complex((b, h, image_size, image_size // 2 + 1), g)
    predicted = predict_spectra(spectrum, batch, rotations, shifts)
    from cryomath.fourier import hermitian_multiplicity

    m = hermitian_multiplicity((image_size, image_size), dtype=torch.float64)
    lhs = (predicted * (weights[..., None, None] * y).conj() * m).real.sum()
    acc = FourierAccumulator(n, 2.0, torch.float64, voxel_size_angstrom=1.0)
    insert_spectra(acc, y, batch, rotations, shifts, weights)
    x = torch.complex(spectrum.data[0, 0], spectrum.data[0, 1])
    rhs = (x * acc.data.conj()).real.sum()
    assert float((lhs - rhs).abs() / lhs.abs()) < 1e-12
    assert acc.count == b * h
    # and the CTF^2 weights are the insertion of w CTF^2 (a positive measure)
    assert float(acc.weights.min()) >= 0 and float(acc.weights.sum()) > 0


def test_batches_of_relions_projections_and_the_forward_model_match_relion_project():
    """The bridge from a RELION STAR to tensors: images, origins, CTFs and pixel size as RELION
    wrote them; the forward model reproduces relion_project's CTF-modulated images."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = torch.from_numpy(read_mrc(DATA / "map_model" / "emd_3488.mrc", np.float64)[0])
    table = read_relion_star(RELION / "proj_ctf_24.star")
    stack = torch.from_numpy(read_mrc(RELION / "proj_ctf_24.mrcs", np.float64)[0])
    spectrum = prepare_volume(volume, 2.0, voxel_size_angstrom=float(table.pixel_size_angstrom[0]))
    seen = []
    for batch in iter_batches(table, batch_size=10):
        assert batch.spectra.dtype == torch.complex128 and len(batch) <= 10
        rows = batch.indices.numpy()
        seen.extend(rows.tolist())
        assert torch.allclose(batch.images(), stack[rows], atol=1e-4)
        predicted = predict_images(spectrum, batch)
        a = predicted - predicted.mean((-1, -2), keepdim=True)
        r = stack[rows] - stack[rows].mean((-1, -2), keepdim=True)
        cc = (a * r).sum((-1, -2)) / ((a * a).sum((-1, -2)) * (r * r).sum((-1, -2))).sqrt()
        assert float(cc.min()) > 0.995  # measured 0.9999999
    assert seen == list(range(table.n))


def _groups_table(n=10):
    """A metadata-only table of ``n`` particles in interleaved optics groups."""
    g = np.arange(n) % 3 + 1
    return ParticleTable(
        n=n, rotations=np.broadcast_to(np.eye(3), (n, 3, 3)), origins_angstrom=np.zeros((n, 2)),
        pixel_size_angstrom=np.where(g == 2, 1.1, 1.05), image_size=np.where(g == 3, 20, 16),
        optics_group=g,
    )  # fmt: skip


def test_batches_never_mix_optics_groups_and_can_keep_the_table_order():
    table = _groups_table()
    batches = list(iter_batches(table, 2, read_images=False, use_ctf=False))
    assert [b.optics_group for b in batches] == [1, 1, 2, 2, 3, 3]
    assert [(b.pixel_size_angstrom, b.image_size) for b in batches[::2]] == [
        (1.05, 16), (1.1, 16), (1.05, 20)
    ]  # fmt: skip
    assert sorted(int(i) for b in batches for i in b.indices) == list(range(10))
    ordered = list(iter_batches(table, 4, read_images=False, use_ctf=False, in_table_order=True))
    assert [int(i) for b in ordered for i in b.indices] == list(range(10))
    assert all(len(b) == 1 for b in ordered)  # every row starts a new group here
    picked = list(iter_batches(table, 8, read_images=False, use_ctf=False, rows=[0, 3, 4],
                               weights=np.arange(10.0)))  # fmt: skip
    assert [b.indices.tolist() for b in picked] == [[0, 3], [4]]
    assert picked[0].weights.tolist() == [0.0, 3.0]
    with pytest.raises(InvalidInputError, match="batch size"):
        next(iter_batches(table, 0, read_images=False, use_ctf=False))
    with pytest.raises(InvalidInputError, match="pixel_size_angstrom of particle 1 is 0"):
        next(iter_batches(replace(table, pixel_size_angstrom=np.zeros(10)), 2, read_images=False,
                          use_ctf=False))  # fmt: skip


def _blobs(n, pixel):
    """An analytic density, 12 Gaussian blobs of sd 1.5 A within 11 A of the centre, sampled on
    an n^3 grid of ``pixel`` A (the same object at any pixel size)."""
    g = torch.Generator().manual_seed(3)
    centres = (torch.rand(12, 3, generator=g, dtype=torch.float64) - 0.5) * 2 * 11 / math.sqrt(3)
    axis = (torch.arange(n, dtype=torch.float64) - n // 2) * pixel
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    r = torch.stack([x, y, z], -1)
    d2 = ((r[..., None, :] - centres) ** 2).sum(-1)
    return torch.exp(-d2 / (2 * 1.5**2)).sum(-1)


def _concatenate(a: ParticleTable, b: ParticleTable) -> ParticleTable:
    def cat(name):
        return np.concatenate([getattr(a, name), getattr(b, name)])

    paths = np.array([str(a.resolve_path(p)) for p in a.image_paths]
                     + [str(b.resolve_path(p)) for p in b.image_paths], dtype=object)  # fmt: skip
    from cryomath.io import CTFParameters

    ctf = CTFParameters(**{k: np.concatenate([getattr(a.ctf, k), getattr(b.ctf, k)])
                           for k in vars(a.ctf)})  # fmt: skip
    return ParticleTable(
        n=a.n + b.n, rotations=cat("rotations"), origins_angstrom=cat("origins_angstrom"), ctf=ctf,
        pixel_size_angstrom=cat("pixel_size_angstrom"), image_size=cat("image_size"),
        image_paths=paths, image_indices=cat("image_indices"),
        optics_group=np.r_[np.ones(a.n, np.int64), np.full(b.n, 2)],
        random_subset=cat("random_subset"),
    )  # fmt: skip


def test_optics_groups_of_different_pixel_sizes_and_boxes_reconstruct_to_one_map(tmp_path):
    """Half the particles imaged at 1.05 A in 32^2 boxes, half at 1.10 A in 34^2 boxes (the same
    object, rendered at each pixel size): the map equals the one from all particles at 1.05 A.
    Taking the first group's pixel size for all (what cryomath did before) does not."""
    m = 800
    settings = SimulationSettings(n_particles=2 * m, pixel_size_angstrom=1.05, snr=None,
                                  shift_sigma_angstrom=1.0, shard_size=4096)  # fmt: skip
    simulate_dataset(_blobs(32, 1.05), tmp_path / "a", settings)
    simulate_dataset(_blobs(34, 1.10), tmp_path / "b", replace(settings, pixel_size_angstrom=1.10))
    single = read_relion_star(tmp_path / "a" / "particles.star")
    other = read_relion_star(tmp_path / "b" / "particles.star")
    mixed = _concatenate(single.subset(np.arange(m)), other.subset(np.arange(m, 2 * m)))
    assert sorted(set(mixed.pixel_size_angstrom)) == [1.05, 1.10]
    reference = reconstruct_particles(single).full
    both = reconstruct_particles(mixed)
    assert both.pixel_size_angstrom == 1.05 and both.full.shape == (32, 32, 32)

    def fsc(a, b):  # up to 0.8 Nyquist (the blobs hold little beyond)
        return fourier_shell_correlation(a, b).fsc[1:13]

    truth = _blobs(32, 1.05)
    assert float(fsc(both.full, reference).min()) > 0.995  # measured 0.9986
    # as close to the truth as the single-pixel-size map (measured: within 0.003 per shell)
    assert float((fsc(reference, truth) - fsc(both.full, truth)).max()) < 0.005
    wrong = reconstruct_particles(replace(mixed, pixel_size_angstrom=np.full(2 * m, 1.05)))
    assert float(fsc(wrong.full, reference).min()) < 0.8  # measured 0.67
    with pytest.raises(InvalidInputError, match="34"):  # the table's box must be the files'
        reconstruct_particles(replace(mixed, image_size=np.full(2 * m, 32)))


def test_gaussian_likelihood_equals_the_real_space_likelihood_for_white_noise():
    g = torch.Generator().manual_seed(4)
    n, b, v = 12, 3, 0.7
    images = torch.randn(b, n, n, generator=g, dtype=torch.float64)
    model = torch.randn(b, 2, n, n, generator=g, dtype=torch.float64)
    batch = ParticleBatch.from_tensors(images, so3.random_rotations(b, 0), 1.0)
    n_shells = int(shell_index((n, n)).max()) + 1
    noise = NoiseSpectrum((0,), torch.full((1, n_shells), n * n * v / 2, dtype=torch.float64))
    fourier = gaussian_log_likelihood(batch, fft_nd(model, 2, rfft=True), noise)
    real = real_space_gaussian(images[:, None], model, math.sqrt(v))
    assert fourier.shape == (b, 2)
    assert float((fourier - real).abs().max()) < 1e-9 * float(real.abs().max())
    # a band limit drops the shells above it
    limited = gaussian_log_likelihood(batch, fft_nd(model, 2, rfft=True), noise, max_shell=3)
    assert bool((limited != fourier).all())


def test_poisson_likelihood_matches_scipy():
    g = torch.Generator().manual_seed(5)
    n, dose, pixel = 8, 2.0, 1.5
    contrast = 0.1 * torch.randn(2, 3, n, n, generator=g, dtype=torch.float64)
    counts = torch.poisson(torch.full((2, n, n), dose * pixel**2, dtype=torch.float64), g)
    batch = ParticleBatch.from_tensors(counts, so3.random_rotations(2, 0), pixel)
    got = poisson_log_likelihood(batch, contrast, dose, centred_counts=False)
    rate = dose * pixel**2 * (1 + contrast.numpy())
    expected = stats.poisson.logpmf(counts.numpy()[:, None], rate).sum((-1, -2))
    assert np.allclose(got.numpy(), expected, rtol=1e-9, atol=1e-6)


def _coloured(b, n, v, gain, generator):
    """Images of white noise (variance v) filtered by ``gain[shell]``: sigma2 = n^2 v gain^2/2."""
    white = torch.randn(b, n, n, generator=generator, dtype=torch.float64) * math.sqrt(v)
    return ifft_nd(fft_nd(white, 2, rfft=True) * gain[shell_index((n, n))], (n, n), rfft=True)


def test_noise_spectrum_from_residuals_follows_relions_rule_per_optics_group():
    g = torch.Generator().manual_seed(6)
    n, b = 24, 400
    shells = int(shell_index((n, n)).max()) + 1
    gain = torch.linspace(1.5, 0.3, shells, dtype=torch.float64)
    truth = n * n * 2.0 * gain**2 / 2
    estimator = NoiseSpectrumEstimator()
    for group, v in ((1, 2.0), (2, 0.5)):
        noise = _coloured(b, n, v, gain, g)
        batch = replace(ParticleBatch.from_tensors(noise, so3.random_rotations(b, 0), 1.0),
                        optics_group=group)  # fmt: skip
        # residuals of two pose hypotheses per image, with posterior weights summing to 1
        residuals = torch.stack([batch.spectra, batch.spectra], 1)
        weights = torch.rand(b, 1, generator=g, dtype=torch.float64).expand(b, 2).clone()
        weights[:, 1] = 1 - weights[:, 0]
        estimator.add(batch, residuals, weights)
    result = estimator.result()
    assert result.groups == (1, 2)
    for row, v in ((0, 2.0), (1, 0.5)):
        ratio = result.sigma2[row, 2 : n // 2] / (truth[2 : n // 2] * v / 2.0)
        assert float((ratio - 1).abs().max()) < 0.1  # thousands of samples per shell


def test_noise_spectrum_from_the_background_of_raw_images():
    g = torch.Generator().manual_seed(7)
    n, b, v = 48, 200, 1.5
    particle = _blobs(n, 1.0)[n // 2 - 4 : n // 2 + 4].sum(0) * 5  # a disc-like projection
    images = particle + torch.randn(b, n, n, generator=g, dtype=torch.float64) * math.sqrt(v)
    batch = ParticleBatch.from_tensors(images, so3.random_rotations(b, 0), 1.0)
    white = estimate_noise_from_background([batch], mask_radius_px=16)
    expected = n * n * v / 2
    ratio = white.sigma2[0, 1 : n // 2] / expected
    assert float((ratio - 1).abs().max()) < 0.06
    # coloured noise: the estimate follows the spectrum (the mask smooths it a little)
    shells = int(shell_index((n, n)).max()) + 1
    gain = torch.linspace(1.5, 0.5, shells, dtype=torch.float64)
    images = particle + _coloured(b, n, v, gain, g)
    batch = ParticleBatch.from_tensors(images, so3.random_rotations(b, 0), 1.0)
    coloured = estimate_noise_from_background([batch], mask_radius_px=16)
    ratio = coloured.sigma2[0, 3 : n // 2] / (expected * gain[3 : n // 2] ** 2)
    assert float((ratio - 1).abs().max()) < 0.1
    with pytest.raises(InvalidInputError, match="no background"):
        estimate_noise_from_background([batch], mask_radius_px=40)


def test_noise_from_the_background_is_unbiased_at_the_first_shells():
    """Removing each image's background mean takes power from the first shells (white noise in a
    32^2 box outside a 13 px circle: 14-18 % at shell 1 before the exact normaliser); the
    estimate divided by the masked white noise's own power is unbiased there too."""
    g = torch.Generator().manual_seed(1)
    n, b, v = 32, 3000, 1.5
    noise = torch.randn(b, n, n, generator=g, dtype=torch.float64) * math.sqrt(v)
    batch = ParticleBatch.from_tensors(noise, so3.random_rotations(b, 0), 1.0)
    sigma2 = estimate_noise_from_background([batch], mask_radius_px=13).sigma2[0]
    ratio = sigma2[1 : n // 2] / (n * n * v / 2)
    assert float((ratio - 1).abs().max()) < 0.04  # shell 1: 8 frequencies x 3,000 images
