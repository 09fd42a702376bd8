"""Global search: for every rotation of a uniform SO(3) sample, rotate the query's vector field
(trilinear resampling about the box centre, vectors rotated too) and score every translation at
once by FFT cross-correlation. DOT score (VESPER): the sum over grid points of the dot products
of the reference and the moved query vectors (unit vectors: the count of co-occupied points,
weighted by agreement). Boxes are zero-padded to twice their size, so no translation wraps.

Convention (as VESPER): ``x_ref = R x_query + T`` in each map's own coordinates (Angstrom).
"""

import ctypes
import ctypes.util
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError
from cryomath.fourier.grids import grid_sample_coordinates
from cryomath.so3.metrics import geodesic_distance


def _release_freed_memory() -> None:
    """glibc keeps the freed FFT buffers of thousands of batches on its heap (20 GB for 36,864
    rotations); ``malloc_trim`` hands them back (0.43 GB). No-op off glibc."""
    name = ctypes.util.find_library("c")
    if name:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
        if trim is not None:
            trim(0)


@dataclass
class SearchResult:
    """The distinct best solutions, and the best score of every rotation of the sample."""

    solutions: list
    rotation_scores: torch.Tensor


@dataclass
class Solution:
    rotation: torch.Tensor  # (3, 3): x_ref = R x_query + T, about the box centres
    shift_voxels: torch.Tensor  # (3,) (x, y, z) in coarse voxels, after rotation about the centre
    score: float


def rotate_field(
    vectors: torch.Tensor, rotations: torch.Tensor, vector: bool = True
) -> torch.Tensor:
    """``(C, n, n, n)`` field -> ``(P, C, n, n, n)``: ``v'(r) = R v(R^T r)`` about the centre
    voxel ``n // 2`` (``vector=False``: scalar channels, ``v'(r) = v(R^T r)``)."""
    n = vectors.shape[-1]
    axis = torch.arange(n, dtype=vectors.dtype, device=vectors.device) - n // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    r = torch.stack([x, y, z], -1)  # (n, n, n, 3)
    source = torch.einsum("zyxj,pji->pzyxi", r, rotations)  # R^T r as row vectors: r^T R
    grid = grid_sample_coordinates(source + n // 2, vectors.shape[-3:])
    sampled = F.grid_sample(
        vectors[None].expand(len(rotations), -1, -1, -1, -1), grid, mode="bilinear",
        padding_mode="zeros", align_corners=True,
    )  # fmt: skip
    if not vector:
        return sampled
    return torch.einsum("pij,pjzyx->pizyx", rotations, sampled)


_DIMS = (-3, -2, -1)


def translation_scores(
    reference: torch.Tensor, moving: torch.Tensor, reference_spectrum: torch.Tensor | None = None
) -> torch.Tensor:
    """``score[t] = sum_r <ref(r), mov(r - t)>`` for ``(C, n, n, n)`` and ``(P, C, n, n, n)``
    fields over cyclic shifts of the (padded) box: ``(P, n, n, n)``, shift ``t`` at index ``t``
    (negative shifts wrap to the end). ``reference_spectrum``: ``rfftn(reference)``, when the
    caller scores many batches against one reference."""
    if reference_spectrum is None:
        reference_spectrum = torch.fft.rfftn(reference, dim=_DIMS)
    product = reference_spectrum * torch.fft.rfftn(moving, dim=_DIMS).conj()
    return torch.fft.irfftn(product.sum(-4), s=tuple(reference.shape[-3:]), dim=_DIMS)


def _pad(field: torch.Tensor) -> torch.Tensor:
    n = field.shape[-1]
    before = n // 2
    return F.pad(field, (before, n - before) * 3)


def global_search(
    reference: torch.Tensor,
    query: torch.Tensor,
    rotations: torch.Tensor,
    top: int = 10,
    distinct_angle_rad: float = 0.3,
    batch: int = 16,
    vector: bool = True,
) -> SearchResult:
    """Best distinct solutions for ``(C, n, n, n)`` fields of the same coarse box: density
    vectors (``vector=True``) or scalar channels (distinct: more than ``distinct_angle_rad``
    apart in rotation, or more than 2 voxels in translation)."""
    if reference.shape != query.shape:
        raise InvalidInputError("reference and query fields must share one coarse box")
    ref = _pad(reference)
    ref_spectrum = torch.fft.rfftn(ref, dim=_DIMS)  # once, not per batch
    size = ref.shape[-1]
    best_scores, best_shifts = [], []
    for start in range(0, len(rotations), batch):
        if start and start % (64 * batch) == 0:
            _release_freed_memory()
        moved = _pad(rotate_field(query, rotations[start : start + batch], vector))
        scores = translation_scores(ref, moved, ref_spectrum).flatten(1)
        value, index = scores.max(-1)
        z, y, x = index // (size * size), (index // size) % size, index % size
        shift = torch.stack([x, y, z], -1)
        shift = torch.where(shift > size // 2, shift - size, shift)
        best_scores.append(value)
        best_shifts.append(shift)
    scores, shifts = torch.cat(best_scores), torch.cat(best_shifts)
    candidates = [
        Solution(rotations[i], shifts[i].to(rotations.dtype), float(scores[i]))
        for i in scores.argsort(descending=True)[: 50 * top].tolist()
    ]
    chosen = distinct(candidates, top, distinct_angle_rad)
    return SearchResult(chosen, scores)


def distinct(
    solutions: list[Solution], top: int, angle_rad: float = 0.3, shift_voxels: float = 2.0
) -> list[Solution]:
    """The best ``top`` solutions, skipping any within ``angle_rad`` and ``shift_voxels`` of a
    better one (solutions are taken best score first)."""
    chosen: list[Solution] = []
    for candidate in sorted(solutions, key=lambda s: -s.score):
        duplicate = any(
            float(geodesic_distance(c.rotation, candidate.rotation)) < angle_rad
            and float((c.shift_voxels - candidate.shift_voxels).norm()) < shift_voxels
            for c in chosen
        )
        if not duplicate:
            chosen.append(candidate)
        if len(chosen) == top:
            break
    return chosen
