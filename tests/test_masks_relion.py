"""``resolution.auto_mask`` against ``relion_mask_create`` (RELION 3.1.3, run by
tests/reference/make_relion_references.py): the same threshold, extension and soft edge give
RELION's mask voxel for voxel (Euclidean distances, the raised cosine at ``d < width``)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cryomath.io import read_mrc
from cryomath.resolution import auto_mask
from tests.reference.make_relion_references import MASK_CASES, mask_map

REFERENCE = Path(__file__).parent / "reference" / "mask_create"


@pytest.mark.parametrize("case", list(MASK_CASES))
def test_auto_mask_is_relions_mask_create(case):
    threshold, extend, edge = (float(v) for v in MASK_CASES[case])
    relion = read_mrc(REFERENCE / f"mask_{case}.mrc")[0]
    ours = auto_mask(mask_map().double(), threshold, extend, edge).numpy()
    assert 0 < (relion == 1).sum() < relion.size // 4  # a molecule, not the box
    assert ((relion > 0) & (relion < 1)).sum() > (relion == 1).sum() / 4  # a real soft edge
    np.testing.assert_allclose(ours, relion, atol=1e-6)


def test_auto_mask_keeps_dtype_and_device():
    volume = mask_map()  # float32
    mask = auto_mask(volume, 0.5, 3.0, 6.0)
    assert mask.dtype == torch.float32 and mask.device == volume.device
