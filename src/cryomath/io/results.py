"""Result files, written atomically: JSON (summaries, fits, FSC curves) of plain Python values,
and arrays (``.npy``: latent coordinates, labels)."""

import json
import math
from pathlib import Path

import numpy as np

from cryomath.io.atomic import atomic_output


def plain(value):
    """``value`` with numpy arrays and scalars turned into lists and Python numbers, and NaN
    and infinities into None: strict JSON."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN or Infinity
    return value


def write_json(path: Path, result: dict, force: bool) -> None:
    """Write ``result`` as indented JSON, atomically."""
    with atomic_output(path, force) as tmp:
        tmp.write_text(json.dumps(plain(result), indent=2, allow_nan=False))


def write_array(path: Path, array: np.ndarray, force: bool) -> None:
    """Write ``array`` as a ``.npy`` file, atomically."""
    with atomic_output(path, force) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
