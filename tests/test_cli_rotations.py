"""``cryomath rotations``: convert, grid, average, distance, with --json and real files."""

import json
from pathlib import Path

import numpy as np
import pytest
import starfile

from cryomath.cli import main
from tests.conftest import DATA, REFERENCE

VECTORS = json.loads((REFERENCE / "euler-test-vectors.json").read_text())


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_numbers_reproduces_the_reference_vectors(capsys):
    case = VECTORS[1]
    code, out, _ = _run(
        capsys,
        "rotations",
        "convert",
        "--from",
        "relion",
        "--to",
        "cryosparc",
        "--json",
        "--",
        *case["relion_in(rot,tilt,psi)"],
    )
    assert code == 0
    result = json.loads(out)
    np.testing.assert_allclose(
        result["rotations"][0], case["cryoSPARC pose = rotvec(A^T) [rad]"], atol=1e-7
    )
    code, out, _ = _run(
        capsys,
        "rotations",
        "convert",
        "--from",
        "relion",
        "--to",
        "eman",
        "--json",
        "--",
        30,
        60,
        120,
        -45,
        90,
        10,
    )
    rows = json.loads(out)["rotations"]
    np.testing.assert_allclose(rows, [[120, 60, 30], [45, 90, -80]], atol=1e-9)


def test_convert_a_particle_file_to_a_text_file(capsys, tmp_path):
    out = tmp_path / "poses.txt"
    cs = DATA / "cryodrgn_cryosparc" / "cryosparc_P12_J24_001_particles.cs"
    code, _, _ = _run(
        capsys, "rotations", "convert", "--file", cs, "--to", "cryosparc", "--out", out
    )
    assert code == 0
    written = np.loadtxt(out)
    stored = np.load(cs)["alignments3D/pose"]
    # the same rotation: our vectors have angle <= pi, cryoSPARC's may exceed it
    from scipy.spatial.transform import Rotation

    diff = Rotation.from_rotvec(written).inv() * Rotation.from_rotvec(stored.astype(np.float64))
    assert diff.magnitude().max() < 1e-5
    code, _, err = _run(capsys, "rotations", "convert", "--file", cs, "--out", out)
    assert code == 1 and "exists" in err


def test_grid_writes_star_and_png(capsys, tmp_path):
    star, png = tmp_path / "grid.star", tmp_path / "grid.png"
    code, out, _ = _run(
        capsys,
        "rotations",
        "grid",
        "--method",
        "healpix",
        "--order",
        "2",
        "--out",
        star,
        "--plot",
        png,
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and result["count"] == 4608 and result["nominal_step_degrees"] == 15.0
    assert 0.75 * 15 < result["covering_radius_degrees"] < 15
    table = starfile.read(star)
    assert len(table) == 4608 and list(table.columns) == [
        "rlnAngleRot",
        "rlnAngleTilt",
        "rlnAnglePsi",
    ]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = _run(
        capsys,
        "rotations",
        "grid",
        "--method",
        "even-angles",
        "--delta",
        "15",
        "--symmetry",
        "C4",
        "--json",
    )
    assert code == 0 and json.loads(out)["count"] > 40


def test_average_and_distance(capsys, tmp_path):
    text = tmp_path / "angles.txt"
    text.write_text("# rot tilt psi\n10 20 30\n10 20 40\n10 20 50\n")
    code, out, _ = _run(capsys, "rotations", "average", text, "--method", "karcher", "--json")
    result = json.loads(out)
    assert code == 0
    np.testing.assert_allclose(result["average"], [10, 20, 40], atol=1e-8)
    assert result["max_angle_degrees"] == pytest.approx(10.0, abs=1e-9)
    code, out, _ = _run(capsys, "rotations", "distance", "--json", "--", "30,60,120", "30,60,125")
    assert json.loads(out)["angles_degrees"][0] == pytest.approx(5.0, abs=1e-9)
    # a D2 mate is at distance 0 modulo D2
    code, out, _ = _run(
        capsys,
        "rotations",
        "distance",
        "--symmetry",
        "D2",
        "--json",
        "--",
        "30,60,120",
        "-150,60,120",
    )
    assert json.loads(out)["max_angle_degrees"] < 1e-9
    star = DATA / "cryodrgn_relion" / "relion31.star"
    code, out, _ = _run(capsys, "rotations", "distance", "--json", star, star)
    assert code == 0 and json.loads(out)["max_angle_degrees"] < 1e-6


def test_rotation_commands_fail_with_one_line(capsys):
    code, _, err = _run(capsys, "rotations", "convert", "--from", "nope", "--", 1, 2, 3)
    assert code == 1 and err.startswith("cryomath: error: unknown rotation convention")
    code, _, err = _run(capsys, "rotations", "convert", "--", 1, 2)
    assert code == 1 and "takes 3 numbers" in err
    code, _, err = _run(capsys, "rotations", "average", "not-a-file.txt")
    assert code == 1 and err.count("\n") == 1
    code, _, err = _run(capsys, "rotations", "grid", "--method", "cubic")
    assert code == 1 and "unknown grid method" in err


def test_expand_equals_relion_particle_symmetry_expand(capsys, tmp_path):
    from cryomath.io import read_relion_star

    here = Path(__file__).parent / "reference"
    out = tmp_path / "expanded.star"
    code, out_text, _ = _run(
        capsys,
        "rotations",
        "expand",
        here / "relion_expand_input.star",
        out,
        "--symmetry",
        "I1",
        "--json",
    )
    assert code == 0 and json.loads(out_text)["particles"] == 180
    ours = read_relion_star(out)
    relion = read_relion_star(here / "relion_expand_I1.star")
    np.testing.assert_allclose(ours.origins_angstrom, relion.origins_angstrom)
    assert list(ours.image_paths) == list(relion.image_paths)
    a = ours.rotations.reshape(3, 60, 3, 3)
    b = relion.rotations.reshape(3, 60, 3, 3)
    for i in range(3):  # the same poses per particle (operator order may differ)
        d = np.abs(a[i][:, None] - b[i][None]).max(axis=(2, 3))
        assert d.min(axis=1).max() < 1e-5 and d.min(axis=0).max() < 1e-5


def test_negative_numbers_are_values_without_a_double_dash(capsys):
    code, out, _ = _run(capsys, "rotations", "convert", "--from", "relion", "--to", "eman",
                        "30", "60", "-120", "--json")  # fmt: skip
    assert code == 0
    # EMAN: az = rot + 90, alt = tilt, phi = psi - 90 (mod 360): (120, 60, 150)
    np.testing.assert_allclose(json.loads(out)["rotations"], [[120.0, 60.0, 150.0]], atol=1e-8)
    code, out, _ = _run(capsys, "rotations", "distance", "-150,60,120", "30,60,120", "--json")
    assert code == 0 and json.loads(out)["angles_degrees"] == pytest.approx([180.0])
