"""``cryomath fsc``, ``reconstruct`` and ``postprocess`` on RELION's data."""

import json

import numpy as np
import starfile

from cryomath.cli import main
from cryomath.io import read_mrc
from tests.conftest import DATA

RELION = DATA / "relion313_reference"
HALF1, HALF2 = RELION / "halfmaps_600" / "half1.mrc", RELION / "halfmaps_600" / "half2.mrc"


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_fsc_command_json_and_plot(capsys, tmp_path):
    png = tmp_path / "fsc.png"
    code, out, _ = _run(capsys, "fsc", HALF1, HALF2, "--plot", png, "--json")
    result = json.loads(out)
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    assert abs(result["resolution_0143_angstrom"] - 6.7) < 0.2
    assert len(result["fsc"]) == len(result["spatial_frequency_per_angstrom"]) == 51
    assert result["resolution_05_angstrom"] > result["resolution_0143_angstrom"]
    local = tmp_path / "local.mrc"
    code, out, _ = _run(capsys, "fsc", HALF1, HALF2, "--local", local, "--json")
    assert code == 0 and read_mrc(local)[0].shape == (100, 100, 100)
    assert 4.0 < json.loads(out)["local_resolution_median_angstrom"] < 25.0
    code, out, _ = _run(capsys, "fsc", HALF1, HALF2, "--auto-mask", "--json")
    masked = json.loads(out)
    # a mask removes solvent noise: the corrected FSC reaches further than the unmasked one
    assert masked["resolution_0143_angstrom"] < result["resolution_0143_angstrom"]
    assert "fsc_phase_randomized" in masked


def test_reconstruct_and_postprocess_commands(capsys, tmp_path):
    out = tmp_path / "rec"
    code, text, _ = _run(capsys, "reconstruct", RELION / "emd3488_relion_ctf_noise_600.star",
                         "--out", out, "--halves", "--json")  # fmt: skip
    result = json.loads(text)
    assert code == 0 and abs(result["resolution_0143_angstrom"] - 6.7) < 0.35
    for name in ("full.mrc", "half1.mrc", "half2.mrc", "fsc.png", "fsc.star", "fsc.json"):
        assert (out / name).exists()
    table = starfile.read(out / "fsc.star")
    assert len(table) == 51 and "rlnFourierShellCorrelation" in table.columns
    full, info = read_mrc(out / "full.mrc")
    assert full.shape == (100, 100, 100) and abs(info.voxel_size_angstrom[0] - 1.05) < 1e-5
    post = tmp_path / "post"
    code, text, _ = _run(capsys, "postprocess", out / "half1.mrc", out / "half2.mrc", "--out",
                         post, "--bfactor", "-50", "--json")  # fmt: skip
    result = json.loads(text)
    assert code == 0 and result["bfactor_angstrom2"] == -50.0
    for name in ("postprocess.mrc", "fsc.png", "guinier.png"):
        assert (post / name).exists()


def test_bad_resolution_inputs(capsys, tmp_path):
    code, _, err = _run(capsys, "fsc", HALF1, DATA / "emdb_maps" / "EMD-3197.map")
    assert code == 1 and "shape" in err
    from cryomath.io import write_mrc

    other = tmp_path / "other.mrc"
    half, _ = read_mrc(HALF2)
    write_mrc(other, half, 2.0)
    code, _, err = _run(capsys, "fsc", HALF1, other)
    assert code == 1 and "voxel size" in err
    mask = tmp_path / "mask.mrc"
    write_mrc(mask, np.ones((10, 10, 10), np.float32), 1.05)
    code, _, err = _run(capsys, "fsc", HALF1, HALF2, "--mask", mask)
    assert code == 1 and "mask" in err
    empty = tmp_path / "empty.star"
    empty.write_text("data_particles\n\nloop_\n_rlnImageName #1\n_rlnAngleRot #2\n")
    code, _, err = _run(capsys, "reconstruct", empty, "--out", tmp_path / "r")
    assert code == 1 and err.startswith("cryomath: error:")


def test_simulate_and_reconstruct_on_the_ewald_sphere(capsys, tmp_path):
    """``simulate --ewald`` then ``reconstruct --ewald``: the command's map is the library's
    (``imaging.Ewald``) and it says which curvature it used; the options go together."""
    from cryomath.imaging import Ewald
    from cryomath.io import read_particles
    from cryomath.pipelines import reconstruct_particles

    sim = tmp_path / "sim"
    code, _, _ = _run(capsys, "simulate", DATA / "map_model" / "1uao.pdb", "--n", "40",
                      "--box-size", "24", "--pixel-size", "0.5", "--voltage", "100", "--ewald",
                      "--snr", "1", "--out", sim, "--json")  # fmt: skip
    assert code == 0
    star = sim / "particles.star"
    out = tmp_path / "rec"
    code, text, _ = _run(capsys, "reconstruct", star, "--ewald", "--reverse-curvature",
                         "--particle-diameter", "10", "--out", out, "--json")  # fmt: skip
    assert code == 0 and json.loads(text)["ewald"] == "reverse"
    expected = reconstruct_particles(read_particles(star), ewald=Ewald(-1, 10.0)).full
    assert np.allclose(read_mrc(out / "full.mrc")[0], expected.numpy(), atol=1e-5 * float(
        expected.abs().max()))  # fmt: skip
    code, _, err = _run(capsys, "reconstruct", star, "--reverse-curvature", "--out",
                        tmp_path / "bad")  # fmt: skip
    assert code == 1 and "go with --ewald" in err and len(err.strip().splitlines()) == 1
