"""The study guide (docs/guide): every script runs and its own assertions hold."""

import runpy
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide"
SCRIPTS = sorted(GUIDE.glob("[0-9][0-9]_*.py"))


def test_the_guide_has_every_topic():
    assert len(SCRIPTS) == 12


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_guide_script_runs(script, tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOMATH_GUIDE_OUT", str(tmp_path))
    runpy.run_path(str(script), run_name="__main__")
