"""``cryomath demo``: de novo on the bundled model, checked against its own truth."""

import json

import pytest

from cryomath.cli import main
from cryomath.demo import FIGURES, MAPS, STAGE_FIGURES, DemoSettings, run_demo
from cryomath.errors import OutputExistsError


def test_demo_goes_from_images_to_the_truth_in_its_hand(tmp_path, capsys):
    """A small demo (300 particles, 10 ab initio iterations, refinement to HEALPix order 3):
    measured 6.85 A with the true poses, ab initio 13.5 A (other hand 18.9), refined 9.1 A
    (other hand 21.6), median pose error 11.7 degrees, 13 % beyond 30."""
    settings = DemoSettings(n_particles=300, abinitio_iterations=10, max_healpix_order=3)
    s = run_demo(tmp_path, settings)
    for name in (*FIGURES, *MAPS, *STAGE_FIGURES, "report.md", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    known = s["known_poses_vs_truth_fsc_05_angstrom"]
    assert known < 8.0
    # ab initio: one hand is the truth's (a sphere of the right size crosses at about 24 A)
    start = s["abinitio_vs_truth_fsc_05_angstrom"]
    assert start <= 16.0 and s["abinitio_other_hand_fsc_05_angstrom"] > 1.3 * start
    # refinement improves on it, towards what the true poses give, in the hand reported
    refined = s["refined_vs_truth_fsc_05_angstrom"]
    assert refined < 0.8 * start and refined < 1.5 * known
    assert s["refined_other_hand_fsc_05_angstrom"] > 1.5 * refined
    assert s["median_pose_error_degrees"] < 15.0
    assert json.loads((tmp_path / "summary.json").read_text())["particles"] == 300
    with pytest.raises(OutputExistsError):
        run_demo(tmp_path, settings)
    assert main(["demo", "--out", str(tmp_path), "--json"]) == 1
    assert "exists" in capsys.readouterr()[1]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "no such file"), ("", "is a folder"), ("not a model\n", "no atoms")],
)
def test_a_model_the_demo_cannot_read_is_one_line_and_writes_nothing(
    tmp_path, capsys, content, expected
):
    """``--model``: a missing file, a folder or a file without atoms each get one line naming
    it, exit status 1, and no output folder (it is checked before anything is written)."""
    model = tmp_path / "model.pdb"
    if content == "":
        model.mkdir()
    elif content is not None:
        model.write_text(content)
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(model), "--n", "10", "--out", str(out)]) == 1
    error = capsys.readouterr()[1].strip()
    assert error.count("\n") == 0 and str(model) in error and expected in error
    assert not out.exists()
