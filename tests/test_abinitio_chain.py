"""From images to a validated map (issue 17 §2): ``cryomath demo`` simulates particles of the
bundled model, runs ab initio from their images and CTFs alone, refines, and scores the result
against its own truth. The suite's longest test (about 3 minutes at one thread)."""

import json

import pytest

from cryomath.cli import main
from cryomath.demo import FIGURES, MAPS, STAGE_FIGURES, DemoSettings, run_demo
from cryomath.errors import OutputExistsError


def test_abinitio_then_refine_come_within_1_2x_of_what_the_true_poses_give(tmp_path, capsys):
    """Issue 17 §2, the demo's chain at the issue's size: 2,000 particles of the bundled
    N-domain (box 42 at 2 A, CTF, offsets of 2 A sd, SNR 0.1), ab initio from the images and
    CTFs alone, then refinement. The refined map's FSC 0.5 against the truth (in the hand it is
    found in) is at most 1.2x the resolution the true poses give. Measured at one thread
    (2026-12-07): 5.39 A against 5.00 A (1.08x), ab initio 12.5 A (other hand 24.4 A), median
    pose error 5.2 degrees, 126-164 s. The same chain on haemoglobin (box 48, ``cryomath demo
    --model 5me2.pdb --n 2000 --snr 0.1``: 4.94 A against 4.42 A, 1.12x, 158-209 s) is
    measured in bench/RESULTS.md, not here: with it the suite took 10 min 1 s in a fresh clone
    (stop 55), over the guide's 10 minutes. Also the demo's files, the hand, and no
    overwrite."""
    settings = DemoSettings(n_particles=2000, snr=0.1)
    s = run_demo(tmp_path, settings)
    for name in (*FIGURES, *MAPS, *STAGE_FIGURES, "report.md", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    known = s["known_poses_vs_truth_fsc_05_angstrom"]
    refined = s["refined_vs_truth_fsc_05_angstrom"]
    assert known < 6.0 and refined <= 1.2 * known
    # ab initio: one hand is the truth's (a sphere of the right size crosses at about 24 A)
    start = s["abinitio_vs_truth_fsc_05_angstrom"]
    assert start <= 15.0 and s["abinitio_other_hand_fsc_05_angstrom"] > 1.5 * start
    assert refined < 0.8 * start and s["refined_other_hand_fsc_05_angstrom"] > 3 * refined
    assert s["median_pose_error_degrees"] < 7.0
    assert json.loads((tmp_path / "summary.json").read_text())["particles"] == 2000
    with pytest.raises(OutputExistsError):
        run_demo(tmp_path, settings)
    assert main(["demo", "--out", str(tmp_path), "--json"]) == 1
    assert "exists" in capsys.readouterr()[1]
