"""Map alignment: density vectors against their definition, and fits of maps moved by known
transforms (x_ref = R x_query + T) recovered to sub-degree, sub-Angstrom precision."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cryomath import so3
from cryomath.cli import main
from cryomath.errors import InvalidInputError
from cryomath.fitting import align_maps, coarse_grid, density_vectors, threshold_for_mass
from cryomath.fitting.align import cubic
from cryomath.fitting.refine import transform_map
from cryomath.io import read_mrc, write_mrc
from tests.conftest import DATA

MOLMAP = DATA / "map_model" / "1ake_molmap45.mrc"


def _moved_copy(volume, voxel, origin, rotation, translation):
    """The query with ``query(y) = ref(R y + T)``, i.e. ``x_ref = R x_query + T``."""
    return transform_map(
        volume, voxel, origin, rotation.T, -rotation.T @ translation, volume.shape, voxel, origin
    )


def test_density_vectors_point_to_the_maximum_of_a_gaussian():
    n = 24
    axis = torch.arange(n, dtype=torch.float64) - n // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    blob = torch.exp(-((x - 2) ** 2 + y**2 + z**2) / 20.0)
    vectors = density_vectors(blob, 1.0, 0.1, bandwidth_angstrom=4.0)
    # at (x, y, z) = (-2, 0, 0) relative to the centre the vector points to +x (toward x = 2)
    torch.testing.assert_close(
        vectors[:, 12, 12, 10], torch.tensor([1.0, 0, 0], dtype=torch.float64), atol=1e-6, rtol=0
    )
    assert float(vectors[:, 0, 0, 0].abs().sum()) == 0.0  # below the threshold
    coarse, spacing, origin = coarse_grid(blob, 1.0, (0.0, 0.0, 0.0), 3.0)
    assert coarse.shape == (8, 8, 8) and spacing == 3.0
    # the centre voxel keeps its position: 12 A before, origin + 4 * 3 A after
    np.testing.assert_allclose(origin + 4 * 3.0, [12.0, 12.0, 12.0])
    # 1 kDa of protein encloses 1000 / 0.81 A^3
    values = torch.rand(24, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = threshold_for_mass(values, 1.0, 1.0)
    assert int((values > t).sum()) == pytest.approx(1000 / 0.81, abs=1)


def test_the_automatic_threshold_is_mean_plus_two_sd_and_refuses_one_voxel():
    """mean + 2 sd (unbiased) of 0, 1, 2, 3: 1.5 + 2 * 1.2910 = 4.0820; one voxel has no
    spread: one clear error, not a NaN threshold (found by tests/test_edges_property.py)."""
    from cryomath.fitting.preprocess import automatic_threshold

    volume = torch.arange(4.0).reshape(1, 2, 2)
    assert automatic_threshold(volume) == pytest.approx(1.5 + 2 * math.sqrt(5 / 3))
    with pytest.raises(InvalidInputError, match="no automatic threshold"):
        automatic_threshold(torch.ones(1, 1, 1))


def test_fit_of_a_moved_map_is_recovered_to_sub_degree_and_sub_angstrom():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, info = read_mrc(MOLMAP, np.float64)
    reference = cubic(torch.from_numpy(data))
    voxel, origin = float(info.voxel_size_angstrom[0]), np.asarray(info.origin_angstrom)
    centre = torch.as_tensor(origin + voxel * (reference.shape[-1] // 2))
    rotation = so3.random_rotations(1, 11)[0]
    translation = centre - rotation @ centre + torch.tensor([4.0, -3.0, 2.0], dtype=torch.float64)
    query = _moved_copy(reference, voxel, origin, rotation, translation)
    models = align_maps(reference, voxel, origin, query, voxel, origin, top=3)
    best = models[0]
    error = math.degrees(float(so3.geodesic_distance(best.rotation_matrix, rotation)))
    assert error < 1.0
    assert float((best.translation_angstrom - translation).norm()) < 0.5
    assert best.correlation > 0.95  # the moved copy is blurred by one trilinear resampling
    # distinct solutions: no two within 0.3 rad of each other at the same place
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            near = float(so3.geodesic_distance(a.rotation_matrix, b.rotation_matrix)) < 0.3
            assert not (
                near and float((a.translation_angstrom - b.translation_angstrom).norm()) < 14
            )


def test_align_maps_command(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, info = read_mrc(MOLMAP, np.float64)
    reference = cubic(torch.from_numpy(data))
    voxel, origin = float(info.voxel_size_angstrom[0]), np.asarray(info.origin_angstrom)
    ref_path, query_path = tmp_path / "ref.mrc", tmp_path / "query.mrc"
    write_mrc(ref_path, reference.numpy(), voxel, tuple(origin))
    centre = torch.as_tensor(origin + voxel * (reference.shape[-1] // 2))
    rotation = so3.matrix_about_axis(torch.tensor(0.6, dtype=torch.float64), "z")
    translation = centre - rotation @ centre
    write_mrc(
        query_path,
        _moved_copy(reference, voxel, origin, rotation, translation).numpy(),
        voxel,
        tuple(origin),
    )
    code = main(
        [
            "align-maps",
            str(ref_path),
            str(query_path),
            "--out",
            str(tmp_path / "fit"),
            "--top",
            "2",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr()[0])
    assert code == 0 and result["convention"] == "x_ref = R x_query + T"
    assert "normalized_z_score" in result["models"][0]
    best = np.array(result["models"][0]["rotation_matrix"])
    assert np.degrees(np.arccos((np.trace(best.T @ rotation.numpy()) - 1) / 2)) < 1.0
    moved, _ = read_mrc(tmp_path / "fit" / "query_in_reference.mrc")
    assert np.corrcoef(moved.ravel(), reference.numpy().ravel())[0, 1] > 0.97


@pytest.mark.parametrize("other", ["emd_21457_seg_orig0.mrc", "emd_21457_seg_nstart.mrc"])
def test_emd_21457_trio_aligns_by_identity_and_the_exact_origin_offset(other):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, ref_info = read_mrc(DATA / "map_model" / "emd_21457_seg.mrc", np.float64)
        query, query_info = read_mrc(DATA / "map_model" / other, np.float64)
    models = align_maps(
        torch.from_numpy(ref), float(ref_info.voxel_size_angstrom[0]), ref_info.origin_angstrom,
        torch.from_numpy(query), float(query_info.voxel_size_angstrom[0]),
        query_info.origin_angstrom, top=3,
    )  # fmt: skip
    best = models[0]
    identity = torch.eye(3, dtype=torch.float64)
    assert math.degrees(float(so3.geodesic_distance(best.rotation_matrix, identity))) < 0.01
    offset = np.subtract(ref_info.origin_angstrom, query_info.origin_angstrom)
    # the optimum sits where every point is on a voxel centre, a kink of the trilinear
    # interpolant: measured 0.016 A (1.5 % of a voxel)
    np.testing.assert_allclose(best.translation_angstrom.numpy(), offset, atol=0.05)


def test_related_maps_score_a_higher_normalised_z_than_unrelated_ones():
    from cryomath.atoms import read_atoms, render_potential

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emd, info = read_mrc(DATA / "map_model" / "emd_3488.mrc", np.float64)
        ribosome, _ = read_mrc(
            DATA / "aspire_relion_proj" / "clean70SRibosome_vol_65p.mrc", np.float64
        )
    emd = torch.from_numpy(emd)
    model = read_atoms(DATA / "map_model" / "5me2.pdb")
    simulated = render_potential(
        model, emd.shape, 1.05, info.origin_angstrom, resolution_angstrom=4.0, dtype=torch.float64
    )
    related = align_maps(emd, 1.05, info.origin_angstrom, simulated, 1.05, info.origin_angstrom)
    # the ribosome volume has no voxel size in its header: 1.05 A is assumed (unrelated anyway)
    unrelated = align_maps(
        emd,
        1.05,
        info.origin_angstrom,
        torch.from_numpy(ribosome),
        1.05,
        (0, 0, 0),
    )
    # Z of the refined fits against the 900-rotation sample; measured 15.1 and 3.3
    assert related[0].normalized_z_score > 10
    assert related[0].normalized_z_score > unrelated[0].normalized_z_score + 5
    for score in ("overlap", "cc", "pcc", "laplacian"):
        fits = align_maps(
            emd,
            1.05,
            info.origin_angstrom,
            simulated,
            1.05,
            info.origin_angstrom,
            top=2,
            refine=False,
            score=score,
        )
        identity = torch.eye(3, dtype=torch.float64)
        angle = math.degrees(float(so3.geodesic_distance(fits[0].rotation_matrix, identity)))
        # haemoglobin (a2b2) has a 2-fold: its mate at 180 degrees fits as well
        assert angle < 20 or angle > 160 or score == "overlap"


def _angle_degrees(a, b):
    return math.degrees(float(so3.geodesic_distance(a, b)))


def _simulated_map(name, voxel=1.5):
    """A 4 A map of a model (box: its diameter plus 30 A), with its voxel size and origin."""
    from cryomath.atoms import map_from_model, read_atoms

    volume, origin = map_from_model(read_atoms(DATA / "map_model" / f"{name}.pdb"), voxel, 4.0)
    return volume, voxel, origin


def _haemoglobin_two_fold():
    """5ME2's own molecular 2-fold (chains A, B onto C, D), from the model by Kabsch."""
    import gemmi

    structure = gemmi.read_structure(str(DATA / "map_model" / "5me2.pdb"))
    chains = {c.name: [a.pos.tolist() for r in c for a in r] for c in structure[0]}
    source = torch.tensor(chains["A"] + chains["B"] + chains["C"] + chains["D"])
    target = torch.tensor(chains["C"] + chains["D"] + chains["A"] + chains["B"])
    rotation, shift = so3.kabsch(source.double(), target.double())
    assert (
        abs(math.degrees(float(so3.geodesic_distance(rotation, torch.eye(3).double()))) - 180) < 1
    )
    return rotation, shift


def _band_limited_noise(volume, voxel, snr, generator):
    """Gaussian noise low-passed to 4 A, scaled to ``var(volume) / var(noise) = snr`` over the
    box (docs/conventions.md's SNR)."""
    from cryomath.fourier.fft import fft_nd, ifft_nd
    from cryomath.fourier.grids import fftfreq_grid

    white = torch.randn(volume.shape, generator=generator, dtype=volume.dtype)
    k = fftfreq_grid(volume.shape, rfft=True, dtype=volume.dtype) / voxel
    noise = ifft_nd(fft_nd(white, 3) * ((k * k).sum(-1) <= 1 / 16), volume.shape)
    return noise * torch.sqrt(volume.var() / snr / noise.var())


@pytest.mark.parametrize("name", ["5me2", "6vyb_Ndom"])
def test_self_alignment_of_10_random_poses_clean_and_at_snr_1(name):
    volume, voxel, origin = _simulated_map(name)
    centre = torch.as_tensor(origin + (volume.shape[-1] // 2) * voxel)
    # haemoglobin (a2b2) is two-fold symmetric: a fit onto its mate is as right as the truth
    mates = [(torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))]
    if name == "5me2":
        mates.append(_haemoglobin_two_fold())
    clean, noisy = [], []
    for seed in range(10):
        generator = torch.Generator().manual_seed(seed)
        rotation = so3.random_rotations(1, seed)[0]
        offset = torch.randn(3, generator=generator, dtype=torch.float64) * 5
        translation = centre - rotation @ centre + offset
        query = _moved_copy(volume, voxel, origin, rotation, translation)
        for errors, (reference, moved) in (
            (clean, (volume, query)),
            (noisy, (
                volume + _band_limited_noise(volume, voxel, 1.0, generator),
                query + _band_limited_noise(query, voxel, 1.0, generator),
            )),
        ):  # fmt: skip
            best = align_maps(reference, voxel, origin, moved, voxel, origin)[0]
            # x_ref = S (R x + T) + s is the same fit seen through the symmetry S
            errors.append(min(
                (_angle_degrees(best.rotation_matrix, s @ rotation),
                 float((best.translation_angstrom - (s @ translation + t)).norm()))
                for s, t in mates
            ))  # fmt: skip
    clean, noisy = np.array(clean), np.array(noisy)
    # measured with 20 poses: clean 20/20 for both (median <= 0.0005 deg, 0.002 A); SNR 1: 20/20
    # in the basin for both (5ME2 counted modulo its 2-fold: 4 of its 20 noisy fits on the mate)
    assert int(((clean[:, 0] < 2) & (clean[:, 1] < 1)).sum()) == 10
    assert int(((noisy[:, 0] < 30) & (noisy[:, 1] < 10)).sum()) >= 9


def test_symmetry_makes_mates_one_fit():
    # a D2-symmetrised map (RELION's setting, about the box centre) and a moved copy: with
    # symmetry="D2" the four mates of the truth are one fit; in C1 they come back four times
    volume, voxel, origin = _simulated_map("6vyb_Ndom", voxel=2.0)
    n = volume.shape[-1]
    centre = torch.as_tensor(origin + (n // 2) * voxel)
    group = so3.point_group("D2")
    reference = sum(
        transform_map(volume, voxel, origin, g, centre - g @ centre, volume.shape, voxel, origin)
        for g in group
    ) / len(group)
    rotation = so3.random_rotations(1, 5)[0]
    translation = centre - rotation @ centre + torch.tensor([3.0, -2.0, 1.0], dtype=torch.float64)
    query = _moved_copy(reference, voxel, origin, rotation, translation)
    plain = align_maps(reference, voxel, origin, query, voxel, origin)
    symmetric = align_maps(reference, voxel, origin, query, voxel, origin, symmetry="D2")

    def truth_error(fit):
        return min(
            _angle_degrees(fit.rotation_matrix, g @ rotation)
            + float((fit.translation_angstrom - (g @ translation + centre - g @ centre)).norm())
            for g in group
        )

    assert truth_error(symmetric[0]) < 0.1
    near_truth = [f for f in plain if truth_error(f) < 1.0]
    assert len(near_truth) == 4  # the truth and its three mates, each refined
    assert sum(truth_error(f) < 1.0 for f in symmetric) == 1


def test_a_subunit_fits_into_the_whole_globally_and_locally():
    from dataclasses import replace

    from cryomath.atoms import map_from_model, read_atoms

    atoms = read_atoms(DATA / "map_model" / "5me2.pdb")
    voxel = 1.5
    whole, origin = map_from_model(atoms, voxel, 4.0)
    chain_a = replace(  # 5ME2's chain A: its first 1057 atoms
        atoms, **{f: getattr(atoms, f)[:1057] for f in
                  ("positions_angstrom", "elements", "bfactors_angstrom2", "occupancies")},
    )  # fmt: skip
    part, part_origin = map_from_model(chain_a, voxel, 4.0)
    # the subunit's own map overlays the whole in model coordinates: the truth is the identity
    # (or the two-fold that puts chain A on chain C)
    mates = [(torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))]
    mates.append(_haemoglobin_two_fold())
    fits = align_maps(whole, voxel, origin, part, voxel, part_origin)
    errors = [
        (
            _angle_degrees(fits[0].rotation_matrix, r),
            float((fits[0].translation_angstrom - t).norm()),
        )
        for r, t in mates
    ]
    assert min(errors)[0] < 1 and min(errors)[1] < 1
    # local: from 12 degrees (about the subunit's centre) and 5 A off chain A's pose, within
    # 20 degrees and 10 A
    centre = torch.as_tensor(part_origin + (part.shape[-1] // 2) * voxel)
    start_r = so3.exp_map(torch.tensor([0.0, 0.21, 0.0], dtype=torch.float64))
    start_t = centre - start_r @ centre + torch.tensor([3.0, -4.0, 0.0], dtype=torch.float64)
    local = align_maps(
        whole, voxel, origin, part, voxel, part_origin, around=(start_r, start_t),
        angle_limit_degrees=20, translation_radius_angstrom=10,
    )  # fmt: skip
    assert _angle_degrees(local[0].rotation_matrix, torch.eye(3, dtype=torch.float64)) < 1
    assert float(local[0].translation_angstrom.norm()) < 1
    with pytest.raises(InvalidInputError, match="part into a whole"):
        align_maps(part, voxel, part_origin, whole, voxel, origin, around=(start_r, start_t))


def test_align_a_model_into_emd_3488_with_and_without_its_two_fold(tmp_path, capsys):
    import gemmi

    from cryomath.fitting.refine import sample_map

    emd, model = DATA / "map_model" / "emd_3488.mrc", DATA / "map_model" / "5me2.pdb"
    args = ["align-maps", str(emd), str(model), "--resolution", "4", "--json"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr()[0])["models"]
    out = tmp_path / "fit"
    assert main([*args, "--sym", "C2", "--out", str(out), "--vectors"]) == 0
    symmetric = json.loads(capsys.readouterr()[0])["models"]
    # EMD-3488 is C2 about z through its box centre: in C1 the deposited pose (identity) and
    # its mate come back as two fits of equal correlation, in C2 as one
    assert len(plain) == 2 and len(symmetric) == 1
    angles = sorted(
        _angle_degrees(
            torch.tensor(m["rotation_matrix"], dtype=torch.float64), torch.eye(3).double()
        )
        for m in plain
    )
    assert angles[0] < 3 and angles[1] > 177
    assert abs(plain[0]["correlation"] - plain[1]["correlation"]) < 0.01
    # the moved model overlays the map at least as well as the deposited model (measured:
    # mean density at the atoms 0.188 against 0.177)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, info = read_mrc(emd, np.float64)
    volume = torch.from_numpy(data)

    def density_at_atoms(path):
        structure = gemmi.read_structure(str(path))
        points = torch.tensor([a.pos.tolist() for r in structure[0][0] for a in r])
        return float(sample_map(volume, 1.05, info.origin_angstrom, points.double()).mean())

    deposited, fitted = density_at_atoms(model), density_at_atoms(out / "query_fitted.pdb")
    assert fitted >= deposited
    # the ChimeraX script carries the same matrix as fits.json
    matrix = (out / "chimerax.cxc").read_text().split("view matrix models #2,")[1].split()[0]
    values = np.array([float(v) for v in matrix.split(",")]).reshape(3, 4)
    best = json.loads((out / "fits.json").read_text())["models"][0]
    np.testing.assert_allclose(values[:, :3], best["rotation_matrix"], atol=1e-5)
    np.testing.assert_allclose(values[:, 3], best["translation_angstrom"], atol=1e-5)
    vectors = gemmi.read_structure(str(out / "reference_vectors.pdb"))[0][0]
    arrow = vectors[0]
    assert len(vectors) > 50 and arrow["CA"][0].pos.dist(arrow["CB"][0].pos) == pytest.approx(
        3.5, rel=1e-3
    )
    # --local needs a pose; bad pose text; an existing output without --force
    assert main(["align-maps", str(emd), str(model), "--local"]) == 1
    assert main(["align-maps", str(emd), str(model), "--local", "--around", "1,2"]) == 1
    assert main([*args, "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr()[1]


def test_search_maps_ranks_the_related_map_first(tmp_path, capsys):
    folder = tmp_path / "maps"
    folder.mkdir()
    for path in (
        DATA / "map_model" / "emd_3488.mrc",
        DATA / "map_model" / "1ake_molmap45.mrc",
        DATA / "map_model" / "emd_21457_seg.mrc",
    ):
        (folder / path.name).symlink_to(path)
    (folder / "broken.mrc").write_text("not a map")
    query = DATA / "map_model" / "5me2.pdb"
    args = ["search-maps", str(query), str(folder), "--resolution", "4", "--out", str(tmp_path)]
    assert main([*args, "--json"]) == 0
    ranking = json.loads(capsys.readouterr()[0])["ranking"]
    assert Path(ranking[0]["map"]).name == "emd_3488.mrc"
    # measured: 14.6 against 1.8 and 0.3
    assert ranking[0]["normalized_z_score"] > ranking[1]["normalized_z_score"] + 5
    assert "not a readable MRC" in ranking[-1]["error"]
    assert json.loads((tmp_path / "ranking.json").read_text())["ranking"] == ranking


def test_a_mirrored_map_is_reported_as_the_opposite_hand(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, info = read_mrc(DATA / "map_model" / "emd_3488.mrc", np.float32)
    mirrored = tmp_path / "mirrored.mrc"
    write_mrc(mirrored, data[:, :, ::-1].copy(), info.voxel_size_angstrom, info.origin_angstrom)
    emd = str(DATA / "map_model" / "emd_3488.mrc")
    assert main(["align-maps", emd, str(mirrored), "--check-hand", "--json"]) == 0
    result = json.loads(capsys.readouterr()[0])
    # measured: mirrored fit normalised Z 32.5 against 3.3 for the best proper rotation
    assert result["hand"] == "opposite"
    assert result["mirrored_normalized_z_score"] > 5 * result["models"][0]["normalized_z_score"]


def test_bad_inputs_give_clear_errors(capsys):
    volume, voxel, origin = _simulated_map("6vyb_Ndom", voxel=3.0)
    with pytest.raises(InvalidInputError, match="no voxel of the query map is above the threshold"):
        align_maps(volume, voxel, origin, volume, voxel, origin, threshold_query=1e9)
    with pytest.raises(InvalidInputError, match="must be 3-D"):
        align_maps(volume[0], voxel, origin, volume, voxel, origin)
    with pytest.raises(InvalidInputError, match="not both"):
        align_maps(volume, voxel, origin, volume, voxel, origin, threshold_query=0.1,
                   mass_query_kda=20)  # fmt: skip
    with pytest.raises(InvalidInputError, match="NaN"):
        align_maps(volume, voxel, origin, volume * float("nan"), voxel, origin)
    with pytest.raises(InvalidInputError, match="unknown point group"):
        align_maps(volume, voxel, origin, volume, voxel, origin, symmetry="Q7")
    with pytest.raises(InvalidInputError, match="angle step"):
        align_maps(volume, voxel, origin, volume, voxel, origin, angle_step_degrees=0)
    emd = str(DATA / "map_model" / "emd_3488.mrc")
    assert main(["align-maps", emd, emd, "--threshold-query", "1e9"]) == 1
    assert capsys.readouterr()[1].strip().startswith("cryomath: error: no voxel of the query")


def test_a_query_with_constant_negative_corners_aligns(tmp_path, capsys):
    """A map rotated in a viewer without reshaping: its corners hold one negative constant.
    The fit is found (the identity, modulo EMD-3488's two-fold about z), with the automatic
    threshold and with an explicit one on the map as given; a threshold above the whole map
    says so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, info = read_mrc(DATA / "map_model" / "emd_3488.mrc", np.float32)
    n = data.shape[-1]
    axis = np.arange(n) - n // 2
    r = np.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    query = tmp_path / "corners.mrc"
    filled = np.where(r > n / 2, np.float32(-0.5), data)
    write_mrc(query, filled, info.voxel_size_angstrom, info.origin_angstrom)
    emd = str(DATA / "map_model" / "emd_3488.mrc")
    for extra in ([], ["--threshold-query", "0.05"]):
        assert main(["align-maps", emd, str(query), "--top", "2", "--json", *extra]) == 0
        best = json.loads(capsys.readouterr()[0])["models"][0]
        rotation = torch.tensor(best["rotation_matrix"], dtype=torch.float64)
        angle = _angle_degrees(rotation, torch.eye(3).double())
        assert min(angle, 180 - angle) < 1.0, extra  # measured < 0.01 degrees
        assert best["normalized_z_score"] > 10  # measured 33
    code = main(["align-maps", emd, str(query), "--threshold-query", "0.9"])
    _, err = capsys.readouterr()
    assert code == 1 and "no voxel of the query map is above the threshold 0.9" in err
    assert "maximum is 0.7" in err and err.count("\n") == 1
