import json

import numpy as np
import pytest

from cryomath.cli import main
from tests.conftest import DATA

CS = DATA / "cryodrgn_cryosparc" / "cryosparc_P12_J24_001_particles.cs"


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json_for_map_star_and_cs(capsys):
    code, out, _ = _run(capsys, "info", DATA / "emdb_maps" / "EMD-3001.map", "--json")
    result = json.loads(out)
    assert code == 0 and result["axis_order"] == [3, 1, 2] and result["shape"] == [73, 25, 43]
    code, out, _ = _run(
        capsys, "info", DATA / "cryodrgn_relion" / "relion31.6opticsgroups.star", "--json"
    )
    result = json.loads(out)
    assert (
        result["particles"] == 139
        and result["optics_groups"] == 6
        and result["blocks"]["optics"]["rows"] == 6
    )
    code, out, _ = _run(capsys, "info", CS, "--json")
    result = json.loads(out)
    assert (
        result["particles"] == 2019
        and "alignments3D/pose" in result["fields"]
        and result["has_poses"]
    )
    code, out, _ = _run(capsys, "info", "--bundled", "--json")
    assert code == 0 and json.loads(out)["nstart"] == [-2, 0, 0]


def test_convert_and_output_protection(capsys, tmp_path):
    out = tmp_path / "p.star"
    code, stdout, _ = _run(capsys, "convert", CS, out, "--json")
    assert code == 0 and json.loads(stdout)["particles"] == 2019
    before = out.read_bytes()
    code, stdout, err = _run(capsys, "convert", CS, out)
    assert code == 1 and err.count("\n") == 1 and "exists" in err and "--force" in err
    assert out.read_bytes() == before
    code, _, _ = _run(capsys, "convert", DATA / "cryodrgn_relion" / "relion31.star", out, "--force")
    assert code == 0 and out.read_bytes() != before
    code, _, _ = _run(
        capsys, "convert", out, tmp_path / "pose.pkl", "--out-ctf", tmp_path / "ctf.pkl"
    )
    assert code == 0 and (tmp_path / "ctf.pkl").exists()
    code, _, _ = _run(
        capsys,
        "convert",
        tmp_path / "pose.pkl",
        tmp_path / "back.cs",
        "--in-ctf",
        tmp_path / "ctf.pkl",
    )
    assert code == 1  # cryoDRGN pickles carry no image paths, which a .cs needs: one clear line


def test_convert_gathers_the_images_of_many_stacks_into_one(capsys, tmp_path):
    import torch

    from cryomath.io import read_particles
    from cryomath.pipelines import simulate_dataset
    from cryomath.simulate import SimulationSettings

    volume = torch.zeros(24, 24, 24, dtype=torch.float64)
    volume[8:16, 10:14, 6:18] = 1.0
    simulate_dataset(volume, tmp_path / "sim", SimulationSettings(250, 2.0, shard_size=100))
    source = read_particles(tmp_path / "sim" / "particles.cs")
    assert len(set(source.image_paths)) == 3
    out, stack = tmp_path / "out" / "particles.star", tmp_path / "stacks" / "all.mrcs"
    code, stdout, _ = _run(capsys, "convert", tmp_path / "sim" / "particles.cs", out, "--stack",
                           stack, "--batch-size", "64", "--json")  # fmt: skip
    assert code == 0 and str(stack) in json.loads(stdout)["outputs"]
    gathered = read_particles(out)
    assert set(gathered.image_paths) == {"../stacks/all.mrcs"}
    np.testing.assert_array_equal(gathered.image_indices, np.arange(250))
    np.testing.assert_array_equal(
        gathered.read_images(np.arange(250)), source.read_images(np.arange(250))
    )
    np.testing.assert_allclose(gathered.rotations, source.rotations, atol=1e-6)
    code, _, err = _run(capsys, "convert", tmp_path / "sim" / "particles.cs", out, "--stack",
                        stack)  # fmt: skip
    assert code == 1 and "exists" in err  # nothing overwritten without --force
    # RELION's own projections (relion_project): to a .cs whose one stack holds them
    relion = DATA / "relion313_reference" / "proj_ctf_24.star"
    out_cs, stack = tmp_path / "cs" / "particles.cs", tmp_path / "cs" / "relion.mrcs"
    code, _, _ = _run(capsys, "convert", relion, out_cs, "--stack", stack, "--batch-size", "5")
    assert code == 0
    original, copied = read_particles(relion), read_particles(out_cs)
    np.testing.assert_array_equal(copied.read_images(np.arange(24)),
                                  original.read_images(np.arange(24)))  # fmt: skip
    np.testing.assert_allclose(copied.ctf.defocus_u_angstrom, original.ctf.defocus_u_angstrom)


@pytest.mark.parametrize("content", [b"", b"not an mrc file at all\n" * 50])
def test_bad_files_give_one_line_and_leave_nothing(capsys, tmp_path, content):
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(content)
    code, _, err = _run(capsys, "info", bad)
    assert code == 1 and err.startswith("cryomath: error: ") and err.count("\n") == 1
    truncated_star = tmp_path / "t.star"
    truncated_star.write_text((DATA / "cryodrgn_relion" / "relion31.star").read_text()[:-200])
    code, _, err = _run(capsys, "convert", truncated_star, tmp_path / "o.cs")
    assert code == 1 and "t.star:" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mrc", "t.star"]


def test_usage_errors_exit_nonzero(capsys):
    assert main(["convert"]) == 2
    assert main(["info", "x.unknown"]) == 1
    capsys.readouterr()
    np.testing.assert_equal(main(["--help"]), 0)


def test_the_plain_install_draws_figures():
    """``pip install cryomath`` without extras must run every command, and the commands write
    figures: matplotlib is a core requirement (it was an extra, and ``cryomath demo`` and
    ``reconstruct`` ended in a matplotlib traceback on the plain install)."""
    from importlib.metadata import requires

    core = [r for r in requires("cryomath") if "extra ==" not in r]
    assert any(r.startswith("matplotlib") for r in core), core
