"""The EM engine (cryomath.inference): the M-step's dense sums equal a direct insertion of every
hypothesis, the oversampled grid is the next order's grid cut into children, the adaptive pass
matches the exhaustive fine search, the 2-D projector rotates as RELION's 3-D projector does
(and its back-projector is its adjoint), and 2-D classification separates three views."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import ifft_nd
from cryomath.imaging import (
    FourierAccumulator,
    NoiseSpectrum,
    ParticleBatch,
    insert_spectra,
    predict_images,
)
from cryomath.inference import gaussian_pose_scores, posterior
from cryomath.inference.sampling import global_orientations, oversampled_orientations
from cryomath.inference.sums import PoseSums, band_samples
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from cryomath.projection.planar import (
    accumulate_rotated_rfft_2d,
    prepare_images,
    rotate_spectra_rfft_2d,
)
from cryomath.so3.grids import healpix_poses


def _batch(n=16, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    defocus = 10000 + 10000 * torch.rand(b, generator=g, dtype=torch.float64)
    ctf = CTF(defocus, defocus - 300, torch.tensor(20.0), torch.tensor(300.0),
              torch.tensor(2.7), torch.tensor(0.1))  # fmt: skip
    images = torch.randn(b, n, n, generator=g, dtype=torch.float64)
    return ParticleBatch.from_tensors(images, so3.random_rotations(b, 9), 1.0, ctf=ctf), g


@pytest.mark.parametrize("kept", [1.0, 0.1])
def test_dense_and_indexed_sums_equal_inserting_every_hypothesis(kept):
    """Shared orientations (one product) and each image's own rows (index-added: oversampled
    children, local searches) give the sums of inserting every hypothesis by hand; with a tenth
    of the weights non-zero (an M-step's significant weights), by the sparse products."""
    batch, g = _batch()
    n, b, r, s, shell = 16, 3, 5, 4, 7
    rotations = so3.random_rotations(r, 3)
    shifts = torch.randn(s, 2, generator=g, dtype=torch.float64)
    w = torch.rand(b, s, r, generator=g, dtype=torch.float64)
    w = torch.where(torch.rand(b, s, r, generator=g) < kept, w, 0)
    assert 0 < float(w.count_nonzero()) < 0.15 * w.numel() or kept == 1
    keep = torch.zeros(n * (n // 2 + 1), dtype=torch.float64)
    keep[band_samples(n, shell)] = 1
    banded = replace(batch, spectra=batch.spectra * keep.view(n, n // 2 + 1))
    direct = FourierAccumulator(n, 2.0, torch.float64, None, 1.0)
    insert_spectra(direct, banded.spectra, banded, rotations.expand(b, s, r, 3, 3),
                   shifts[None, :, None].expand(b, s, r, 2), w)  # fmt: skip
    # the weights' sums by hand: N_r = sum_bs w_bsr C_b^2 on the band's samples
    ctf2 = batch.ctf_values().flatten(1)[:, band_samples(n, shell)] ** 2
    expected_weights = torch.einsum("bsr,bk->rk", w, ctf2)
    dense = FourierAccumulator(n, 2.0, torch.float64, None, 1.0)
    sums = PoseSums(r, n, shell, torch.float64, None)
    sums.add(batch, w, shifts)
    assert torch.allclose(sums.weights, expected_weights, rtol=1e-12, atol=0)
    sums.insert(dense, rotations)
    indexed = FourierAccumulator(n, 2.0, torch.float64, None, 1.0)
    sums = PoseSums(r, n, shell, torch.float64, None)
    order = torch.stack([torch.randperm(r, generator=g) for _ in range(b)])  # each image's own
    sums.add(batch, torch.gather(w, 2, order[:, None].expand(b, s, r)), shifts, order)
    assert torch.allclose(sums.weights, expected_weights, rtol=1e-12, atol=0)
    sums.insert(indexed, rotations)
    scale = direct.sums[0, :2].abs().max()
    for acc in (dense, indexed):
        assert float((acc.sums[0, :2] - direct.sums[0, :2]).abs().max() / scale) < 1e-12


@pytest.mark.parametrize("oversample", [True, False])
def test_tables_made_batch_by_batch_equal_the_whole_ones(tmp_path, oversample):
    """When a global search's tables over every orientation would not fit (``max_table_bytes``),
    each batch projects only the children its images keep and its sums hold only the rows they
    touch, inserted at once: the iteration's poses and maps are the whole tables' (float32
    added in another order: 1e-5)."""
    import copy
    from functools import partial

    from cryomath.atoms import map_from_model, read_atoms
    from cryomath.demo import BUNDLED_MODEL
    from cryomath.inference.expectation import expectation_pass
    from cryomath.inference.refine import RefineSettings, refine_iteration, start_refinement
    from cryomath.io import read_particles
    from cryomath.pipelines import simulate_dataset
    from cryomath.simulate import SimulationSettings

    volume = map_from_model(read_atoms(BUNDLED_MODEL), 3.0, None, margin_angstrom=5.0)[0]
    simulate_dataset(volume, tmp_path, SimulationSettings(n_particles=96, pixel_size_angstrom=3.0,
                                                          shard_size=96, seed=7))  # fmt: skip
    table = read_particles(tmp_path / "particles.star")
    settings = RefineSettings(max_iterations=1, batch_size=32, max_significant=16, healpix_order=1)
    dense = start_refinement(table, volume, 3.0, settings)
    dense.sampling = replace(dense.sampling, oversample=oversample)
    flat = copy.deepcopy(dense)
    refine_iteration(table, dense, settings)
    refine_iteration(table, flat, settings, passes=partial(expectation_pass, max_table_bytes=0))
    assert np.array_equal(dense.particles.rotations, flat.particles.rotations)
    error = float((dense.maps - flat.maps).abs().max() / dense.maps.abs().max())
    assert error <= 1e-5


def test_oversampled_children_are_the_next_grid_cut_by_parent():
    group = torch.eye(3, dtype=torch.float64)[None]
    coarse = global_orientations(1, group)
    fine = oversampled_orientations(1, group)
    assert fine.shape == (8 * len(coarse), 3, 3)
    # every pose of the order-2 grid is exactly one child: trace(A^T B) = 1 + 2 cos(angle), all
    # 4,608 x 4,608 pairs as one matrix product; equal poses within 1e-6 rad (grid poses lie
    # degrees apart)
    grid = healpix_poses(2)
    same = fine.reshape(-1, 9) @ grid.reshape(-1, 9).T > 3 - 1e-12
    assert same.any(1).all() and same.sum(0).eq(1).all()
    # each child lies near its parent: half a coarse step (30 degrees at order 1) typically,
    # under 1.5 steps where rot and psi couple near the poles
    distance = torch.rad2deg(so3.geodesic_distance(coarse.repeat_interleave(8, 0), fine))
    assert float(distance.median()) < 20.0 and float(distance.max()) < 45.0


def test_the_band_table_made_in_chunks_is_the_whole_tables_band():
    """The fine table of a global search, made 1,000 poses at a time (``band_projections``),
    equals the band of the whole table of both classes' projections, row for row."""
    from cryomath.inference.band import BandProjections
    from cryomath.inference.global_search import band_projections, project_references

    maps = torch.rand(2, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    spectrum = prepare_volume(maps, 2.0, voxel_size_angstrom=2.0)
    poses = oversampled_orientations(1, torch.eye(3, dtype=torch.float64)[None])  # 4,608
    whole = BandProjections.of(project_references(spectrum, poses, torch.float32, 5), 5)
    chunked = band_projections(spectrum, poses, torch.float32, 5, chunk=1000)
    assert chunked.parts.shape == whole.parts.shape == (2 * 4608, 2 * whole.power.shape[-1])
    assert torch.equal(chunked.parts, whole.parts) and torch.equal(chunked.power, whole.power)


def test_oversampling_keeps_the_exhaustive_fine_posterior():
    """The adaptive pass (coarse order 1 scored to shell 2, the children of each image's 64
    best coarse orientations at order 2) finds the best pose of scoring the whole order-2 grid
    for every image, and its evidence is within 0.01 of the exhaustive marginal (the pruned
    hypotheses hold almost no mass)."""
    from cryomath.inference.expectation import References
    from cryomath.inference.global_search import GlobalSearch
    from cryomath.inference.sampling import Sampling

    g = torch.Generator().manual_seed(4)
    n = 24
    volume = torch.zeros(n, n, n, dtype=torch.float64)
    volume[8:14, 9:16, 7:12] = 1.0
    volume[12:16, 6:10, 12:17] = 2.0
    spectrum = prepare_volume(volume, 2.0)
    group = torch.eye(3, dtype=torch.float64)[None]
    fine = oversampled_orientations(1, group)
    truth = fine[torch.randint(len(fine), (40,), generator=g)]
    batch = ParticleBatch.from_tensors(None, truth, 1.0, image_size=n)
    clean = predict_images(spectrum, batch)
    sd = float(clean.std())
    images = clean + sd * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    batch = ParticleBatch.from_tensors(images, truth, 1.0)
    noise = NoiseSpectrum((0,), torch.full((1, n), 0.5 * sd**2 * n * n))
    shifts = torch.zeros(1, 2, dtype=torch.float64)
    projections = extract_central_slices_rfft_3d(spectrum, fine)
    exhaustive = posterior(gaussian_pose_scores(batch, projections, shifts, noise))
    refs = References(volume[None], 1.0, torch.zeros(1, dtype=torch.float64))
    sampling = Sampling(1, False, 0.0, 1.0, n // 2 - 1, max_significant=64, coarse_shell=2)
    search = GlobalSearch(refs, sampling, group, torch.float64, None)
    hyp, rows, prior = search.hypotheses(batch, shifts, torch.zeros(1, dtype=torch.float64),
                                         noise)  # fmt: skip
    assert hyp.count == 8 * 64 < len(fine)
    pruned = posterior(gaussian_pose_scores(batch, hyp, shifts, noise), None, prior)
    best = rows[torch.arange(len(rows)), pruned.weights[:, 0].argmax(1)]
    assert best.tolist() == exhaustive.weights[:, 0].argmax(1).tolist()
    assert float((pruned.log_evidence - exhaustive.log_evidence).abs().max()) < 0.01


def test_the_planar_rotation_is_relions_in_plane_angle():
    """Rotating the projection at (rot, tilt, 0) by psi in Fourier space equals the 3-D
    projector's image at (rot, tilt, psi) (RELION: A = R(psi) R(tilt) R(rot))."""
    n = 32
    g = torch.Generator().manual_seed(1)
    volume = torch.zeros(n, n, n, dtype=torch.float64)
    volume[10:20, 12:22, 9:15] = 1.0
    volume[14:18, 8:13, 15:22] = 1.5
    spectrum = prepare_volume(volume, 2.0)
    rot_tilt = torch.tensor([40.0, 70.0], dtype=torch.float64)
    psi = torch.tensor([0.0, 35.0, 200.0], dtype=torch.float64)
    angles = torch.cat([rot_tilt.expand(3, 2), psi[:, None]], 1)
    poses = so3.matrix_from_relion_euler(angles)
    images = predict_images(spectrum, ParticleBatch.from_tensors(None, poses, 1.0, image_size=n))
    rotated = ifft_nd(rotate_spectra_rfft_2d(prepare_images(images[:1]), n, psi), (n, n))[0]
    error = (rotated - images).norm(dim=(-1, -2)) / images.norm(dim=(-1, -2))
    assert float(error.max()) < 0.05
    # the back-projector is the adjoint: <R x, y> = <x, R^T y>
    spectra = torch.randn(2, 3, n, n // 2 + 1, dtype=torch.complex128, generator=g)
    out = torch.zeros(2, 3, 2 * n, n + 1, dtype=torch.float64)
    accumulate_rotated_rfft_2d(out, spectra, torch.zeros(spectra.shape, dtype=torch.float64), psi)
    x = torch.randn(2, 2, 2 * n, n + 1, dtype=torch.float64, generator=g)
    lhs = (rotate_spectra_rfft_2d(x, n, psi).conj() * spectra).real.sum()
    rhs = (x[:, :2] * out[:, :2]).sum()
    assert float((lhs - rhs).abs() / rhs.abs()) < 1e-10


@pytest.fixture(scope="module")
def three_views(tmp_path_factory):
    """600 particles (box 48, 2 A, CTF, offsets of 1 px sd, SNR 0.05 over the box) of the
    6VYB N-domain seen from three directions at uniform in-plane angles, as a STAR file and
    a stack, with their true view and in-plane angle."""
    from cryomath.io import ParticleTable, write_mrc, write_relion_star
    from cryomath.io.particles import CTFParameters
    from cryomath.pipelines import read_volume

    out = tmp_path_factory.mktemp("views")
    volume, voxel = read_volume(_MODEL, 48, 2.0)
    g = torch.Generator().manual_seed(0)
    n_particles = 600
    views = torch.tensor([[0.0, 0.0], [0.0, 90.0], [90.0, 90.0]], dtype=torch.float64)
    view = torch.randint(0, 3, (n_particles,), generator=g)
    psi = torch.rand(n_particles, generator=g, dtype=torch.float64) * 360
    poses = so3.matrix_from_relion_euler(torch.cat([views[view], psi[:, None]], 1))
    shifts = torch.randn(n_particles, 2, generator=g, dtype=torch.float64)
    defocus = (10000 + 15000 * torch.rand(n_particles, generator=g, dtype=torch.float64)).numpy()
    ones, zeros = np.ones(n_particles), np.zeros(n_particles)
    ctf = CTFParameters(defocus, defocus, zeros, 300 * ones, 2.7 * ones, 0.1 * ones, zeros,
                        zeros, ones)  # fmt: skip
    ctf_model = CTF.from_parameters(ctf, dtype=torch.float64)
    batch = ParticleBatch.from_tensors(None, poses, voxel, shifts, ctf_model, 48)
    clean = predict_images(prepare_volume(volume, 2.0, voxel_size_angstrom=voxel), batch)
    noise = torch.randn(clean.shape, generator=g, dtype=torch.float64) * (clean.var() / 0.05).sqrt()
    write_mrc(out / "stack.mrcs", (clean + noise).float().numpy(), voxel)
    table = ParticleTable(
        n=n_particles, ctf=ctf, pixel_size_angstrom=voxel * ones, image_size=np.full(
            n_particles, 48), image_paths=np.full(n_particles, "stack.mrcs", dtype=object),
        image_indices=np.arange(n_particles), optics_group=np.ones(n_particles, np.int64),
        root=out,
    )  # fmt: skip
    write_relion_star(table, out / "particles.star")
    return out / "particles.star", view.numpy(), psi.numpy()


_MODEL = (
    __import__("pathlib").Path(__file__).resolve().parents[1]
    / "src"
    / "cryomath"
    / "data"
    / "6vyb_ndom.pdb.gz"
)


def test_class2d_separates_three_views(three_views, tmp_path, capsys):
    """``cryomath class2d -K 3`` on 600 particles at SNR 0.05: every class holds one view
    (at least 95 % of particles in the right class) and the in-plane angles agree with the
    truth up to one rotation per class, within one angular step (6 degrees) for 90 %."""
    import json

    from cryomath.cli import main
    from cryomath.io import read_particles

    star, view, psi = three_views
    out = tmp_path / "c2d"
    assert main(["class2d", str(star), "--classes", "3", "--iterations", "10", "--offset-range",
                 "3", "--out", str(out), "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert sum(summary["class_counts"]) == len(view)
    table = read_particles(out / "particles.star", allow_unknown_columns=True)
    classes = table.extra["rlnClassNumber"].to_numpy() - 1
    confusion = np.zeros((3, 3))
    np.add.at(confusion, (classes, view), 1)
    assert confusion.max(1).sum() / len(view) >= 0.95
    estimated = so3.relion_euler_from_matrix(torch.from_numpy(table.rotations)).numpy()[:, 2]
    errors = []
    for k in range(3):
        members = classes == k
        for sign in (1, -1):  # the class average's own frame: psi_est = c + sign psi_true
            d = (estimated[members] - sign * psi[members] + 180) % 360 - 180
            c = np.degrees(np.angle(np.mean(np.exp(1j * np.radians(d)))))
            errors.append(np.abs((d - c + 180) % 360 - 180))
    best = sorted(errors, key=np.median)[:3]
    assert np.quantile(np.concatenate(best), 0.9) <= 6.0
    assert (out / "classes.png").stat().st_size > 0 and (out / "model.star").is_file()


def test_class2d_reports_and_keeps_empty_classes(tmp_path, capsys):
    """More classes than 24 particles of one molecule fill (K = 20, two iterations): the
    classes nobody chose are listed (1-based), keep their place in every output (20 averages,
    20 rows of ``model.star`` with a count of 0) and agree with the particles' classes read
    back."""
    import json

    from cryomath.cli import main
    from cryomath.io import read_mrc, read_particles, read_star

    assert main(["simulate", str(_MODEL), "--n", "24", "--box-size", "24", "--pixel-size", "4",
                 "--snr", "1", "--out", str(tmp_path / "sim"), "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "c2d"
    assert main(["class2d", str(tmp_path / "sim" / "particles.star"), "--classes", "20",
                 "--iterations", "2", "--out", str(out), "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    chosen = read_particles(out / "particles.star", allow_unknown_columns=True)
    used = set(chosen.extra["rlnClassNumber"].tolist())
    assert summary["empty_classes"] == [k for k in range(1, 21) if k not in used]
    assert len(summary["empty_classes"]) >= 1
    assert read_mrc(out / "classes.mrcs")[0].shape[0] == 20
    model = read_star(out / "model.star")["model_classes"]
    assert len(model) == 20
    assert (model["rlnClassParticleCount"].to_numpy()[np.array(summary["empty_classes"]) - 1]
            == 0).all()  # fmt: skip


def _refine(args: list[str]) -> int:
    from cryomath.cli import main

    return main(["refine", *args, "--healpix-order", "1", "--local-from-order", "3",
                 "--max-order", "3", "--offset-range", "2", "--json"])  # fmt: skip


def _median_error_after_best_rotation(truth: np.ndarray, found: np.ndarray) -> float:
    """Median degrees between ``found`` and ``truth`` poses after the one rotation (their
    chordal mean) that best aligns them: a refinement's frame is free."""
    from cryomath.so3.averaging import chordal_mean

    d = torch.as_tensor(truth).transpose(1, 2) @ torch.as_tensor(found)
    return float(torch.rad2deg(so3.geodesic_distance(d, chordal_mean(d).expand_as(d))).median())


def test_refine_finds_poses_writes_relion_files_and_continues_exactly(tmp_path, capsys):
    """``cryomath refine`` on 300 simulated particles (box 32, 3 A, CTF, SNR 0.2) from the
    model low-passed to 30 A: the poses are far better than random (median error after the
    best global rotation under 25 degrees; random poses give about 126), the particles STAR
    carries RELION's columns, and two iterations then ``--continue`` to a third give the same
    poses and maps as three at once (the checkpoint holds everything)."""
    import json

    from cryomath.cli import main
    from cryomath.io import read_mrc, read_particles

    sim = tmp_path / "sim"
    assert main(["simulate", str(_MODEL), "--n", "300", "--box-size", "32", "--pixel-size",
                 "3", "--snr", "0.2", "--out", str(sim), "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    star = str(sim / "particles.star")
    once, split = tmp_path / "once", tmp_path / "split"
    assert _refine([star, "--reference", str(_MODEL), "--out", str(once), "--max-iterations",
                    "3"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["iterations"] == 3 and summary["resolution_0143_angstrom"] < 20
    assert _refine([star, "--reference", str(_MODEL), "--out", str(split), "--max-iterations",
                    "2"]) == 0  # fmt: skip
    assert _refine([star, "--reference", str(_MODEL), "--out", str(split), "--max-iterations",
                    "3", "--continue"]) == 0  # fmt: skip
    capsys.readouterr()
    a = read_particles(once / "particles.star", allow_unknown_columns=True)
    b = read_particles(split / "particles.star", allow_unknown_columns=True)
    assert np.abs(a.rotations - b.rotations).max() < 1e-6
    assert np.abs(read_mrc(once / "map.mrc")[0] - read_mrc(split / "map.mrc")[0]).max() < 1e-4
    for label in ("rlnClassNumber", "rlnMaxValueProbDistribution", "rlnLogLikeliContribution",
                  "rlnNrOfSignificantSamples"):  # fmt: skip
        assert label in a.extra.columns
    assert set(np.unique(a.random_subset)) == {1, 2}
    truth = read_particles(sim / "particles.star")
    assert _median_error_after_best_rotation(truth.rotations, a.rotations) < 25.0
    for name in ("half1.mrc", "half2.mrc", "postprocess.mrc", "fsc.png", "orientations.png",
                 "fsc_iterations.png", "iterations.json"):  # fmt: skip
        assert (once / name).stat().st_size > 0
    assert main(["refine", star, "--reference", str(_MODEL), "--out", str(once)]) == 1


def test_class3d_separates_two_conformations(tmp_path, capsys):
    """``cryomath class3d`` with one initial map per class (both low-passed to 60 A) on 300
    particles (box 32, 3 A, CTF, SNR 0.2) of two conformations of the 6VYB N-domain (one with
    a third of it removed), at Haar-random poses: after 6 iterations at least 95 % of particles
    end in the class of their conformation (measured 98.7 %; 95.3-99.0 % on seeds 1-3, and
    100 % with the true poses and maps; 3 iterations gave 89-95 %, their poses not yet found),
    and the outputs name each class's map, count and resolution."""
    import json

    from cryomath.cli import main
    from cryomath.io import read_particles, write_mrc, write_relion_star
    from tests.conformations import two_conformations

    count = 300
    table, truth, full, cut, poses, _ = two_conformations(tmp_path, count, 32, 3.0, 0, 0.2)
    voxel = float(table.pixel_size_angstrom[0])
    write_relion_star(table, tmp_path / "particles.star")
    for name, volume in (("a.mrc", full), ("b.mrc", cut)):
        write_mrc(tmp_path / name, volume.numpy(), voxel)
    out = tmp_path / "c3d"
    star = str(tmp_path / "particles.star")
    assert main(["class3d", star, "--reference", str(tmp_path / "a.mrc"),
                 "--reference", str(tmp_path / "b.mrc"), "--classes", "2", "--iterations", "6",
                 "--healpix-order", "1", "--offset-range", "2", "--out", str(out),
                 "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert sum(summary["class_counts"]) == count
    classes = read_particles(out / "particles.star", allow_unknown_columns=True).extra[
        "rlnClassNumber"].to_numpy() - 1  # fmt: skip
    assert (classes == truth).mean() >= 0.95
    assert (out / "class001.mrc").is_file() and (out / "classes.png").stat().st_size > 0
    # --local starts from the particles' poses (here the true ones): they stay within a step
    write_relion_star(replace(table, rotations=poses.numpy()), tmp_path / "posed.star")
    local = tmp_path / "local"
    assert main(["class3d", str(tmp_path / "posed.star"), "--reference", str(tmp_path / "a.mrc"),
                 "--reference", str(tmp_path / "b.mrc"), "--classes", "2", "--iterations", "1",
                 "--healpix-order", "3", "--local", "--offset-range", "2", "--out", str(local),
                 "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    posed = read_particles(local / "particles.star", allow_unknown_columns=True)
    error = torch.rad2deg(so3.geodesic_distance(torch.as_tensor(posed.rotations), poses))
    assert float(error.max()) <= 2 * 7.5 + 1e-6  # the local grid: 2 steps of 7.5 degrees
    # one iteration from maps low-passed to 60 A: better than chance (0.5), measured 0.78
    assert (posed.extra["rlnClassNumber"].to_numpy() - 1 == truth).mean() >= 0.7
    # without poses, a local search is refused in one line
    assert main(["class3d", star, "--reference", str(tmp_path / "a.mrc"), "--classes", "2",
                 "--local", "--out", str(tmp_path / "x")]) == 1  # fmt: skip
    assert "needs rotations" in capsys.readouterr().err


def test_planar_rotation_gives_relions_images_at_their_in_plane_angle():
    """RELION 3.1.3's ``relion_project`` images of EMD-3488 (no CTF) at (rot, tilt, psi) and
    origins equal cryomath's projection at (rot, tilt, 0) rotated by psi in Fourier space
    (``projection.planar``) and shifted by ``-origin / pixel``: correlation above 0.99 each."""
    from cryomath.fourier.shift import phase_ramp
    from cryomath.imaging import iter_batches
    from cryomath.io import read_mrc, read_particles
    from tests.conftest import DATA

    table = read_particles(DATA / "relion313_reference" / "proj_noctf_24.star")
    volume = torch.from_numpy(read_mrc(DATA / "map_model" / "emd_3488.mrc", np.float64)[0])
    (batch,) = list(iter_batches(table, 64, use_ctf=False))
    n = batch.image_size
    angles = so3.relion_euler_from_matrix(batch.rotations)
    flat = so3.matrix_from_relion_euler(torch.cat([angles[:, :2], 0 * angles[:, 2:]], 1))
    spectrum = prepare_volume(volume, 2.0)
    unrotated = ifft_nd(extract_central_slices_rfft_3d(spectrum, flat), (n, n))
    rotated = torch.stack([
        rotate_spectra_rfft_2d(prepare_images(image[None]), n, psi[None])[0, 0]
        for image, psi in zip(unrotated, angles[:, 2], strict=True)
    ])  # fmt: skip
    ours = ifft_nd(rotated * phase_ramp((n, n), batch.shifts_px, rfft=True), (n, n))
    theirs = batch.images()
    a, b = ours - ours.mean((1, 2), keepdim=True), theirs - theirs.mean((1, 2), keepdim=True)
    correlation = (a * b).sum((1, 2)) / (a.norm(dim=(1, 2)) * b.norm(dim=(1, 2)))
    assert float(correlation.min()) > 0.99


def test_tau2_fudge_multiplies_the_signal_to_noise_ratio_of_the_prior():
    """RELION's T: ``invert`` with an FSC and ``tau2_fudge`` T equals ``invert`` with T = 1
    and the FSC whose SSNR is T times as large (``FSC' = 2 FSC / (1 + FSC)``, ``SSNR = FSC' /
    (1 - FSC')``, inverted analytically); so does the planar inversion of 2-D classes."""
    from cryomath.projection.planar import invert_planar
    from cryomath.reconstruction.direct import invert

    batch, g = _batch(n=12, b=20, seed=3)
    acc = FourierAccumulator(12, 2.0, torch.float64, None, 1.0)
    acc.add(batch.spectra, torch.ones(batch.spectra.shape, dtype=torch.float64), batch.rotations)
    fsc = torch.linspace(0.99, 0.05, 7, dtype=torch.float64)
    full = 2 * fsc / (1 + fsc)
    ssnr = 3.0 * full / (1 - full)
    full3 = ssnr / (1 + ssnr)
    fsc3 = full3 / (2 - full3)
    a = invert(acc, half_map_fsc=fsc, tau2_fudge=3.0)
    b = invert(acc, half_map_fsc=fsc3)
    assert float((a - b).abs().max() / b.abs().max()) < 1e-10
    assert float((a - invert(acc, half_map_fsc=fsc)).abs().max() / b.abs().max()) > 1e-3
    sums = torch.rand(2, 3, 24, 13, generator=g, dtype=torch.float64)
    p = invert_planar(sums, 12, fsc.expand(2, -1), tau2_fudge=3.0)
    q = invert_planar(sums, 12, fsc3.expand(2, -1))
    assert float((p - q).abs().max() / q.abs().max()) < 1e-10


def test_refine_with_point_group_symmetry_searches_the_asymmetric_unit(tmp_path):
    """Refinement under D2 (a map made D2-symmetric: three blobs and their flips, box 24,
    4 A; 240 particles, CTF, SNR 1): the global search scores only the asymmetric unit (about
    a quarter of the order-1 grid), the poses are found up to the group (median error under 10
    degrees, a HEALPix step of order 2 being 15; random poses: 79), and the map is
    D2-symmetric to float32 precision (each operator flips two axes about the box centre)."""
    from cryomath.inference.refine import RefineSettings, refine_iteration, start_refinement
    from cryomath.inference.sampling import global_orientations
    from cryomath.io import read_particles
    from cryomath.pipelines import simulate_dataset
    from cryomath.simulate import SimulationSettings
    from cryomath.so3.symmetry import point_group, symmetric_geodesic_distance

    n = 24
    axis = torch.arange(n, dtype=torch.float64) - n // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    volume = torch.zeros(n, n, n, dtype=torch.float64)
    for cx, cy, cz, w in ((4, 2, 1, 6.0), (-3, 5, 2, 3.0), (1, -2, 6, 4.0)):
        volume += torch.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / w)
    group = point_group("D2", dtype=torch.float64)
    symmetric = torch.zeros_like(volume)
    for g in group:
        flipped = volume
        for axis_index, sign in zip((2, 1, 0), torch.diagonal(g).tolist(), strict=True):
            if sign < 0:
                flipped = torch.roll(flipped.flip(axis_index), 1, axis_index)
        symmetric += flipped / len(group)
    settings_sim = SimulationSettings(n_particles=240, pixel_size_angstrom=4.0, snr=1.0, seed=5)
    simulate_dataset(symmetric, tmp_path, settings_sim)
    table = read_particles(tmp_path / "particles.star")
    # a quarter of the grid, plus the directions on the unit's boundary planes (180 of 576)
    assert 0.25 <= len(global_orientations(1, group)) / len(healpix_poses(1)) <= 0.32
    settings = RefineSettings(ini_high_angstrom=20.0, symmetry="D2", healpix_order=1,
                              offset_range_px=0.0, max_significant=16)  # fmt: skip
    state = start_refinement(table, symmetric, 4.0, settings)
    for _ in range(2):
        refine_iteration(table, state, settings)
    found = torch.as_tensor(state.particles.rotations)
    error = torch.rad2deg(symmetric_geodesic_distance(torch.as_tensor(table.rotations), found,
                                                      group))  # fmt: skip
    assert float(error.median()) < 10.0
    full = state.full.double()
    for g in group:
        flipped = full
        for axis_index, sign in zip((2, 1, 0), torch.diagonal(g).tolist(), strict=True):
            if sign < 0:
                flipped = torch.roll(flipped.flip(axis_index), 1, axis_index)
        scale = float(full.abs().max())
        assert float((flipped - full)[1:, 1:, 1:].abs().max()) < 1e-4 * scale


def test_refinement_estimates_each_optics_groups_amplitude_scale(tmp_path):
    """RELION's ``--scale`` per optics group: 240 particles (box 24, 4 A, CTF, SNR 1) of which
    the second optics group's images are multiplied by 0.6 (noise included, as a thinner
    ice or another dose would): two refinement iterations estimate the groups' scale ratio
    within 5 % of 0.6, their particle-weighted mean is 1, and without the correction it
    stays unknown (no scales)."""
    from cryomath.inference.refine import RefineSettings, refine_iteration, start_refinement
    from cryomath.io import read_mrc, read_particles, write_mrc, write_relion_star
    from cryomath.pipelines import read_volume, simulate_dataset
    from cryomath.simulate import SimulationSettings

    volume, voxel = read_volume(_MODEL, 24, 4.0)
    simulate_dataset(volume, tmp_path, SimulationSettings(n_particles=240, pixel_size_angstrom=4.0,
                                                          snr=1.0, seed=2))  # fmt: skip
    table = read_particles(tmp_path / "particles.star")
    images = read_mrc(tmp_path / "particles_000.mrcs")[0].copy()
    second = np.arange(240) >= 120
    images[second] *= 0.6
    write_mrc(tmp_path / "scaled.mrcs", images, voxel)
    table = replace(table, image_paths=np.full(240, "scaled.mrcs", dtype=object),
                    optics_group=np.where(second, 2, 1))  # fmt: skip
    write_relion_star(table, tmp_path / "scaled.star")
    table = read_particles(tmp_path / "scaled.star")
    settings = RefineSettings(healpix_order=1, offset_range_px=0.0, max_significant=16)
    state = start_refinement(table, volume, voxel, settings)
    for _ in range(2):
        refine_iteration(table, state, settings)
    scales = state.group_scales
    assert scales[2] / scales[1] == pytest.approx(0.6, rel=0.05)
    assert (scales[1] + scales[2]) / 2 == pytest.approx(1.0, abs=1e-9)
    off = replace(settings, scale_correction=False)
    state = start_refinement(table, volume, voxel, off)
    refine_iteration(table, state, off)
    assert state.group_scales == {}


def test_an_interrupted_refinement_keeps_its_checkpoint_and_continues(tmp_path):
    """Inside a command's output set (whose files appear only when it succeeds, as the CLI
    runs every command), a refinement stopped after its first iteration (Ctrl-C) leaves
    ``checkpoint.pt`` published, and continuing from it gives the poses and maps of an
    uninterrupted run of two iterations."""
    from cryomath.inference.refine import RefineSettings
    from cryomath.io import read_particles
    from cryomath.io.atomic import output_set
    from cryomath.pipelines import read_volume, simulate_dataset
    from cryomath.pipelines.refinement import refine_particles
    from cryomath.simulate import SimulationSettings

    volume, voxel = read_volume(_MODEL, 24, 4.0)
    simulate_dataset(volume, tmp_path / "sim", SimulationSettings(
        n_particles=120, pixel_size_angstrom=4.0, snr=1.0, seed=4))  # fmt: skip
    table = read_particles(tmp_path / "sim" / "particles.star")
    settings = RefineSettings(healpix_order=1, offset_range_px=0.0, max_significant=8,
                              max_iterations=2)  # fmt: skip

    def stop(line):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), output_set():
        refine_particles(table, volume, voxel, tmp_path / "cut", settings, on_iteration=stop)
    assert (tmp_path / "cut" / "checkpoint.pt").is_file()
    with output_set():
        resumed = refine_particles(table, volume, voxel, tmp_path / "cut", settings, resume=True)
        whole = refine_particles(table, volume, voxel, tmp_path / "whole", settings)
    assert resumed.iteration == whole.iteration == 2
    assert np.abs(resumed.particles.rotations - whole.particles.rotations).max() < 1e-9
    assert float((resumed.maps - whole.maps).abs().max()) <= 1e-5 * float(whole.maps.abs().max())


def test_a_global_recheck_searches_globally_once_more_then_converges_again(tmp_path):
    """With ``global_recheck`` a refinement that would converge runs one more global pass
    against its final maps, local searches again, and converges; its poses are within the
    finest step of the simulation's truth (after the best global rotation)."""
    from cryomath.inference.refine import RefineSettings
    from cryomath.io import read_particles
    from cryomath.io.atomic import output_set
    from cryomath.pipelines import read_volume, simulate_dataset
    from cryomath.pipelines.refinement import refine_particles
    from cryomath.simulate import SimulationSettings

    volume, voxel = read_volume(_MODEL, 24, 4.0)
    simulate_dataset(volume, tmp_path / "sim", SimulationSettings(
        n_particles=120, pixel_size_angstrom=4.0, snr=1.0, seed=4))  # fmt: skip
    table = read_particles(tmp_path / "sim" / "particles.star")
    settings = RefineSettings(healpix_order=1, local_from_order=2, max_order=2,
                              offset_range_px=0.0, max_significant=8,
                              global_recheck=True)  # fmt: skip
    with output_set():
        state = refine_particles(table, volume, voxel, tmp_path / "ref", settings)
    local = [line["local"] for line in state.history]
    recheck = state.recheck_iteration
    assert state.converged and recheck is not None
    assert local[recheck - 2] and not local[recheck - 1] and all(local[recheck:])
    # within the finest step (order 2)
    assert _median_error_after_best_rotation(table.rotations, state.particles.rotations) < 15.0
    with pytest.raises(InvalidInputError, match="global_recheck needs a global first order"):
        replace(settings, local_from_order=1).check()
