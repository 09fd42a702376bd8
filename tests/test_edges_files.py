"""Bad files are refused with a message naming the file, line or column: STAR text in numeric
columns, duplicate columns, unusable pixel sizes, image indices beyond a stack; MRC voxel sizes
that are zero or NaN, complex data, all-zero maps and masks; truncated .cs files. A UTF-8
byte-order mark is tolerated."""

import mrcfile
import numpy as np
import pytest

from tests.edges import assert_one_line_failure, files, run


def _edited(tiny, tmp_path, old: str, new: str, name: str = "edited.star"):
    """The tiny STAR file with one text replacement, next to its stacks (same folder)."""
    star = tiny["star"]
    text = star.read_text()
    assert old in text
    path = star.parent / name
    path.write_text(text.replace(old, new, 1))
    return path


def _first_row_value(tiny, column: str) -> str:
    from cryomath.io import read_star

    return None if column is None else read_star(tiny["star"])["particles"][column].iloc[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("text", "column _rlnDefocusU of data_particles holds text where numbers are expected"),
        ("duplicate", "column _rlnDefocusU appears twice"),
        ("pixel 0", "the pixel size is 0 A; it must be a positive number"),
        ("beyond", "refers to image 9 of particles_000.mrcs, which holds 8 images"),
    ],
)
@pytest.mark.parametrize("command", ["reconstruct", "project", "convert"])
def test_bad_star_files_are_refused_naming_what_is_wrong(tiny, tmp_path, case, expected, command):
    text = tiny["star"].read_text()
    defocus = repr(float(_first_row_value(tiny, "rlnDefocusU")))
    edits = {
        "text": (defocus, "abc"),
        "duplicate": ("_rlnDefocusV #", "_rlnDefocusU #"),
        "pixel 0": ("1 2.0 16", "1 0.0 16"),
        "beyond": ("000001@particles_000.mrcs", "000009@particles_000.mrcs"),
    }
    old, new = edits[case]
    assert old in text, (case, text[:800])
    star = _edited(tiny, tmp_path, old, new, f"{case.replace(' ', '_')}.star")
    out = tmp_path / "out"
    argv = {
        "reconstruct": ["reconstruct", str(star), "--out", str(out)],
        "project": ["project", str(tiny["half1"]), "--poses", str(star), "--out", str(out / "p")],
        "convert": ["convert", str(star), str(out / "c.star"), "--stack", str(out / "s.mrcs")],
    }[command]
    outcome = run(argv)
    star.unlink()
    if case == "beyond" and command == "project":  # projection reads no images
        assert outcome.code == 0
        return
    assert expected in assert_one_line_failure(outcome)
    assert files(tmp_path) == set()


def test_a_byte_order_mark_is_tolerated(tiny, tmp_path):
    star = tiny["star"].parent / "bom.star"
    star.write_bytes(b"\xef\xbb\xbf" + tiny["star"].read_bytes())
    outcome = run(["rotations", "average", str(star), "--json"])
    plain = run(["rotations", "average", str(tiny["star"]), "--json"])
    star.unlink()
    assert outcome.code == 0 and outcome.stdout == plain.stdout


def _map(path, data, voxel, cell_x=None):
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel
        if cell_x is not None:
            m.header.cella.x = cell_x
    return path


@pytest.mark.parametrize("command", ["fsc", "postprocess", "align-maps", "simulate"])
def test_bad_maps_are_refused_naming_the_file(tiny, tmp_path, command):
    data = np.asarray(mrcfile.read(str(tiny["half1"])), dtype=np.float32)
    maps = tmp_path / "maps"
    maps.mkdir()
    cases = {
        "zero voxel": (_map(maps / "a.mrc", data, 0.0), "voxel size is 0 in the header"),
        "nan voxel": (_map(maps / "b.mrc", data, 2.0, np.nan), "voxel size in the header is NaN"),
        "complex": (_map(maps / "c.mrc", data.astype(np.complex64), 2.0), "complex data (mode 4)"),
        "all zeros": (_map(maps / "d.mrc", np.zeros_like(data), 2.0), "all zeros"),
    }
    before = files(tmp_path)
    for case, (path, expected) in cases.items():
        if command == "simulate" and case in ("zero voxel", "all zeros"):
            continue  # simulate takes --pixel-size for an unset one, and any density
        if command == "align-maps" and case == "all zeros":
            expected = "no voxel"
        other, out = str(tiny["half2"]), str(tmp_path / "out")
        argv = {
            "fsc": ["fsc", str(path), other],
            "postprocess": ["postprocess", str(path), other, "--out", out],
            "align-maps": ["align-maps", other, str(path), "--out", out],
            "simulate": ["simulate", str(path), "--n", "2", "--out", out],
        }[command]
        line = assert_one_line_failure(run(argv))
        assert expected in line, (case, line)
        assert files(tmp_path) == before


def test_an_all_zero_mask_is_refused(tiny, tmp_path):
    mask = _map(tmp_path / "mask.mrc", np.zeros((16, 16, 16), np.float32), 2.0)
    for argv in (["fsc", str(tiny["half1"]), str(tiny["half2"]), "--mask", str(mask)],
                 ["postprocess", str(tiny["half1"]), str(tiny["half2"]), "--mask", str(mask),
                  "--out", str(tmp_path / "pp")],
                 ["refine", str(tiny["star"]), "--reference", str(tiny["half1"]),
                  "--solvent-mask", str(mask), "--out", str(tmp_path / "ref")]):  # fmt: skip
        assert "the mask is all zeros" in assert_one_line_failure(run(argv))
    assert files(tmp_path) == {"mask.mrc"}


@pytest.mark.parametrize("command", ["info", "convert", "reconstruct"])
def test_a_truncated_cs_file_is_called_truncated(tiny, tmp_path, command):
    cut = tmp_path / "cut.cs"
    cut.write_bytes(tiny["cs"].read_bytes()[:900])
    argv = {
        "info": ["info", str(cut)],
        "convert": ["convert", str(cut), str(tmp_path / "o.star")],
        "reconstruct": ["reconstruct", str(cut), "--out", str(tmp_path / "r")],
    }[command]
    assert "cut.cs: the file is truncated" in assert_one_line_failure(run(argv))
    assert files(tmp_path) == {"cut.cs"}


def test_a_truncated_map_is_called_truncated(tiny, tmp_path):
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(tiny["half1"].read_bytes()[:2000])
    for argv in (["fsc", str(cut), str(tiny["half2"])], ["info", str(cut)],
                 ["simulate", str(cut), "--out", str(tmp_path / "s")]):  # fmt: skip
        assert "cut.mrc: the file is truncated" in assert_one_line_failure(run(argv))
    assert files(tmp_path) == {"cut.mrc"}


def test_symmetry_orders_beyond_any_assembly_are_refused():
    for name, expected in (("C0", "need an order"), ("C100000", "orders above 1000"),
                           ("Q2", "unknown point group")):  # fmt: skip
        outcome = run(["rotations", "distance", "1,2,3", "4,5,6", "--symmetry", name])
        assert expected in assert_one_line_failure(outcome)
