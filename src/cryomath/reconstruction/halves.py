"""Gold-standard halves: the split of the particles, and the maps a reconstruction returns."""

from dataclasses import dataclass

import numpy as np
import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.shells import shell_sum
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


def fourier_average_fsc(half1, half2, voxel_size_angstrom: float) -> FSCCurve:
    """The gold-standard FSC of two halves' Fourier sums (``imaging.FourierAccumulator``), as
    RELION's auto-refine measures it (``compareTwoHalves``, ``getDownsampledAverage``): each
    half's unregularised average, its padded samples' data and weights summed into the nearest
    sample of the ``n``-voxel grid and divided, correlated per shell of that grid over the
    samples both halves filled. Unlike the FSC of the half maps it does not depend on their
    regularisation, and no real-space crop or mask carries the shared low resolutions into
    shells the data did not fill (where a map regularised to nearly zero holds only that leak,
    its FSC was 0.4-0.6 on independent halves)."""
    if half1.n != half2.n:
        raise InvalidInputError(f"the halves are sums for boxes of {half1.n} and {half2.n} voxels")
    n, n_shells = half1.n, half1.n // 2 + 1
    (a, filled_a), (b, filled_b) = (_average_on_grid(acc) for acc in (half1, half2))
    both = filled_a & filled_b
    a, b, shells = a[both], b[both], _grid_shells(n, a.device)[both]
    cross = shell_sum((a * b.conj()).real, shells, n_shells)
    power = shell_sum(a.abs() ** 2, shells, n_shells) * shell_sum(b.abs() ** 2, shells, n_shells)
    fsc = cross / power.sqrt().clamp(min=torch.finfo(cross.dtype).tiny)
    frequency = torch.arange(n_shells, dtype=cross.dtype, device=cross.device)
    counts = shell_sum(cross.new_ones(len(shells)), shells, n_shells)
    return FSCCurve(fsc, frequency / (n * voxel_size_angstrom), counts)


def _average_on_grid(acc) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample of the ``n``-grid's half space (flattened, indices -n..n, -n..n, 0..n): the
    average (the sums of the padded samples nearest it, data over weights) and whether
    anything was inserted there."""
    n, weights = acc.n, acc.weights.flatten()
    z, y, x = torch.round(acc.frequencies() * n).long().unbind(-1)
    side = 2 * n + 1
    index = (((z + n) * side + (y + n)) * (n + 1) + x).flatten()
    values = torch.cat([torch.view_as_real(acc.data.flatten()), weights[:, None]], 1)
    binned = values.new_zeros(side * side * (n + 1), 3).index_add_(0, index, values)
    filled = binned[:, 2] > 0
    average = torch.complex(binned[:, 0], binned[:, 1]) / torch.where(filled, binned[:, 2], 1)
    return average, filled


def _grid_shells(n: int, device) -> torch.Tensor:
    """The shell of every sample of :func:`_average_on_grid`'s layout."""
    k = torch.arange(-n, n + 1, dtype=torch.float64, device=device) ** 2
    last = torch.arange(n + 1, dtype=torch.float64, device=device) ** 2
    return torch.round((k[:, None, None] + k[None, :, None] + last).sqrt()).long().flatten()
