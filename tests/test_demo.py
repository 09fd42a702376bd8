"""``cryomath demo``: a model it cannot read. (The demo itself, de novo on the bundled model at
issue 17 §2's size: tests/test_abinitio_chain.py.)"""

import pytest

from cryomath.cli import main


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
