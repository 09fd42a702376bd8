"""The CUDA path against the CPU (marker ``cuda``; ``bash bench/gpu-check.sh`` runs these on a GPU
machine). Each test computes the same thing on both devices and compares the numbers: the CPU
result is the oracle, itself tested against RELION elsewhere."""

import json

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.cli import main
from cryomath.ctf import CTF
from cryomath.imaging import (
    FourierAccumulator,
    ParticleBatch,
    insert_spectra,
    iter_batches,
    predict_spectra,
)
from cryomath.io import read_mrc, read_particles
from cryomath.pipelines import reconstruct_particles, simulate_dataset
from cryomath.projection import prepare_volume
from cryomath.reconstruction import reconstruct_least_squares_particles
from cryomath.resolution import fourier_shell_correlation
from cryomath.simulate import SimulationSettings
from tests.conftest import DATA

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU (run bash bench/gpu-check.sh on a GPU machine)",
    ),
]
RELION = DATA / "relion313_reference"


def _map(n=32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, n, n, generator=g, dtype=torch.float64)


def test_forward_model_and_adjoint_on_cuda_equal_the_cpu():
    volume = _map()
    rotations = so3.random_rotations(64, 1)
    defocus = torch.linspace(10000, 20000, 64, dtype=torch.float64)
    ctf = CTF(defocus, defocus - 200, torch.tensor(10.0), torch.tensor(300.0),
              torch.tensor(2.7), torch.tensor(0.1))  # fmt: skip
    shifts = torch.randn(64, 2, dtype=torch.float64)
    results = {}
    for device in ("cpu", "cuda"):
        batch = ParticleBatch.from_tensors(
            None, rotations.to(device), 1.1, shifts.to(device),
            CTF(*(getattr(ctf, f).to(device) for f in ("defocus_u_angstrom", "defocus_v_angstrom",
                  "defocus_angle_degrees", "voltage_kv", "spherical_aberration_mm",
                  "amplitude_contrast"))),
            image_size=36,
        )  # fmt: skip
        spectrum = prepare_volume(volume.to(device), 2.0, voxel_size_angstrom=1.0)
        predicted = predict_spectra(spectrum, batch)
        acc = FourierAccumulator(32, 2.0, torch.float64, device, voxel_size_angstrom=1.0)
        insert_spectra(acc, predicted, batch)
        results[device] = (predicted.cpu(), acc.data.cpu(), acc.weights.cpu())
    for cpu, cuda in zip(results["cpu"], results["cuda"], strict=True):
        assert float((cpu - cuda).abs().max() / cpu.abs().max()) < 1e-10


def test_reconstruction_of_relions_particles_on_cuda_equals_the_cpu():
    table = read_particles(RELION / "proj_ctf_24.star")
    cpu = reconstruct_particles(table, batch_size=10)
    cuda = reconstruct_particles(table, batch_size=10, device="cuda")
    assert cuda.full.device.type == "cuda"
    error = float((cpu.full - cuda.full.cpu()).abs().max() / cpu.full.abs().max())
    assert error < 1e-9
    np.testing.assert_allclose(cpu.fsc.fsc.numpy(), cuda.fsc.fsc.cpu().numpy(), atol=1e-8)


def test_least_squares_on_cuda_equals_the_cpu():
    table = read_particles(RELION / "proj_ctf_24.star")
    options = {"max_iterations": 3, "batch_size": 12, "pad_factor": 1.0}
    cpu = reconstruct_least_squares_particles(table, **options)
    cuda = reconstruct_least_squares_particles(table, device="cuda", **options)
    assert float((cpu - cuda.cpu()).abs().max() / cpu.abs().max()) < 1e-8


def test_simulation_on_cuda_equals_the_cpu(tmp_path):
    settings = SimulationSettings(n_particles=40, pixel_size_angstrom=1.5, snr=0.5,
                                  shift_sigma_angstrom=2.0)  # fmt: skip
    volume = _map(24).abs()
    simulate_dataset(volume, tmp_path / "cpu", settings, batch_size=16)
    simulate_dataset(volume, tmp_path / "cuda", settings, batch_size=16, device="cuda")
    a = read_mrc(tmp_path / "cpu" / "particles_000.mrcs")[0]
    b = read_mrc(tmp_path / "cuda" / "particles_000.mrcs")[0]
    assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()  # float32 files, same noise draws


def test_batches_stage_to_cuda_in_the_requested_dtype():
    table = read_particles(RELION / "proj_ctf_24.star")
    for batch in iter_batches(table, 8, "cuda", torch.float32):
        assert batch.spectra.device.type == "cuda" and batch.spectra.dtype == torch.complex64
        assert batch.ctf_values().dtype == torch.float32


def test_fsc_and_the_demo_on_cuda(tmp_path, capsys):
    a, b = _map(48), _map(48) + 0.1
    cpu = fourier_shell_correlation(a, b, 1.0).fsc
    cuda = fourier_shell_correlation(a.cuda(), b.cuda(), 1.0).fsc.cpu()
    np.testing.assert_allclose(cpu.numpy(), cuda.numpy(), atol=1e-10)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cuda", "--json"]) == 0
    summary = json.loads(capsys.readouterr()[0])
    # the de novo chain on the GPU reaches what it does on two CPU cores (6.2 A there)
    assert (
        summary["refined_vs_truth_fsc_05_angstrom"]
        < 1.3 * summary["known_poses_vs_truth_fsc_05_angstrom"]
    )


def test_the_compiled_kernel_on_cuda_equals_the_cpu():
    from cryomath.projection import extract_central_slices_rfft_3d

    rotations = so3.random_rotations(40, 3)
    cpu = extract_central_slices_rfft_3d(prepare_volume(_map(), 2.0), rotations)
    gpu = extract_central_slices_rfft_3d(
        prepare_volume(_map().cuda(), 2.0), rotations.cuda(), chunk_size=16, compiled=True
    )
    assert float((gpu.cpu() - cpu).abs().max() / cpu.abs().max()) < 1e-10


def test_heterogeneity_commands_on_cuda_follow_the_cpu(tmp_path):
    """``variability`` (PPCA) and ``train-vae`` (2 epochs) on 300 two-state particles, once
    per device: the latents agree (float32 training diverges slowly, so by correlation)."""
    from tests.test_heterogeneity import _moving_domain

    state, pixel = _moving_domain(24)
    settings = SimulationSettings(n_particles=300, pixel_size_angstrom=pixel, snr=1.0, seed=3)
    simulate_dataset(torch.stack([state(0), state(None)]), tmp_path / "data", settings)
    star = str(tmp_path / "data" / "particles.star")
    commands = {
        "variability": ["--components", "1", "--iterations", "4"],
        "train-vae": ["--epochs", "2", "--width", "32"],
    }
    for command, options in commands.items():
        latents = []
        for device in ("cpu", "cuda"):
            out = tmp_path / f"{command}-{device}"
            args = [command, star, *options, "--device", device, "--out", str(out), "--json"]
            assert main(args) == 0
            latents.append(np.load(out / "latent.npy")[:, 0])
        assert abs(np.corrcoef(*latents)[0, 1]) > 0.99, command


def test_neural_abinitio_on_cuda_follows_the_cpu(tmp_path):
    """``abinitio --representation neural`` (3 iterations, order 1, 400 particles of box 32)
    once per device: the two maps correlate (float32 and the argmax poses may differ a little)."""
    from tests.test_abinitio import _MODEL

    assert main(["simulate", str(_MODEL), "--n", "400", "--box-size", "32", "--pixel-size", "3",
                 "--snr", "0.1", "--out", str(tmp_path / "sim"), "--json"]) == 0  # fmt: skip
    maps = []
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        assert main(["abinitio", str(tmp_path / "sim" / "particles.star"), "--iterations", "3",
                     "--initial-batch", "60", "--final-batch", "150", "--healpix-order", "1",
                     "--representation", "neural", "--device", device, "--out", str(out),
                     "--json"]) == 0  # fmt: skip
        maps.append(read_mrc(out / "abinitio_class001.mrc")[0].ravel())
    assert np.corrcoef(*maps)[0, 1] > 0.95


def _inference_outputs(star: str, device: str, out) -> dict[str, np.ndarray]:
    """``refine`` (2 iterations from the model), ``class2d`` (2 classes, 3 iterations) and grid
    ``abinitio`` (3 iterations) on ``device``: their maps, poses and classes."""
    from tests.test_abinitio import _MODEL
    from tests.test_inference_em import _refine

    common = ["--device", device, "--json"]
    assert _refine([star, "--reference", str(_MODEL), "--max-iterations", "2", "--out",
                    str(out / "refine"), "--device", device]) == 0  # fmt: skip
    assert main(["class2d", star, "--classes", "2", "--iterations", "3",
                 "--out", str(out / "class2d"), *common]) == 0  # fmt: skip
    assert main(["abinitio", star, "--iterations", "3", "--initial-batch", "60", "--final-batch",
                 "150", "--healpix-order", "1", "--out", str(out / "abinitio"),
                 *common]) == 0  # fmt: skip
    refined = read_particles(out / "refine" / "particles.star", allow_unknown_columns=True)
    classes = read_particles(out / "class2d" / "particles.star", allow_unknown_columns=True)
    return {
        "refine_map": read_mrc(out / "refine" / "map.mrc")[0].ravel(),
        "refine_rotations": refined.rotations,
        "classes": classes.extra["rlnClassNumber"].to_numpy(),
        "abinitio_map": read_mrc(out / "abinitio" / "abinitio_class001.mrc")[0].ravel(),
    }


def test_inference_commands_on_cuda_follow_the_cpu(tmp_path, capsys):
    """``refine``, ``class2d`` and ``abinitio`` on 300 particles (box 32, 3 A, SNR 0.2) once
    per device: maps correlate, refined poses agree within a degree for nine in ten particles,
    and the 2-D classes are the same up to their order."""
    from tests.test_abinitio import _MODEL

    assert main(["simulate", str(_MODEL), "--n", "300", "--box-size", "32", "--pixel-size", "3",
                 "--snr", "0.2", "--out", str(tmp_path / "sim"), "--json"]) == 0  # fmt: skip
    star = str(tmp_path / "sim" / "particles.star")
    cpu, cuda = (_inference_outputs(star, d, tmp_path / d) for d in ("cpu", "cuda"))
    capsys.readouterr()
    assert np.corrcoef(cpu["refine_map"], cuda["refine_map"])[0, 1] > 0.99
    assert np.corrcoef(cpu["abinitio_map"], cuda["abinitio_map"])[0, 1] > 0.95
    relative = np.einsum("nji,njk->nik", cpu["refine_rotations"], cuda["refine_rotations"])
    angle = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert np.mean(angle < 1.0) > 0.9
    same = np.mean(cpu["classes"] == cuda["classes"])
    assert max(same, 1 - same) > 0.95


def test_every_command_that_takes_a_device_runs_on_cuda(tiny, tmp_path, monkeypatch):
    """Each command with ``--device`` (found from the CLI itself, so a new one is covered)
    runs its tiny valid call (tests/edges.py) with ``--device cuda`` and exits 0; every
    failure is reported with its traceback, not only the first."""
    import traceback

    import typer

    from cryomath.cli import app
    from tests.edges import invocations

    group = typer.main.get_command(app)
    takes_device = sorted(
        name
        for name, command in group.commands.items()
        if any(p.name == "device" for p in getattr(command, "params", []))
    )
    assert {"refine", "class2d", "abinitio", "demo", "train-vae"} <= set(takes_device)
    monkeypatch.setenv("CRYOMATH_DEBUG", "1")  # a bug raises, with its traceback
    calls = invocations(tiny, tmp_path)
    failures = {}
    for name in takes_device:
        try:
            code = main([*calls[name], "--device", "cuda"])
            if code != 0:
                failures[name] = f"exit {code}"
        except Exception:
            failures[name] = traceback.format_exc()
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
