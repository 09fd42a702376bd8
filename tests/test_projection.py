"""The projectors against cryoDRGN's toy projections, RELION's ``relion_project`` (EMD-3488 and
ASPIRE's ribosome), and autograd."""

import pickle
import warnings

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.errors import InvalidInputError
from cryomath.fourier import fourier_resize, shift_3d
from cryomath.io import read_mrc, read_relion_star, read_star
from cryomath.projection import project_fourier, project_fourier_voxel_basis, project_real_space
from tests.conftest import DATA

RELION = DATA / "relion313_reference"
ASPIRE = DATA / "aspire_relion_proj"


def _cc(a, b):
    a = a - a.mean((-1, -2), keepdim=True)
    b = b - b.mean((-1, -2), keepdim=True)
    return (a * b).sum((-1, -2)) / torch.sqrt((a * a).sum((-1, -2)) * (b * b).sum((-1, -2)))


def _mrc(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the toy stack lacks the MAP id
        return torch.from_numpy(read_mrc(path, dtype=np.float64)[0])


@pytest.fixture(scope="module")
def toy():
    volume = _mrc(DATA / "cryodrgn_toy" / "toymodel_small_nocenter.mrc")
    images = _mrc(DATA / "cryodrgn_toy" / "toy_projections.mrcs")
    with open(DATA / "cryodrgn_toy" / "toy_rot_trans.pkl", "rb") as f:
        rotations, _ = pickle.load(f)
    return volume, images, torch.from_numpy(rotations.astype(np.float64))


def test_real_space_projector_reproduces_cryodrgn_toy_projections(toy):
    volume, images, rotations = toy
    ours = project_real_space(volume, rotations[:200])
    assert float(_cc(ours, images[:200]).min()) >= 0.999999
    assert float((ours - images[:200]).abs().max()) < 2e-5  # the stack is float32 (values ~10)


def test_fourier_projector_on_cryodrgn_toy_projections(toy):
    # The toy volume is binary and sparse (0.7 % of voxels are 1): far from band-limited, so
    # the exact (band-limited) Fourier slice differs from cryoDRGN's real-space trilinear
    # projection by that kernel's blur and aliasing. Measured at any padding: min 0.986,
    # mean 0.994 (the 0.999 is not reachable by a correct Fourier-slice projector).
    volume, images, rotations = toy
    ours = project_fourier(volume, rotations[:200], pad_factor=2)
    cc = _cc(ours, images[:200])
    assert float(cc.min()) >= 0.985 and float(cc.mean()) >= 0.993


def test_voxel_basis_fourier_projector_reproduces_cryodrgn_toy_projections(toy):
    # The Fourier projector of the tent-basis volume with the first aliases (27 slices) is the
    # spectral form of the real-space projector that made the toy stack. Measured (200
    # images): min 0.99986, mean 0.99997, relative L2 error 0.7 %.
    volume, images, rotations = toy
    ours = project_fourier_voxel_basis(volume, rotations[:200])
    cc = _cc(ours, images[:200])
    assert float(cc.min()) >= 0.999 and float(cc.mean()) >= 0.9999
    assert float((ours - images[:200]).norm() / images[:200].norm()) < 0.01


@pytest.mark.parametrize("n", [31, 32])
def test_fourier_projector_equals_the_analytic_projection_of_gaussians(n):
    # V = sum of 3-D Gaussians (sigma 2 voxels); its projection is the sum of 2-D Gaussians of
    # the rotated centres, each times sqrt(2 pi) sigma. Odd and even boxes.
    sigma = 2.0
    centres = torch.tensor(
        [[2.0, -1.0, 3.0], [-3.0, 2.0, -1.0], [0.5, 3.5, 1.5]], dtype=torch.float64
    )
    axis = torch.arange(n, dtype=torch.float64) - n // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    grid = torch.stack([x, y, z], -1)
    volume = sum(torch.exp(-((grid - c) ** 2).sum(-1) / (2 * sigma**2)) for c in centres)
    rotations = so3.random_rotations(5, 7)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    expected = torch.zeros(5, n, n, dtype=torch.float64)
    for c in centres:
        moved = c @ rotations.transpose(-1, -2)  # A c: where the centre lands in each image
        d2 = (xx - moved[:, 0, None, None]) ** 2 + (yy - moved[:, 1, None, None]) ** 2
        expected += (2 * torch.pi) ** 0.5 * sigma * torch.exp(-d2 / (2 * sigma**2))
    # measured: trilinear 2.5e-2 (pad 1), 5e-3 (pad 2), 1e-3 (pad 4); cubic 1e-3, 4e-5
    cases = (
        ("trilinear", 2, 6e-3),
        ("trilinear", 4, 1.5e-3),
        ("cubic", 1, 1.5e-3),
        ("cubic", 2, 1e-4),
    )
    for interpolation, pad, tolerance in cases:
        ours = project_fourier(volume, rotations, pad_factor=pad, interpolation=interpolation)
        assert float((ours - expected).abs().max() / expected.abs().max()) < tolerance


@pytest.mark.parametrize(
    "star, stack",
    [
        ("poses_zero_origin.star", "proj_noctf_zero.mrcs"),
        ("proj_noctf_24.star", "proj_noctf_24.mrcs"),
    ],
)
def test_fourier_projector_reproduces_relion_project(star, stack):
    volume = _mrc(DATA / "map_model" / "emd_3488.mrc")
    table = read_relion_star(RELION / star)
    reference = _mrc(RELION / stack)
    shifts = -torch.from_numpy(table.origins_angstrom) / float(table.pixel_size_angstrom[0])
    ours = project_fourier(volume, torch.from_numpy(table.rotations), shifts, pad_factor=2)
    assert float(_cc(ours, reference).min()) >= 0.995
    # amplitude: relion_project = our projection (sum along z in voxel units), factor 1
    error = ((ours - reference) ** 2).sum((-1, -2)).sqrt() / (reference**2).sum((-1, -2)).sqrt()
    assert float(error.max()) <= 0.05


@pytest.mark.parametrize("name", ["rln_proj_64", "rln_proj_64_centered", "rln_proj_64_shifted"])
def test_fourier_projector_reproduces_relion_projections_of_aspires_ribosome(name):
    volume = fourier_resize(_mrc(ASPIRE / "clean70SRibosome_vol_65p.mrc"), (64, 64, 64))
    if name == "rln_proj_64":
        # this set was made from ASPIRE's own 65 -> 64 downsampling, whose centre is half a
        # voxel off ours (n // 2): the same volume shifted by -0.5 voxel on each axis
        volume = shift_3d(volume, torch.tensor([-0.5, -0.5, -0.5], dtype=torch.float64))
    blocks = read_star(ASPIRE / f"{name}.star")
    frame = next(b for b in reversed(blocks.values()) if hasattr(b, "columns"))
    angles = torch.tensor(frame[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(float))
    origin_columns = [c for c in frame.columns if c.startswith("rlnOrigin")]
    shifts = -torch.tensor(frame[origin_columns].to_numpy(float))  # pixel size 1
    ours = project_fourier(volume, so3.matrix_from_relion_euler(angles), shifts)
    reference = _mrc(ASPIRE / f"{name}.mrcs")
    assert float(_cc(ours, reference).min()) >= 0.995
    error = ((ours - reference) ** 2).sum((-1, -2)).sqrt() / (reference**2).sum((-1, -2)).sqrt()
    assert float(error.max()) <= 0.05


def test_real_space_projection_at_identity_is_the_sum_along_z():
    volume = torch.randn(
        15, 15, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    image = project_real_space(volume, torch.eye(3, dtype=torch.float64)[None])[0]
    torch.testing.assert_close(image, volume.sum(0))


def test_batched_volumes_and_poses_and_dtype():
    g = torch.Generator().manual_seed(1)
    volumes = fourier_resize(torch.randn(2, 8, 8, 8, generator=g), (2, 16, 16, 16))
    rotations = so3.random_rotations(6, 2).float().reshape(2, 3, 3, 3)
    images = project_fourier(volumes, rotations)
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
    one = project_fourier(volumes[1], rotations[1, 2])
    torch.testing.assert_close(images[1, 2], one, atol=1e-5, rtol=1e-5)
    with pytest.raises(InvalidInputError):
        project_fourier(torch.zeros(4, 5, 6), rotations)
    with pytest.raises(InvalidInputError, match="NaN"):
        project_fourier(torch.full((8, 8, 8), float("nan")), torch.eye(3))


def test_gradcheck_volume_rotation_and_shift_in_float64():
    g = torch.Generator().manual_seed(3)
    volume = fourier_resize(torch.randn(3, 3, 3, generator=g, dtype=torch.float64), (6, 6, 6))
    rotvec = torch.tensor([[0.3, -0.2, 0.4]], dtype=torch.float64)
    shifts = torch.tensor([[0.3, -0.7]], dtype=torch.float64)

    def f(v, w, s):
        return project_fourier(v, so3.exp_map(w), s, pad_factor=2)

    inputs = (volume.requires_grad_(True), rotvec.requires_grad_(True), shifts.requires_grad_(True))
    assert torch.autograd.gradcheck(f, inputs, atol=1e-6, fast_mode=True)

    def cubic(v, w, s):
        return project_fourier(v, so3.exp_map(w), s, pad_factor=2, interpolation="cubic")

    assert torch.autograd.gradcheck(cubic, inputs, atol=1e-6, fast_mode=True)

    def voxel_basis(v, w):
        return project_fourier_voxel_basis(v, so3.exp_map(w), pad_factor=1.5)

    assert torch.autograd.gradcheck(voxel_basis, inputs[:2], atol=1e-6, fast_mode=True)


def test_ewald_curvature_zero_is_the_central_slice_and_changes_high_resolution_only():
    volume = _mrc(DATA / "map_model" / "emd_3488.mrc")
    rotations = so3.random_rotations(2, 4)
    flat = project_fourier(volume, rotations)
    torch.testing.assert_close(project_fourier(volume, rotations, ewald_curvature=0.0), flat)
    # 300 kV at 1.05 A/pixel: c = lambda / (2 * pixel) ~ 0.0094 cycles/pixel at |k| = 1
    curved = project_fourier(volume, rotations, ewald_curvature=0.0196875 / (2 * 1.05))
    assert 0.999 < float(_cc(curved, flat).min()) < 1.0


def test_edge_mean_subtraction_removes_a_constant_background():
    n = 24
    axis = torch.arange(n, dtype=torch.float64) - n // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    blob = torch.exp(-(x**2 + y**2 + z**2) / 8.0)
    from cryomath.projection import edge_mean

    assert float(edge_mean(blob + 3.0)) == pytest.approx(3.0, abs=1e-6)
    rotations = so3.random_rotations(3, 9)
    clean = project_fourier(blob, rotations)
    lifted = project_fourier(blob + 3.0, rotations, subtract_edge_mean=True)
    assert float((lifted - clean).abs().max() / clean.abs().max()) < 1e-5


def test_the_compiled_kernel_reproduces_relion_project_and_the_eager_path():
    """``compiled=True`` (one fused kernel) against relion_project's images, and equal to the
    eager path in values and gradients (float64: to rounding)."""
    from cryomath.fourier.fft import ifft_nd
    from cryomath.fourier.shift import phase_ramp
    from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume

    volume = _mrc(DATA / "map_model" / "emd_3488.mrc").double().requires_grad_()
    table = read_relion_star(RELION / "proj_noctf_24.star")
    reference = _mrc(RELION / "proj_noctf_24.mrcs").double()
    rotations = torch.from_numpy(table.rotations).requires_grad_()
    shifts = -torch.from_numpy(table.origins_angstrom) / float(table.pixel_size_angstrom[0])
    spectrum = prepare_volume(volume, 2.0)
    n = spectrum.n
    eager = extract_central_slices_rfft_3d(spectrum, rotations, chunk_size=16)
    fused = extract_central_slices_rfft_3d(spectrum, rotations, chunk_size=16, compiled=True)
    assert float((fused - eager).detach().abs().max() / eager.detach().abs().max()) < 1e-12
    ours = ifft_nd(fused * phase_ramp((n, n), shifts, rfft=True), (n, n), rfft=True)
    assert float(_cc(ours.detach(), reference).min()) >= 0.995
    error = ((ours.detach() - reference) ** 2).sum((-1, -2)).sqrt()
    assert float((error / (reference**2).sum((-1, -2)).sqrt()).max()) <= 0.05
    grads = [torch.autograd.grad(s.abs().pow(2).sum(), (volume, rotations), retain_graph=True)
             for s in (eager, fused)]  # fmt: skip
    for a, b in zip(*grads, strict=True):
        assert float((a - b).abs().max() / a.abs().max()) < 1e-10
