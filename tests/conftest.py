from pathlib import Path

import pytest

# Real data written by other packages (read-only; see its README). CI clones the project with
# shared/ beside it; a missing folder is an error, not a skip.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REFERENCE = DATA.parent / "reference"


@pytest.fixture(scope="session")
def data() -> Path:
    assert DATA.is_dir(), f"test data not found at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Small inputs for every command (the edge-case tests): a 16^3 map of 1UAO at 2 A, eight
    particles simulated from it, their half maps, their 2-D classification, and a folder with
    one map."""
    from cryomath.cli import main

    root = tmp_path_factory.mktemp("tiny")
    model = DATA / "map_model" / "1uao.pdb"
    sim = root / "sim"
    args = ["--n", "8", "--box-size", "16", "--pixel-size", "2", "--out", str(sim)]
    assert main(["simulate", str(model), *args, "--snr", "1", "--json"]) == 0
    rec = root / "rec"
    assert main(["reconstruct", str(sim / "particles.star"), "--out", str(rec), "--halves",
                 "--json"]) == 0  # fmt: skip
    c2d = root / "c2d"
    assert main(["class2d", str(sim / "particles.star"), "--classes", "2", "--iterations", "1",
                 "--out", str(c2d), "--json"]) == 0  # fmt: skip
    folder = root / "maps"
    folder.mkdir()
    (folder / "half1.mrc").write_bytes((rec / "half1.mrc").read_bytes())
    return {
        "model": model,
        "star": sim / "particles.star",
        "cs": sim / "particles.cs",
        "stack": sim / "particles_000.mrcs",
        "half1": rec / "half1.mrc",
        "half2": rec / "half2.mrc",
        "maps": folder,
        "classified": c2d / "particles.star",
    }
