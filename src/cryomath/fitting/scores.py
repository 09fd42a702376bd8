"""Fields scored by the FFT translation search, and Z-scores.

Scores (all sums over the coarse box, for every translation at once):
- ``dot``: VESPER's: the sum of dot products of the unit density vectors;
- ``overlap``: the number of co-occupied voxels (above the thresholds), divided by the smaller
  occupied volume;
- ``cc``: the correlation of the thresholded densities, divided by the product of their norms;
- ``pcc``: the same about the mean of each map over its occupied voxels;
- ``laplacian``: ``cc`` of the Laplacian-filtered densities (edges; Chacon & Wriggers 2002).
The normalisations are constants of the two maps, so they rank translations and rotations like
the raw sums and make scores comparable between pairs.

Z-scores: raw ``(s - mean) / std`` over the best score of every rotation, and VESPER's
normalised one: the mean and population standard deviation of the largest single-linkage
cluster of those scores cut at 0.2 x (max - min).
"""

import itertools

import torch

from cryomath.errors import InvalidInputError
from cryomath.fitting.preprocess import density_vectors
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid

SCORES = ("dot", "overlap", "cc", "pcc", "laplacian")


def score_field(
    volume: torch.Tensor,
    voxel_size_angstrom: float,
    threshold: float,
    score: str,
    bandwidth_angstrom: float,
) -> tuple[torch.Tensor, bool, float]:
    """``(field (C, n, n, n), is_vector, norm)`` for one map and one score kind."""
    occupied = volume > threshold
    if not bool(occupied.any()):
        raise InvalidInputError(f"no voxel above the threshold {threshold:g}: the map is empty")
    if score == "dot":
        field = density_vectors(volume, voxel_size_angstrom, threshold, bandwidth_angstrom)
        return field, True, 1.0
    if score == "overlap":
        field = occupied.to(volume.dtype)
        return field[None], False, float(field.sum()) ** 0.5
    values = torch.where(occupied, volume, 0.0)
    if score == "pcc":
        values = torch.where(occupied, volume - volume[occupied].mean(), 0.0)
    elif score == "laplacian":
        shape = tuple(volume.shape)
        k2 = (fftfreq_grid(shape, rfft=True, dtype=volume.dtype, device=volume.device) ** 2).sum(-1)
        values = ifft_nd(fft_nd(values, 3, rfft=True) * k2, shape, rfft=True)
    elif score != "cc":
        raise InvalidInputError(f"unknown score {score!r}; one of {SCORES}")
    return values[None], False, float(torch.linalg.vector_norm(values))


def z_scores(
    rotation_scores: torch.Tensor, scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(raw z, normalised z)`` of ``scores`` against the per-rotation best scores."""
    all_scores = rotation_scores.double()
    raw = (scores - all_scores.mean()) / all_scores.std(unbiased=False).clamp(min=1e-30)
    ordered, _ = all_scores.sort()
    cut = 0.2 * float(ordered[-1] - ordered[0])
    breaks = ((ordered[1:] - ordered[:-1]) > cut).nonzero().flatten().tolist()
    bounds = [0, *[b + 1 for b in breaks], len(ordered)]
    largest = max(itertools.pairwise(bounds), key=lambda ab: ab[1] - ab[0])
    cluster = ordered[largest[0] : largest[1]]
    normalized = (scores - cluster.mean()) / cluster.std(unbiased=False).clamp(min=1e-30)
    return raw, normalized
