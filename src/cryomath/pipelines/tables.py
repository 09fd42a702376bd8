"""Operations on whole particle tables."""

import numpy as np
import torch

from cryomath.so3 import point_group, symmetry_expand


def expand_symmetry(table, symmetry: str):
    """Symmetry expansion (as ``relion_particle_symmetry_expand``): every particle once per
    operator g of the point group ``symmetry`` (RELION's setting), with pose ``A g``, in the
    order particle by particle; everything else copied."""
    table.require("rotations", purpose="symmetry expansion")
    group = point_group(symmetry)
    expanded = table.subset(np.repeat(np.arange(table.n), len(group)))
    poses = symmetry_expand(torch.from_numpy(table.rotations), group)
    expanded.rotations = poses.reshape(-1, 3, 3).numpy()
    return expanded
