"""Simulated datasets: determinism, ground truth that reproduces the images, files RELION and
cryoSPARC readers accept, streaming; ``cryomath simulate`` and ``cryomath project``."""

import json
import warnings

import numpy as np
import pytest
import torch

from cryomath.cli import main
from cryomath.ctf import CTF
from cryomath.errors import InvalidInputError
from cryomath.imaging import ParticleBatch, predict_images
from cryomath.io import read_mrc, read_particles
from cryomath.pipelines import simulate_dataset
from cryomath.projection import prepare_volume
from cryomath.simulate import SimulationSettings, sample_poses
from tests.conftest import DATA

MAP = DATA / "map_model" / "emd_3488.mrc"


@pytest.fixture(scope="module")
def volume():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.from_numpy(read_mrc(MAP, np.float64)[0])


def _settings(**kw):
    base = dict(n_particles=300, pixel_size_angstrom=1.05, seed=5, shard_size=256,
                shift_sigma_angstrom=2.0, snr=1.0)  # fmt: skip
    return SimulationSettings(**{**base, **kw})


def test_dataset_is_deterministic_and_its_ground_truth_reproduces_the_clean_images(
    volume, tmp_path
):
    a = simulate_dataset(volume, tmp_path / "a", _settings(), write_clean=True)
    simulate_dataset(volume, tmp_path / "b", _settings(shard_size=100), batch_size=37)
    assert a["stacks"] == [
        "particles_000.mrcs",
        "particles_001.mrcs",
        "clean_000.mrcs",
        "clean_001.mrcs",
    ]
    star = read_particles(tmp_path / "a" / "particles.star")
    cs = read_particles(tmp_path / "a" / "particles.cs")
    assert star.n == cs.n == 300
    assert float(torch.from_numpy(np.abs(star.rotations - cs.rotations)).max()) < 1e-6
    # the same seed gives the same images whatever the shard and batch sizes
    first = star.read_images(np.arange(300))
    other = read_particles(tmp_path / "b" / "particles.star").read_images(np.arange(300))
    np.testing.assert_array_equal(first, other)
    # the STAR's poses, origins and CTFs re-form the clean images
    clean = read_mrc(tmp_path / "a" / "clean_001.mrcs")[0]
    sub = star.subset(np.arange(256, 300))
    batch = ParticleBatch.from_tensors(
        None, torch.from_numpy(sub.rotations), 1.05,
        -torch.from_numpy(sub.origins_angstrom) / 1.05, CTF.from_parameters(sub.ctf),
        image_size=volume.shape[-1],
    )  # fmt: skip
    again = predict_images(prepare_volume(volume, 2.0), batch)
    np.testing.assert_allclose(again.numpy(), clean, atol=1e-4 * np.abs(clean).max())
    # the realised SNR is the requested one (per image, whole box)
    noisy = star.read_images(np.arange(256, 300)).astype(np.float64)
    snr = clean.reshape(44, -1).var(1) / (noisy - clean).reshape(44, -1).var(1)
    assert abs(snr.mean() - 1.0) < 0.02
    assert set(np.unique(star.random_subset)) == {1, 2}


def test_pose_distributions(volume):
    g = torch.Generator().manual_seed(0)
    uniform = sample_poses(20000, "uniform", g)
    assert abs(float(uniform[:, 2, 2].mean())) < 0.02  # cos(tilt) uniform on [-1, 1]
    preferred = sample_poses(20000, "preferred", g, preferred_fraction=0.5, preferred_kappa=50.0)
    # share of directions within 20 degrees of +z: half vMF (kappa 50), half uniform:
    # 0.5 (1 - exp(-50 (1 - cos 20))) + 0.5 (1 - cos 20) / 2 = 0.4906
    c = 1 - np.cos(np.radians(20))
    expected = 0.5 * (1 - np.exp(-50 * c)) + 0.5 * c / 2
    close = (preferred[:, 2, 2] > np.cos(np.radians(20))).double().mean()
    assert abs(float(close) - expected) < 0.012  # 3.5 standard errors
    grid = sample_poses(100, "grid", g, grid_order=1)
    assert grid.shape == (100, 3, 3)
    with pytest.raises(InvalidInputError):
        sample_poses(5, "cubic", g)


def test_dose_mode_and_bad_settings(volume, tmp_path):
    simulate_dataset(
        volume, tmp_path / "d", _settings(n_particles=20, snr=None, dose_e_per_a2=30.0)
    )
    images = read_mrc(tmp_path / "d" / "particles_000.mrcs")[0]
    # variance = Poisson (the mean N0 = 30 e/A^2 * 1.05^2 per pixel) + signal (N0 * 0.1 rms)^2
    n0 = 30 * 1.05**2
    assert abs(images.var() / (n0 + (0.1 * n0) ** 2) - 1) < 0.05
    with pytest.raises(InvalidInputError, match="shard_size"):
        simulate_dataset(volume, tmp_path / "e", _settings(shard_size=0))
    with pytest.raises(InvalidInputError, match="batch size"):
        simulate_dataset(volume, tmp_path / "e", _settings(), batch_size=0)
    with pytest.raises(InvalidInputError, match="one of an SNR, a white-noise sd or a dose"):
        simulate_dataset(volume, tmp_path / "e", _settings(dose_e_per_a2=10.0))


def test_white_noise_of_one_sd_for_every_image_where_the_snr_is_each_images(tmp_path):
    """Two molecules (the 6VYB N-domain and haemoglobin, 5ME2; box 24 at 4 A), 200 images:
    with ``--white-noise-sd 0.5`` the noise (noisy minus ``--clean``) has sd 0.5 in the images
    of both, within 2 %; with ``--snr 0.1`` each image's noise follows its own signal, and
    haemoglobin's images are measured 1.76x noisier than the N-domain's."""
    from cryomath.demo import BUNDLED_MODEL

    models = [str(BUNDLED_MODEL), str(DATA / "map_model" / "5me2.pdb")]
    sd = {}
    for name, noise in (("white", ["--white-noise-sd", "0.5"]), ("snr", ["--snr", "0.1"])):
        out = tmp_path / name
        run = ["simulate", *models, "--state-weights", "1,1", "--n", "200", "--box-size", "24",
               "--pixel-size", "4", *noise, "--clean", "--out", str(out)]  # fmt: skip
        assert main(run) == 0
        states = read_particles(out / "particles.star").extra["rlnClassNumber"].to_numpy()
        added = read_mrc(out / "particles_000.mrcs")[0] - read_mrc(out / "clean_000.mrcs")[0]
        sd[name] = [float(added[states == k].std()) for k in (1, 2)]
    assert all(abs(s / 0.5 - 1) < 0.02 for s in sd["white"]), sd
    assert sd["snr"][1] / sd["snr"][0] > 1.4, sd


def test_cli_simulate_and_project(tmp_path, capsys):
    code = main(
        ["simulate", str(MAP), "--n", "40", "--out", str(tmp_path / "s"), "--snr", "0.5", "--json"]
    )
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["particles"] == 40
    code = main(["simulate", str(MAP), "--n", "40", "--out", str(tmp_path / "s"), "--json"])
    _, err = capsys.readouterr()
    assert code == 1 and "holds a simulation already" in err and "--resume" in err
    star = DATA / "relion313_reference" / "proj_ctf_24.star"
    out_stack = tmp_path / "p.mrcs"
    code = main(
        ["project", str(MAP), "--poses", str(star), "--out", str(out_stack), "--ctf", "--json"]
    )
    capsys.readouterr()
    ours = read_mrc(out_stack)[0]
    relion = read_mrc(DATA / "relion313_reference" / "proj_ctf_24.mrcs")[0]
    cc = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(ours, relion, strict=True)]
    assert code == 0 and min(cc) > 0.999
    # a model straight to a dataset
    code = main(["simulate", str(DATA / "map_model" / "1uao.pdb"), "--n", "8", "--box-size", "48",
                 "--out", str(tmp_path / "m"), "--json"])  # fmt: skip
    capsys.readouterr()
    assert code == 0 and read_mrc(tmp_path / "m" / "particles_000.mrcs")[0].shape == (8, 48, 48)


def test_bad_pose_files_and_box_mismatch(tmp_path, capsys):
    bad = tmp_path / "nan.star"
    text = (DATA / "relion313_reference" / "proj_ctf_24.star").read_text()
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if "@proj_ctf_24.mrcs" in line)
    fields = lines[row].split()
    fields[1] = "nan"
    lines[row] = " ".join(fields)
    bad.write_text("\n".join(lines) + "\n")
    code = main(["project", str(MAP), "--poses", str(bad), "--out", str(tmp_path / "x.mrcs")])
    _, err = capsys.readouterr()
    assert code == 1 and "NaN" in err and err.count("\n") == 1
    small = DATA / "aspire_relion_proj" / "rln_proj_64_centered.star"
    code = main(["project", str(MAP), "--poses", str(small), "--out", str(tmp_path / "y.mrcs")])
    _, err = capsys.readouterr()
    assert code == 1 and "box mismatch" in err
    assert not (tmp_path / "x.mrcs").exists() and not (tmp_path / "y.mrcs").exists()


def test_white_noise_sd_means_what_relion_projects_white_noise_means(tmp_path):
    """RELION 3.1.3's ``relion_project --add_noise --white_noise 0.5`` of a map of zeros
    (``tests/reference/white_noise``, 24 images of 32^2, made by
    ``tests/reference/make_relion_references.py``) and ``cryomath simulate --white-noise-sd 0.5``
    (noisy minus ``--clean``, 200 images): the same quantity, the sd of each real-space pixel.
    Measured: RELION 0.494 (it draws in Fourier space and loses part of the Nyquist column),
    ours 0.500; both flat in frequency (each band's mean power within 10 % of 0.25 below
    Nyquist; measured 0.242-0.253 and 0.249-0.251)."""
    from pathlib import Path

    from cryomath.demo import BUNDLED_MODEL

    relion = read_mrc(Path(__file__).parent / "reference/white_noise/relion_white_noise_0.5.mrcs")
    out = tmp_path / "ours"
    assert main(["simulate", str(BUNDLED_MODEL), "--n", "200", "--box-size", "32", "--pixel-size",
                 "3", "--white-noise-sd", "0.5", "--clean", "--out", str(out)]) == 0  # fmt: skip
    ours = read_mrc(out / "particles_000.mrcs")[0] - read_mrc(out / "clean_000.mrcs")[0]
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij"))
    for noise in (relion[0].astype(np.float64), ours.astype(np.float64)):
        assert abs(noise.std() / 0.5 - 1) < 0.03, noise.std()
        power = (np.abs(np.fft.fft2(noise)) ** 2 / noise[0].size).mean(0)
        for low in (0.0, 0.1, 0.2, 0.3):
            band = power[(radius >= low) & (radius < low + 0.1)].mean()
            assert abs(band / 0.25 - 1) < 0.1, (low, band)
