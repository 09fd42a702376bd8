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
