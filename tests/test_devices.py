"""Devices: ``--device`` / ``device=`` resolution and its errors, the host <-> device staging of
streamed batches, and that no compute function assumes the CPU.

No GPU is needed: a tensor on torch's ``meta`` device has a shape and a dtype but no values,
and torch refuses to mix it with a CPU tensor ("Tensor on device cpu is not on the expected
device meta") exactly as it refuses to mix CPU and CUDA tensors. A function that runs on meta
inputs and returns meta tensors of the input's dtype creates nothing on the CPU by itself.
"""

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.cli import main
from cryomath.ctf import CTF, compute_ctf
from cryomath.devices import Staging, resolve_device
from cryomath.errors import InvalidInputError
from cryomath.fitting import coarse_grid, density_vectors, rotate_field
from cryomath.fitting.refine import transform_map
from cryomath.fourier import crop_or_pad, fft_nd, fourier_resize, ifft_nd
from cryomath.fourier.masks import spherical_mask
from cryomath.fourier.shift import phase_ramp, shift_2d
from cryomath.imaging import FourierAccumulator, ParticleBatch, predict_images
from cryomath.noise import add_white_noise, coloured_noise, gaussian_log_likelihood
from cryomath.projection import prepare_volume, project_fourier, project_real_space
from cryomath.projection.voxel_basis import project_fourier_voxel_basis
from cryomath.reconstruction import insert_particles, invert, reconstruct
from cryomath.resolution import (
    apply_bfactor,
    fourier_shell_correlation,
    guinier,
    low_pass,
    randomize_phases,
    weight_by_shell,
)
from tests.conftest import DATA

META = torch.device("meta")
NO_CUDA = not torch.cuda.is_available()


def _inputs(dtype):
    n, p = 12, 3
    volume = torch.zeros(n, n, n, dtype=dtype, device=META)
    images = torch.zeros(p, n, n, dtype=dtype, device=META)
    rotations = torch.eye(3, dtype=dtype, device=META).expand(p, 3, 3)
    shifts = torch.zeros(p, 2, dtype=dtype, device=META)
    ctf = CTF(
        defocus_u_angstrom=torch.full((p,), 1.2e4, dtype=dtype, device=META),
        defocus_v_angstrom=torch.full((p,), 1.1e4, dtype=dtype, device=META),
        defocus_angle_degrees=torch.zeros(p, dtype=dtype, device=META),
        voltage_kv=300.0,  # plain numbers must join the tensors' device
        spherical_aberration_mm=2.7,
        amplitude_contrast=0.1,
        bfactor_angstrom2=50.0,
    )
    return volume, images, rotations, shifts, ctf


def _inserted(images, rotations, shifts, ctf):
    acc = FourierAccumulator(images.shape[-1], 2.0, images.dtype, images.device)
    insert_particles(acc, ParticleBatch.from_tensors(images, rotations, 1.0, shifts, ctf))
    return invert(acc, prior_weight=1.0)


CASES = {
    "fft_nd/ifft_nd": lambda v, i, r, s, c: ifft_nd(fft_nd(i, 2, rfft=True), (12, 12), rfft=True),
    "crop_or_pad": lambda v, i, r, s, c: crop_or_pad(v, (16, 16, 16)),
    "fourier_resize": lambda v, i, r, s, c: fourier_resize(i, (8, 8)),
    "phase_ramp": lambda v, i, r, s, c: phase_ramp((12, 12), s, rfft=True),
    "shift_2d": lambda v, i, r, s, c: shift_2d(i, s),
    "spherical_mask": lambda v, i, r, s, c: spherical_mask(
        (12, 12, 12), 5.0, 2.0, dtype=v.dtype, device=v.device
    ),
    "compute_ctf": lambda v, i, r, s, c: compute_ctf(c, (12, 12), 1.0),
    "add_white_noise (CPU generator)": lambda v, i, r, s, c: add_white_noise(
        i, 0.1, generator=torch.Generator().manual_seed(0)
    ),
    "coloured_noise": lambda v, i, r, s, c: coloured_noise(torch.ones_like(i[..., :7]), (12, 12)),
    "gaussian_log_likelihood": lambda v, i, r, s, c: gaussian_log_likelihood(i, i, 1.0),
    "project_fourier": lambda v, i, r, s, c: project_fourier(v, r),
    "project_real_space": lambda v, i, r, s, c: project_real_space(v, r),
    "project_fourier_voxel_basis": lambda v, i, r, s, c: project_fourier_voxel_basis(v, r),
    "predict_images": lambda v, i, r, s, c: predict_images(
        prepare_volume(v, 2.0), ParticleBatch.from_tensors(i, r, 1.0, s, c)
    ),
    "reconstruct": lambda v, i, r, s, c: reconstruct(i, r, 1.0, s, c),
    "insert_particles + invert": lambda v, i, r, s, c: _inserted(i, r, s, c),
    "fourier_shell_correlation": lambda v, i, r, s, c: fourier_shell_correlation(v, v, 1.0).fsc,
    "randomize_phases (CPU generator)": lambda v, i, r, s, c: randomize_phases(
        v, 2, torch.Generator().manual_seed(0)
    ),
    "guinier": lambda v, i, r, s, c: guinier(v, 1.0)[1],
    "apply_bfactor": lambda v, i, r, s, c: apply_bfactor(v, -50.0, 1.0),
    "low_pass": lambda v, i, r, s, c: low_pass(v, 4.0, 1.0),
    "weight_by_shell": lambda v, i, r, s, c: weight_by_shell(v, torch.ones_like(v[0, 0, :7])),
    "alignment rotate_field": lambda v, i, r, s, c: rotate_field(v.expand(3, -1, -1, -1), r),
    "alignment density_vectors": lambda v, i, r, s, c: density_vectors(v, 2.0, 0.5),
    "alignment coarse_grid": lambda v, i, r, s, c: coarse_grid(v, 1.0, (0.0, 0.0, 0.0), 2.0)[0],
    "alignment transform_map": lambda v, i, r, s, c: transform_map(
        v, 1.0, (0, 0, 0), r[0], s[0, :1].expand(3), (10, 10, 10), 1.2, (1.0, 2.0, 3.0)
    ),
    "so3 quaternion": lambda v, i, r, s, c: so3.quaternion_from_matrix(r),
    "so3 relion euler": lambda v, i, r, s, c: so3.matrix_from_relion_euler(
        so3.relion_euler_from_matrix(r)
    ),
    "so3 geodesic_distance": lambda v, i, r, s, c: so3.geodesic_distance(r, r),
    "so3 rotvec": lambda v, i, r, s, c: so3.rotvec_from_matrix(r),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_compute_functions_create_nothing_on_the_cpu(name, dtype):
    out = CASES[name](*_inputs(dtype))
    assert out.device == META
    expected = dtype if not out.is_complex() else (torch.complex64 if dtype == torch.float32
                                                   else torch.complex128)  # fmt: skip
    assert out.dtype == expected


def test_resolve_device_and_its_errors():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InvalidInputError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(InvalidInputError, match="unsupported device"):
        resolve_device("meta")
    if NO_CUDA:
        with pytest.raises(InvalidInputError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    else:
        with pytest.raises(InvalidInputError, match="not available"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_staging_on_the_cpu_is_a_view_both_ways():
    staging = Staging("cpu")
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    tensor = staging.to_device(array)
    assert tensor.device.type == "cpu" and np.shares_memory(tensor.numpy(), array)
    assert np.shares_memory(staging.to_host(tensor), array)


@pytest.mark.skipif(
    not NO_CUDA, reason="checks the message for a missing GPU; this machine has one"
)
def test_cli_device_cuda_without_a_gpu_is_one_line_and_writes_nothing(tmp_path, capsys):
    volume = DATA / "map_model" / "emd_3488.mrc"
    star = DATA / "relion313_reference" / "proj_ctf_24.star"
    runs = {
        "simulate": ["simulate", str(volume), "--n", "4", "--out", str(tmp_path / "s")],
        "project": [
            "project",
            str(volume),
            "--poses",
            str(star),
            "--out",
            str(tmp_path / "p.mrcs"),
        ],
        "reconstruct": ["reconstruct", str(star), "--out", str(tmp_path / "r")],
        "fsc": ["fsc", str(volume), str(volume)],
        "demo": ["demo", "--out", str(tmp_path / "d"), "--n", "10"],
        "search-maps": ["search-maps", str(volume), str(volume.parent)],
        "align-maps": ["align-maps", str(volume), str(volume), "--out", str(tmp_path / "a")],
        "postprocess": ["postprocess", str(volume), str(volume), "--out", str(tmp_path / "q")],
    }
    for name, argv in runs.items():
        code = main([*argv, "--device", "cuda"])
        _, err = capsys.readouterr()
        assert code == 1, name
        assert err.count("\n") == 1 and "sees no CUDA GPU" in err, (name, err)
    assert not any(tmp_path.rglob("*.mrc*")) and not any(tmp_path.rglob("*.star"))


def test_the_allocator_setting_takes_on_glibc_and_yields_to_the_users_variables(monkeypatch):
    """``keep_freed_host_memory``: glibc accepts the three ``mallopt`` options (True); any of
    the ``MALLOC_*`` variables in the environment leaves the allocator to the user (False)."""
    import platform

    from cryomath.devices import _ALLOCATOR_VARIABLES, keep_freed_host_memory

    for name in _ALLOCATOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert keep_freed_host_memory() is (platform.libc_ver()[0] == "glibc")
    for name in _ALLOCATOR_VARIABLES:
        monkeypatch.setenv(name, "131072")
        assert keep_freed_host_memory() is False
        monkeypatch.delenv(name)
