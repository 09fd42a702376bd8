"""Particle formats against files and goldens written by RELION, cryoSPARC and cryoDRGN."""

import pickle

import mrcfile
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryomath.errors import (
    CryoSparcFormatError,
    InvalidInputError,
    MissingColumnsError,
    PickleFormatError,
    UnknownColumnError,
)
from cryomath.io import (
    read_cryodrgn,
    read_cryodrgn_ctf,
    read_cryosparc,
    read_particles,
    read_relion_star,
    write_particles,
)
from tests.conftest import DATA

CS = DATA / "cryodrgn_cryosparc" / "cryosparc_P12_J24_001_particles.cs"
PFCRT = DATA / "cryodrgn_relion" / "FinalRefinement-OriginalParticles-PfCRT.star"


def _golden(path):
    with open(path, "rb") as handle:
        return pickle.load(handle)


def test_cryosparc_poses_equal_cryodrgn_golden():
    table = read_cryosparc(CS)
    rotations, trans = _golden(DATA / "cryodrgn_cryosparc" / "pose.cs.pkl")
    np.testing.assert_allclose(table.rotations, rotations, atol=1e-6)
    box = table.image_size[:, None]
    np.testing.assert_allclose(
        table.origins_angstrom / table.pixel_size_angstrom[:, None] / box, trans, atol=1e-6
    )


def test_cryosparc_ctf_equals_cryodrgn_golden():
    table = read_cryosparc(CS)
    golden = _golden(DATA / "cryodrgn_cryosparc" / "ctf2.pkl")
    ctf, box, pixel = read_cryodrgn_ctf(DATA / "cryodrgn_cryosparc" / "ctf2.pkl")
    np.testing.assert_array_equal(box, table.image_size)
    np.testing.assert_allclose(pixel, table.pixel_size_angstrom, rtol=1e-6)
    for name, column in [
        ("defocus_u_angstrom", 2),
        ("defocus_v_angstrom", 3),
        ("defocus_angle_degrees", 4),
        ("voltage_kv", 5),
        ("spherical_aberration_mm", 6),
        ("amplitude_contrast", 7),
        ("phase_shift_degrees", 8),
    ]:
        np.testing.assert_allclose(
            getattr(table.ctf, name), golden[:, column], rtol=1e-5, atol=1e-4
        )
        np.testing.assert_allclose(getattr(ctf, name), golden[:, column], rtol=1e-6)


def test_relion30_star_poses_equal_cryodrgn_golden():
    table = read_relion_star(PFCRT)
    rotations, trans = _golden(DATA / "cryodrgn_relion" / "pose.star.pkl")
    np.testing.assert_allclose(table.pixel_size_angstrom, 1.035)  # detector 1.035 um at 10000x
    np.testing.assert_allclose(table.rotations, rotations, atol=1e-6)
    box = 300  # the golden was made with cryoDRGN -D 300
    np.testing.assert_allclose(
        table.origins_angstrom / table.pixel_size_angstrom[:, None] / box, trans, atol=1e-6
    )


def test_empiar_10076_star_and_cs_give_the_same_ctf():
    star = read_relion_star(DATA / "cryodrgn_empiar10076" / "empiar_10076_7.star")
    cs = read_cryosparc(DATA / "cryodrgn_empiar10076" / "empiar_10076_7.cs")
    for name in (
        "defocus_u_angstrom",
        "defocus_v_angstrom",
        "defocus_angle_degrees",
        "voltage_kv",
        "spherical_aberration_mm",
        "amplitude_contrast",
        "phase_shift_degrees",
    ):
        np.testing.assert_allclose(
            getattr(star.ctf, name), getattr(cs.ctf, name), rtol=2e-6, atol=1e-6
        )
    np.testing.assert_allclose(star.pixel_size_angstrom, cs.pixel_size_angstrom, rtol=2e-6)
    # both point at the same images; the MRC header's pixel size is 0, the metadata's is 1.31 A
    np.testing.assert_array_equal(star.read_images([0, 6]), cs.read_images([0, 6]))


def test_a_table_without_poses_keeps_everything_else_of_a_relion_star():
    """``without_poses``: RELION's own refinement STAR (PfCRT, via cryoDRGN) loses its poses
    and origins and keeps the rest: the same defoci, pixel sizes and image names."""
    star = read_relion_star(PFCRT)
    assert star.rotations is not None and star.origins_angstrom is not None
    blind = star.without_poses()
    assert blind.rotations is None and blind.origins_angstrom is None and blind.n == star.n
    np.testing.assert_array_equal(blind.ctf.defocus_u_angstrom, star.ctf.defocus_u_angstrom)
    np.testing.assert_array_equal(blind.pixel_size_angstrom, star.pixel_size_angstrom)
    assert list(blind.image_paths) == list(star.image_paths)


def test_relion31_optics_groups_are_merged_onto_particles():
    path = DATA / "cryodrgn_relion" / "relion31.6opticsgroups.star"
    table = read_relion_star(path)
    assert table.n == 139 and len(set(table.optics_group)) == 6
    by_group = {1: 1.25, 2: 1.24, 3: 1.25, 4: 1.25, 5: 1.24, 6: 1.25}
    np.testing.assert_allclose(table.pixel_size_angstrom, [by_group[g] for g in table.optics_group])
    np.testing.assert_allclose(table.ctf.spherical_aberration_mm[table.optics_group == 4], 2.6)
    assert (table.ctf.voltage_kv == 200).all()


def test_relion31_images_are_resolved_relative_to_the_star_file():
    table = read_relion_star(DATA / "cryodrgn_relion" / "relion31.star")
    with mrcfile.open(DATA / "cryodrgn_relion" / "relion31.mrcs", permissive=True) as m:
        expected = np.asarray(m.data)
    np.testing.assert_array_equal(
        table.read_images(np.arange(table.n)), expected[table.image_indices]
    )
    assert table.pixel_size_angstrom[0] == pytest.approx(2.806)


def test_relion5_star_reads():
    table = read_relion_star(DATA / "star_files" / "relion5.star")
    assert table.n == 17 and table.rotations is not None and table.ctf is not None


def _assert_tables_equal(a, b, rtol=0.0, atol=0.0):
    assert a.n == b.n
    np.testing.assert_allclose(a.rotations, b.rotations, atol=max(atol, 1e-12))
    np.testing.assert_allclose(a.origins_angstrom, b.origins_angstrom, rtol=rtol, atol=atol)
    for name in a.ctf.__dataclass_fields__:
        np.testing.assert_allclose(getattr(a.ctf, name), getattr(b.ctf, name), rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.pixel_size_angstrom, b.pixel_size_angstrom, rtol=rtol)
    np.testing.assert_array_equal(a.image_indices, b.image_indices)
    assert list(a.image_paths) == list(b.image_paths)


@pytest.mark.parametrize(
    "source",
    [
        DATA / "cryodrgn_relion" / "relion31.6opticsgroups.star",
        PFCRT,
        DATA / "star_files" / "relion5.star",
    ],
)
def test_star_round_trips_are_identical(source, tmp_path):
    table = read_particles(source)
    write_particles(table, tmp_path / "again.star")
    again = read_particles(tmp_path / "again.star")
    _assert_tables_equal(table, again)
    if table.optics_group is not None:
        np.testing.assert_array_equal(again.optics_group, table.optics_group)


def test_cs_round_trip_keeps_the_stored_fields(tmp_path):
    write_particles(read_cryosparc(CS), tmp_path / "again.cs")
    original, again = np.load(CS), np.load(tmp_path / "again.cs")
    for name in again.dtype.names:
        if name == "alignments3D/pose":  # cryoSPARC stores some angles > pi; ours are <= pi
            same = Rotation.from_rotvec(again[name]).inv() * Rotation.from_rotvec(original[name])
            assert same.magnitude().max() < 1e-6
        elif name in original.dtype.names and name not in (
            "blob/sign",
            "ctf/type",
            "ctf/scale_const",
        ):
            np.testing.assert_array_equal(again[name], original[name], err_msg=name)


def test_cs_to_star_to_cs_to_pkl_is_exact_up_to_float32(tmp_path):
    table = read_cryosparc(CS)
    write_particles(table, tmp_path / "p.star")
    write_particles(read_particles(tmp_path / "p.star"), tmp_path / "p.cs")
    write_particles(
        read_particles(tmp_path / "p.cs"), tmp_path / "pose.pkl", ctf_path=tmp_path / "ctf.pkl"
    )
    final = read_cryodrgn(tmp_path / "pose.pkl", tmp_path / "ctf.pkl")
    np.testing.assert_allclose(final.rotations, table.rotations, atol=1e-6)
    np.testing.assert_allclose(final.origins_angstrom, table.origins_angstrom, atol=1e-5)
    np.testing.assert_allclose(
        final.ctf.defocus_u_angstrom, table.ctf.defocus_u_angstrom, rtol=1e-6
    )
    star_table = read_particles(tmp_path / "p.star")
    np.testing.assert_array_equal(star_table.optics_group, table.optics_group)
    np.testing.assert_array_equal(star_table.random_subset, table.random_subset)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bad_particle_input_gives_specific_errors(tmp_path):
    header = "data_\nloop_\n_rlnImageName\n_rlnAngleRot\n_rlnAngleTilt\n_rlnAnglePsi\n"
    nan_angles = _write(tmp_path, "nan.star", header + "1@a.mrcs 10 nan 30\n")
    with pytest.raises(InvalidInputError, match="NaN"):
        read_relion_star(nan_angles)
    no_voltage = _write(
        tmp_path, "ctf.star", "data_\nloop_\n_rlnImageName\n_rlnDefocusU\n1@a.mrcs 10000\n"
    )
    with pytest.raises(MissingColumnsError, match="rlnVoltage"):
        read_relion_star(no_voltage)
    with pytest.raises(MissingColumnsError, match="no particle table"):
        read_relion_star(DATA / "star_files" / "postprocess.star")
    unknown = _write(tmp_path, "unknown.star", header + "_myScore\n1@a.mrcs 1 2 3 0.5\n")
    with pytest.raises(UnknownColumnError, match="myScore"):
        read_relion_star(unknown)
    assert "myScore" in read_relion_star(unknown, allow_unknown_columns=True).extra.columns
    typo = _write(
        tmp_path, "typo.star", header.replace("_rlnAnglePsi", "_rlnanglepsi") + "1@a.mrcs 1 2 3\n"
    )
    with pytest.raises(UnknownColumnError, match="did you mean _rlnAnglePsi"):
        read_relion_star(typo)
    empty = _write(tmp_path, "empty.star", header)
    with pytest.raises(InvalidInputError, match="empty"):
        read_relion_star(empty)
    full = np.load(CS)
    for drop in ("blob/path", "ctf/df1_A"):
        fields = [n for n in full.dtype.names if n != drop]
        with open(tmp_path / "missing.cs", "wb") as handle:
            np.save(handle, full[fields])
        with pytest.raises(CryoSparcFormatError, match=drop):
            read_cryosparc(tmp_path / "missing.cs")
    _write(tmp_path, "text.cs", "not numpy")
    with pytest.raises(CryoSparcFormatError):
        read_cryosparc(tmp_path / "text.cs")
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump(print, handle)  # a pickle that would call a function on load
    with pytest.raises(PickleFormatError, match="refusing"):
        read_cryodrgn(tmp_path / "evil.pkl")
    with pytest.raises(MissingColumnsError, match="box"):
        read_cryodrgn(DATA / "cryodrgn_cryosparc" / "pose.cs.pkl")


def test_exported_cryosparc_paths_lose_their_prefix_and_a_project_dir_moves_the_rest(tmp_path):
    """An exported ``.cs`` prefixes its paths with ``>`` (next to the .cs file); RELION cannot
    open ``>J1/...``, so the prefix is understood and dropped; ``project_dir`` is where the
    other paths start (cryoDRGN's --datadir)."""
    import torch

    from cryomath.io import read_particles, write_particles
    from cryomath.pipelines import simulate_dataset
    from cryomath.simulate import SimulationSettings

    sim = tmp_path / "J1"
    settings = SimulationSettings(n_particles=5, pixel_size_angstrom=2.0, snr=None)
    simulate_dataset(torch.rand(8, 8, 8, dtype=torch.float64), sim, settings)
    array = np.load(sim / "particles.cs")
    wider = [
        (name, "S64" if name == "blob/path" else array.dtype[name]) for name in array.dtype.names
    ]
    exported = np.empty(array.shape, dtype=wider)
    for name in array.dtype.names:
        exported[name] = array[name]
    exported["blob/path"] = [b">" + p for p in array["blob/path"]]
    with open(sim / "exported.cs", "wb") as f:
        np.save(f, exported)
    table = read_particles(sim / "exported.cs")
    assert set(table.image_paths) == {"particles_000.mrcs"}
    np.testing.assert_array_equal(table.read_images([0, 4]), read_particles(
        sim / "particles.star").read_images([0, 4]))  # fmt: skip
    write_particles(table, sim / "exported.star")
    names = (sim / "exported.star").read_text()
    assert "@particles_000.mrcs" in names and "@>" not in names
    # from the project folder: plain paths start there, exported ones stay next to the .cs
    (tmp_path / "moved.cs").write_bytes((sim / "particles.cs").read_bytes())
    moved = read_particles(tmp_path / "moved.cs", project_dir=sim)
    assert moved.read_images([1]).shape == (1, 8, 8)
    again = read_particles(sim / "exported.cs", project_dir=tmp_path)
    assert set(again.image_paths) == {"J1/particles_000.mrcs"} and again.n == 5
    with pytest.raises(InvalidInputError, match="not a folder"):
        read_particles(sim / "exported.cs", project_dir=tmp_path / "nowhere")
