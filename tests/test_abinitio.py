"""Ab initio (cryomath.inference.abinitio, hierarchical): the hierarchical pose search against an
exhaustive search of the same grid and against the true poses, and ``cryomath abinitio`` from
particles alone against the map that made them."""

import json

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.imaging import NoiseSpectrum, ParticleBatch, predict_images
from cryomath.inference.hierarchical import (
    HierarchicalSearch,
    exhaustive_pose_search,
    hierarchical_pose_search,
)
from cryomath.projection import prepare_volume
from cryomath.reconstruction.direct import padded_spectrum_of_volume, volume_from_padded_spectrum
from tests.conftest import DATA

_MODEL = (
    __import__("pathlib").Path(__file__).resolve().parents[1] / "src/cryomath/data/6vyb_ndom.pdb.gz"
)


def _images(n: int, count: int, snr: float, seed: int = 0):
    """``count`` images (box ``n`` over 96 A, CTF, offsets within 1.4 px) of the 6VYB
    N-domain at random poses, their prepared map, the white noise's spectrum and the truth."""
    from cryomath.pipelines import read_volume

    volume, voxel = read_volume(_MODEL, n, 96 / n)
    g = torch.Generator().manual_seed(seed)
    poses = so3.random_rotations(count, seed + 3).double()
    shifts = (torch.rand(count, 2, generator=g, dtype=torch.float64) - 0.5) * 2.8
    d = 10000 + 10000 * torch.rand(count, generator=g, dtype=torch.float64)
    ctf = CTF(d, d, torch.tensor(0.0), torch.tensor(300.0), torch.tensor(2.7), torch.tensor(0.1))
    spectrum = prepare_volume(volume, 2.0, voxel_size_angstrom=voxel)
    clean = predict_images(spectrum, ParticleBatch.from_tensors(None, poses, voxel, shifts, ctf, n))
    sd = (clean.var() / snr).sqrt()
    images = clean + torch.randn(clean.shape, generator=g, dtype=torch.float64) * sd
    # white noise of variance sd^2 per pixel: RELION's sigma2 is half its power per sample
    noise = NoiseSpectrum((0,), torch.full((1, n), float(sd**2 * n * n / 2)))
    return (
        ParticleBatch.from_tensors(images, None, voxel, None, ctf),
        spectrum,
        noise,
        poses,
        shifts,
    )


def test_the_hierarchical_search_is_the_exhaustive_one_when_it_keeps_everything():
    """Keeping every base hypothesis (72 poses x 5 offsets), the search's best of the 32^2
    descendants equals the best leaf of the whole grid (4,608 poses x 80 offsets), exactly:
    each leaf has one ancestor per level."""
    batch, spectrum, noise, _, _ = _images(16, 4, 10.0)
    search = HierarchicalSearch(base_order=0, levels=2, keep=360, offset_range_px=1,
                                offset_step_px=1, base_shell=5, final_shell=5)  # fmt: skip
    found = hierarchical_pose_search(batch, spectrum, noise, search)
    best = exhaustive_pose_search(batch, spectrum, noise, search)
    assert torch.allclose(found.rotations, best.rotations, atol=1e-12)
    assert torch.allclose(found.shifts_px, best.shifts_px, atol=1e-12)
    assert torch.allclose(found.log_likelihood, best.log_likelihood, rtol=1e-10)


def test_the_hierarchical_search_with_a_budget_finds_the_exhaustive_best():
    """With cryoDRGN2's budget (24 kept of 4,608 x 5 at 15 degrees, one level to 7.5) at high
    SNR, the search's best is the best leaf of the whole grid for at least 95 % of the
    images, and never scores above it."""
    batch, spectrum, noise, _, _ = _images(24, 64, 10.0)
    search = HierarchicalSearch(base_order=2, levels=1, keep=24, offset_range_px=1,
                                offset_step_px=1, base_shell=6, final_shell=6)  # fmt: skip
    found = hierarchical_pose_search(batch, spectrum, noise, search)
    best = exhaustive_pose_search(batch, spectrum, noise, search)
    same = so3.geodesic_distance(found.rotations, best.rotations) < 1e-9
    assert float(same.double().mean()) >= 0.95  # measured: 63 of 64
    assert bool((found.log_likelihood <= best.log_likelihood + 1e-9).all())


def test_the_hierarchical_search_at_high_snr_finds_the_true_poses_within_its_final_step():
    """Base 15 degrees, two levels to 3.75 degrees and 0.25 px, the band from shell 6 to 15:
    at SNR 10 the poses' median error is under half the final step (measured 1.85 degrees)
    and the largest under 1.5 steps (4.8), the offsets within one final step (0.14 px)."""
    batch, spectrum, noise, poses, shifts = _images(32, 64, 10.0)
    search = HierarchicalSearch(base_order=2, levels=2, keep=24, offset_range_px=2,
                                offset_step_px=1, base_shell=6, final_shell=15)  # fmt: skip
    found = hierarchical_pose_search(batch, spectrum, noise, search)
    errors = torch.rad2deg(so3.geodesic_distance(found.rotations, poses))
    step = search.final_step_degrees
    assert float(errors.median()) < step / 2 and float(errors.max()) < 1.5 * step
    assert float((found.shifts_px - shifts).abs().max()) < search.final_offset_step_px


def test_a_volume_and_its_padded_spectrum_are_inverses():
    v = torch.randn(16, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    back = volume_from_padded_spectrum(padded_spectrum_of_volume(v, 32), 16)
    assert float((back - v).abs().max()) < 1e-12


def test_flip_hand_is_the_mirror_through_the_centre():
    from cryomath.fitting import flip_hand

    v = torch.zeros(8, 8, 8)
    v[4 + 2, 4, 4] = 1.0  # two voxels above the centre (z)
    flipped = flip_hand(v)
    assert float(flipped[4 - 2, 4, 4]) == 1.0 and float(flipped.sum()) == 1.0
    assert torch.equal(flip_hand(flipped), v)


def test_the_neural_field_fits_a_volume_from_its_exact_slices():
    """A neural map (inference.neural_volume) trained on 100 noiseless images of the 6VYB
    N-domain (box 24, 4 A, CTF, offsets) at their true poses, 30 passes: its FSC against the
    truth stays above 0.5 beyond half Nyquist (shell 6); measured 0.90 at shell 6, 0.79 at
    shell 10 (after 10 passes 0.39 at shell 6, after 40 0.5 at Nyquist)."""
    from dataclasses import replace

    from cryomath.inference.neural_volume import NeuralVolume
    from cryomath.pipelines import read_volume
    from cryomath.resolution import fourier_shell_correlation

    n = 24
    batch, _, _, poses, shifts = _images(n, 100, snr=1e12)
    batch = replace(batch, rotations=poses, shifts_px=shifts)
    truth, voxel = read_volume(_MODEL, n, 96 / n)
    scale = float(batch.spectra.abs().pow(2).mean().sqrt())
    field = NeuralVolume(n, voxel, scale, learning_rate=3e-3, seed=0, dtype=torch.float64)
    halves = [batch.subset(torch.arange(i, 100, 2)) for i in (0, 1)]
    field.fit_images(halves, NoiseSpectrum((0,), torch.ones(1, n)), n // 2, 30)
    curve = fourier_shell_correlation(field.volume(n // 2), truth.double(), voxel).fsc
    assert float(curve[1 : n // 4 + 1].min()) > 0.8 and float(curve[1:11].min()) > 0.5, curve


@pytest.fixture(scope="module")
def particles(tmp_path_factory):
    from cryomath.cli import main

    out = tmp_path_factory.mktemp("abinitio")
    assert main(["simulate", str(_MODEL), "--n", "400", "--box-size", "32", "--pixel-size",
                 "3", "--shift-sigma", "3", "--snr", "0.1", "--out", str(out / "sim"),
                 "--json"]) == 0  # fmt: skip
    return out / "sim" / "particles.star"


@pytest.mark.parametrize("representation", ["grid", "neural"])
def test_abinitio_writes_its_outputs_and_continues_exactly(particles, representation, tmp_path,
                                                           capsys):  # fmt: skip
    """``cryomath abinitio`` on 400 particles (box 32, 3 A, CTF, offsets of 1 px sd, SNR 0.1),
    3 iterations at HEALPix order 1, the map a voxel grid or a neural field: its files and
    summary; the same seed gives the same map, also when the run is interrupted and continued
    from its checkpoint (the field's weights and Adam's moments in it). (That ab initio finds
    the map, in one hand, is tested by tests/test_demo.py: the whole de novo chain.)"""
    from cryomath.cli import main
    from cryomath.io import read_mrc

    run = ["abinitio", str(particles), "--initial-batch", "60", "--final-batch", "150",
           "--representation", representation, "--neural-steps", "4", "--json"]  # fmt: skip
    assert main([*run, "--iterations", "3", "--healpix-order", "1", "--out",
                 str(tmp_path / "a")]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["iterations"] == 3 and summary["hand"] == "as found"
    for name in ("abinitio_class001.mrc", "slices.png", "iterations.json", "particles.star"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    a = read_mrc(tmp_path / "a" / "abinitio_class001.mrc")[0]
    # the same run, interrupted after its second iteration and continued from the checkpoint
    from cryomath.inference.abinitio import AbInitioSettings
    from cryomath.io import read_particles
    from cryomath.pipelines.abinitio import run_abinitio

    table = read_particles(particles)
    settings = AbInitioSettings(iterations=3, initial_batch=60, final_batch=150,
                                healpix_order=1, representation=representation,
                                neural_steps=4)  # fmt: skip

    def interrupt(line):
        if line["iteration"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_abinitio(table, tmp_path / "b", settings, on_iteration=interrupt)
    b = run_abinitio(table, tmp_path / "b", settings, resume=True).maps[0].numpy()
    assert np.array_equal(a, b)


def test_a_continued_abinitio_keeps_its_schedule_and_refuses_changed_options(particles, tmp_path,
                                                                           capsys):  # fmt: skip
    """A run planned for 3 iterations and continued to 5: its first 3 log lines are those of
    the 3-iteration run (the schedule is fixed at the start, not stretched to 5), iterations 4
    and 5 go on at the last minibatch (150) and band (the 3rd's); continuing with another
    minibatch size is one line naming the option, and the checkpoint is untouched."""
    from cryomath.cli import main

    run = ["abinitio", str(particles), "--initial-batch", "60", "--final-batch", "150",
           "--healpix-order", "1", "--out", str(tmp_path / "a"), "--json"]  # fmt: skip
    assert main([*run, "--iterations", "3"]) == 0
    first = json.loads((tmp_path / "a" / "iterations.json").read_text())["iterations"]
    checkpoint = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    changed = [*run[:2], "--initial-batch", "90", *run[4:], "--iterations", "5", "--continue",
               "--force"]  # fmt: skip
    assert main(changed) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "initial_batch 90 (the run's: 60)" in error, error
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == checkpoint
    assert main([*run, "--iterations", "5", "--continue"]) == 0
    lines = json.loads((tmp_path / "a" / "iterations.json").read_text())["iterations"]
    keys = ("particles", "max_shell", "mean_log_likelihood")
    assert [[line[k] for k in keys] for line in lines[:3]] == [[line[k] for k in keys]
                                                               for line in first]  # fmt: skip
    assert [line["particles"] for line in lines] == [60, 105, 150, 150, 150]
    assert [line["max_shell"] for line in lines[2:]] == [first[2]["max_shell"]] * 3


def test_abinitio_halves_are_two_independent_runs_and_their_fsc(particles, tmp_path, capsys):
    """``--halves`` on the 400 particles, 2 iterations: the file's halves (``rlnRandomSubset``,
    as refinement takes them); each half's map is exactly what a plain run on that half's
    particles alone gives (seeds seed and seed + 1: nothing but the data ties them), also
    when interrupted and continued; the FSC between them is kept per snapshot and crosses 0.5
    below Nyquist."""
    from dataclasses import replace

    from cryomath.cli import main
    from cryomath.inference.abinitio import AbInitioSettings
    from cryomath.io import read_mrc, read_particles
    from cryomath.pipelines.abinitio import run_abinitio

    assert main(["abinitio", str(particles), "--halves", "--iterations", "2", "--healpix-order",
                 "1", "--initial-batch", "60", "--final-batch", "150", "--out",
                 str(tmp_path / "h"), "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["half_fsc_05_angstrom"] > 2 * 3.0  # beyond Nyquist (3 A pixels) it is not
    assert (tmp_path / "h" / "half_fsc.png").stat().st_size > 0
    halves = read_particles(tmp_path / "h" / "particles.star").random_subset
    table = read_particles(particles)
    assert np.array_equal(halves, table.random_subset)  # simulate's split, as refine takes it
    settings = AbInitioSettings(iterations=2, initial_batch=60, final_batch=150,
                                healpix_order=1)  # fmt: skip
    for h, name in ((1, "abinitio_class001.mrc"), (2, "abinitio_half2_class001.mrc")):
        alone = run_abinitio(table.subset(halves == h), tmp_path / f"alone{h}",
                             replace(settings, seed=h - 1))  # fmt: skip
        written = read_mrc(tmp_path / "h" / name)[0]
        assert np.array_equal(alone.maps[0].numpy(), written)

    def interrupt(line):
        raise KeyboardInterrupt

    halved = replace(settings, halves=True)
    with pytest.raises(KeyboardInterrupt):
        run_abinitio(table, tmp_path / "c", halved, on_iteration=interrupt)
    again = run_abinitio(table, tmp_path / "c", halved, resume=True)
    assert np.array_equal(again.runs[1].maps[0].numpy(), written)
    assert [f.iteration for f in again.fsc] == [1, 2]
    # refused in one line before any work: halves of several classes, an unknown map
    for wrong, message in ((["--halves", "--classes", "2"], "one class"),
                           (["--representation", "mesh"], "one of grid, neural")):  # fmt: skip
        assert main(["abinitio", str(particles), *wrong, "--out", str(tmp_path / "x")]) == 1
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error


def test_the_refine_stage_turns_a_blob_into_the_structure_and_continues(particles, tmp_path,
                                                                        capsys):  # fmt: skip
    """``--refine-iterations`` after 3 minibatch iterations on the 400 particles (SNR 0.1),
    run as 1 refine iteration, then continued (``--continue``) to 1 (nothing to do: the
    stage's checkpoint is not rewritten) and to 2: the second iteration goes on from the
    first (its log line kept); each says it stopped before RELION's rules ended it. The ab
    initio map is a blob (its FSC against the truth, better hand, crosses 0.5 at 22.5-23.0 A
    by thread count), the refined one the structure (12.3-12.8 A, uninterrupted). More than
    one class is refused in one line."""
    from cryomath.cli import main
    from cryomath.fitting import fit_both_hands
    from cryomath.io import read_mrc, read_particles
    from cryomath.pipelines import read_volume

    out = tmp_path / "a"
    run = ["abinitio", str(particles), "--initial-batch", "60", "--final-batch", "150",
           "--iterations", "3", "--healpix-order", "1", "--out", str(out), "--json"]  # fmt: skip
    assert main([*run, "--refine-iterations", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)["refine"]
    assert summary["iterations"] == 1 and summary["map"] == str(out / "refine" / "map.mrc")
    assert summary["converged"] is False and summary["mean_pose_change_degrees"] > 0
    first = json.loads((out / "refine" / "iterations.json").read_text())["iterations"]
    stamp = (out / "refine" / "checkpoint.pt").stat().st_mtime_ns
    assert main([*run, "--refine-iterations", "1", "--continue"]) == 0
    assert (out / "refine" / "checkpoint.pt").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert main([*run[:-1], "--refine-iterations", "2", "--continue"]) == 0  # not --json
    note = capsys.readouterr().err
    assert "after 2 iterations, not converged" in note and "--refine-iterations" in note, note
    lines = json.loads((out / "refine" / "iterations.json").read_text())["iterations"]
    assert [line["iteration"] for line in lines] == [1, 2] and lines[0] == first[0]
    truth, voxel = read_volume(_MODEL, 32, 3.0)

    def best_hand_angstrom(path):
        fits = fit_both_hands(truth.double(), torch.from_numpy(read_mrc(path)[0].copy()).double(),
                              voxel)  # fmt: skip
        return min(fit.resolution_angstrom for fit in fits)

    blob = best_hand_angstrom(out / "abinitio_class001.mrc")
    refined = best_hand_angstrom(out / "refine" / "map.mrc")
    assert blob > 20 and refined < 15, (blob, refined)
    halves = read_particles(out / "refine" / "particles.star").random_subset
    assert sorted(set(halves.tolist())) == [1, 2]
    capsys.readouterr()
    assert main([*run[:-3], "--classes", "2", "--refine-iterations", "1", "--out",
                 str(tmp_path / "c")]) == 1  # fmt: skip
    error = capsys.readouterr().err
    assert "refines one map" in error and len(error.strip().splitlines()) == 1, error


def test_an_inactive_class_restarts_from_what_the_largest_explains_worst(tmp_path):
    """Two molecules (the 6VYB N-domain and haemoglobin, 5ME2; 200 particles each, box 24,
    4 A, SNR 0.1), both classes holding haemoglobin's map and every particle at its true pose
    with its log-likelihood under that map; class 2 at 3 % of the particles (below 0.1 / K)
    restarts from the half the first explains worst: measured 89 % of those are N-domain
    particles (the simulation's states), and its map correlates with the N-domain's truth
    (measured 0.71) far better than with haemoglobin's (0.31)."""
    from cryomath.cli import main
    from cryomath.imaging import gaussian_log_likelihood, iter_batches, predict_spectra
    from cryomath.inference.abinitio import (
        AbInitioSettings,
        _reset_inactive_class,
        start_abinitio,
    )
    from cryomath.io import read_mrc, read_particles, write_mrc
    from cryomath.pipelines import read_volume

    haemoglobin = DATA / "map_model" / "5me2.pdb"
    assert main(["simulate", str(_MODEL), str(haemoglobin), "--state-weights", "1,1", "--n",
                 "400", "--box-size", "24", "--pixel-size", "4", "--shift-sigma", "3", "--snr",
                 "1e6", "--out", str(tmp_path / "sim")]) == 0  # fmt: skip
    # one noise level for every image, as a detector's (simulate's SNR is per image, which
    # would give each molecule its own noise and the log-likelihoods away)
    stack = tmp_path / "sim" / "particles_000.mrcs"
    clean = read_mrc(stack)[0].astype(np.float64)
    noise = np.random.default_rng(0).normal(size=clean.shape) * np.sqrt(
        clean.var(axis=(1, 2)).mean() / 0.1
    )
    write_mrc(stack, (clean + noise).astype(np.float32), 4.0, force=True)
    table = read_particles(tmp_path / "sim" / "particles.star")
    truth = [read_volume(path, 24, 4.0)[0] for path in (_MODEL, haemoglobin)]
    settings = AbInitioSettings(classes=2, iterations=12, initial_batch=400, final_batch=400)
    state = start_abinitio(table, settings, torch.float64)
    state.maps[:] = truth[1]
    p = state.particles
    p.rotations[:], p.shifts_px[:] = table.rotations, -table.origins_angstrom / 4.0
    spectrum = prepare_volume(truth[1], 2.0, voxel_size_angstrom=4.0)
    for batch in iter_batches(table, 128, None, torch.float64):
        predicted = predict_spectra(spectrum, batch)
        p.log_likelihood[batch.indices.numpy()] = gaussian_log_likelihood(
            batch, predicted, state.noise, max_shell=8, min_shell=1
        ).numpy()  # as the E-step's
    state.iteration, state.class_fractions = 6, np.array([0.97, 0.03])
    assert _reset_inactive_class(table, state, settings, 12.0, None) == [2, 1]
    assert state.class_fractions.tolist() == [0.5, 0.5]
    worst = np.argsort(p.log_likelihood)[:200]
    n_domain = table.extra["rlnClassNumber"].to_numpy()[worst] == 1
    assert n_domain.mean() > 0.8, n_domain.mean()
    restarted = state.maps[1].flatten()
    r = [float(torch.corrcoef(torch.stack([restarted, t.flatten()]))[0, 1]) for t in truth]
    assert r[0] > 0.6 and r[0] > r[1] + 0.3, (n_domain.mean(), r)


def test_the_hierarchical_engine_inserts_each_image_at_its_true_pose(tmp_path):
    """One ab initio step of ``engine="hps"`` (a base of HEALPix order 1 refined two levels to
    order 3, 7.5 degrees; offsets to a quarter pixel) from the true map, on 100 particles at
    SNR 10 (box 32, 3 A, CTF, offsets of 1 px sd), the band at 8 A: each image found at its
    simulated pose (measured: median 3.5, 95 % within 6.0, at most 7.8 degrees) and offset
    (at most 0.27 px), and the step with no momentum and a learning rate of 1, which is the
    reconstruction from those poses, gives back the truth in the band (FSC 0.97 or more)."""
    from cryomath.cli import main
    from cryomath.inference.abinitio import AbInitioSettings, abinitio_iteration, start_abinitio
    from cryomath.io import read_particles
    from cryomath.pipelines import read_volume
    from cryomath.resolution import fourier_shell_correlation

    sim = tmp_path / "sim"
    assert main(["simulate", str(_MODEL), "--n", "100", "--box-size", "32", "--pixel-size", "3",
                 "--shift-sigma", "1", "--snr", "10", "--out", str(sim)]) == 0  # fmt: skip
    table = read_particles(sim / "particles.star")
    truth = read_volume(_MODEL, 32, 3.0)[0]
    settings = AbInitioSettings(iterations=1, initial_batch=100, final_batch=100,
                                initial_resolution_angstrom=8.0, final_resolution_angstrom=8.0,
                                engine="hps", offset_range_px=3, offset_step_px=1, momentum=0.0,
                                learning_rate=1.0)  # fmt: skip
    state = start_abinitio(table, settings)
    state.maps[0] = truth.float()
    shell = abinitio_iteration(table, state, settings)["max_shell"]
    p = state.particles
    errors = torch.rad2deg(so3.geodesic_distance(torch.from_numpy(table.rotations),
                                                 torch.from_numpy(p.rotations)))  # fmt: skip
    assert float(errors.median()) < 5.0 and float(errors.quantile(0.95)) < 7.5, errors
    offsets = np.linalg.norm(p.shifts_px + table.origins_angstrom / 3.0, axis=1)
    assert offsets.max() < 0.5, offsets
    fsc = fourier_shell_correlation(state.maps[0].double(), truth.double(), 3.0).fsc
    assert shell == 12 and float(fsc[1 : shell + 1].min()) > 0.9, fsc
