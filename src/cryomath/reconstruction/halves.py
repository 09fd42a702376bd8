"""Gold-standard halves: the split of the particles, and the maps a reconstruction returns."""

from dataclasses import dataclass

import numpy as np
import torch

from cryomath.resolution import FSCCurve


@dataclass
class HalfMaps:
    """Two half maps ``(n, n, n)``, the full map, their FSC and the voxel size (Angstrom)."""

    half1: torch.Tensor
    half2: torch.Tensor
    full: torch.Tensor
    fsc: FSCCurve
    pixel_size_angstrom: float

    def to(self, device: str | torch.device) -> "HalfMaps":
        """A copy with the maps and the curve on ``device``."""
        return HalfMaps(
            self.half1.to(device), self.half2.to(device), self.full.to(device),
            self.fsc.to(device), self.pixel_size_angstrom,
        )  # fmt: skip


def half_subsets(table, split_seed: int = 0) -> np.ndarray:
    """``(table.n,)`` halves in {1, 2}: ``random_subset`` when it holds both (RELION's
    ``rlnRandomSubset``; cryoSPARC's split + 1), else a seeded random split into equal halves."""
    if table.random_subset is not None and set(np.unique(table.random_subset)) == {1, 2}:
        return np.asarray(table.random_subset)
    return np.random.default_rng(split_seed).permutation(table.n) % 2 + 1
