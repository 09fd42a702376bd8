"""Global search: for every rotation of a uniform SO(3) sample, rotate the query's vector field
(trilinear resampling about the box centre, vectors rotated too) and score every translation at
once by FFT cross-correlation. DOT score (VESPER): the sum over grid points of the dot products
of the reference and the moved query vectors (unit vectors: the count of co-occupied points,
weighted by agreement).

Convention (as VESPER): ``x_ref = R x_query + T`` in each map's own coordinates (Angstrom).
"""

import ctypes
import ctypes.util
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError
from cryomath.fitting.fits import distinct
from cryomath.fourier.crop import crop_or_pad
from cryomath.fourier.grids import grid_sample_coordinates


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


def _fit_of(solution: Solution) -> tuple[torch.Tensor, torch.Tensor]:
    return solution.rotation, solution.shift_voxels


def _fast_size(n: int) -> int:
    """The smallest ``m >= n`` whose prime factors are 2, 3 and 5 (fast FFT lengths)."""
    m = max(n, 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _rfft_padded(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """``rfftn(x, s=size)`` over the last three axes, one axis at a time from x to z: rows that
    are all padding are never transformed (~1.6x faster for a small box in a large one)."""
    f = torch.fft.rfft(x, n=size[2], dim=-1)
    f = torch.fft.fft(f, n=size[1], dim=-2)
    return torch.fft.fft(f, n=size[0], dim=-3)


def _support(field: torch.Tensor) -> torch.Tensor:
    return field.abs().sum(0) > 0


def global_search(
    reference: torch.Tensor,
    query: torch.Tensor,
    rotations: torch.Tensor,
    top: int = 10,
    distinct_angle_rad: float = 0.3,
    batch: int = 32,
    vector: bool = True,
    symmetry: torch.Tensor | None = None,
    allowed_shift: tuple[torch.Tensor, float] | None = None,
) -> SearchResult:
    """Best distinct solutions for ``(C, n, n, n)`` fields of the same coarse box: density
    vectors (``vector=True``) or scalar channels (distinct: more than ``distinct_angle_rad``
    apart in rotation, or more than 2 voxels in translation; modulo the reference's point
    group ``symmetry (G, 3, 3)`` about the box centre when given). ``allowed_shift = (s0,
    radius)``: only shifts within ``radius`` of ``s0`` (``(x, y, z)`` coarse voxels) count.

    Only the occupied parts are transformed: the reference's bounding box, and the ball of
    the query's support about the centre (what any rotation of it can reach), both placed in
    an FFT box just large enough that no translation wraps onto another."""
    if reference.shape != query.shape:
        raise InvalidInputError("reference and query fields must share one coarse box")
    n = reference.shape[-1]
    c = n // 2
    occupied = _support(reference).nonzero()
    if not len(occupied) or not bool(_support(query).any()):
        raise InvalidInputError("a map has no occupied voxel on the coarse grid")
    lo, hi = occupied.min(0).values, occupied.max(0).values  # (z, y, x)
    ref = reference[:, lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
    axis = torch.arange(n, device=query.device) - c
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    radius2 = (x * x + y * y + z * z)[_support(query)].max()
    # a rotated voxel's trilinear footprint reaches sqrt(3) further from the centre
    h = math.floor(math.sqrt(int(radius2)) + math.sqrt(3))
    small = crop_or_pad(query, (2 * h + 1,) * 3)  # centre voxel c -> h
    size = tuple(_fast_size(int(e) + 2 * h) for e in (hi - lo + 1))  # linear, not cyclic
    dims = (-3, -2, -1)
    ref_spectrum = _rfft_padded(ref, size).conj()  # once, not per batch
    # scores[t] = sum_s moved(s + t) ref(s): query box voxel u lands on reference voxel
    # lo + u - t, i.e. on its rotated-about-centre position c - h + u plus lo - t + h - c
    index = torch.stack(torch.meshgrid(*(torch.arange(m) for m in size), indexing="ij"), -1)
    t = index.reshape(-1, 3).to(lo.device)
    t = torch.where(t > 2 * h, t - torch.tensor(size, device=t.device), t)
    shift_of_index = (lo - t + h - c).flip(-1)  # (x, y, z) coarse voxels
    excluded = None
    if allowed_shift is not None:
        centre, radius = allowed_shift
        distance = torch.linalg.vector_norm(
            shift_of_index - torch.as_tensor(centre, device=shift_of_index.device), dim=-1
        )
        excluded = distance > radius
    best_scores, best_shifts = [], []
    for start in range(0, len(rotations), batch):
        if start and start % (64 * batch) == 0:
            _release_freed_memory()
        moved = rotate_field(small, rotations[start : start + batch].to(small), vector)
        spectrum = _rfft_padded(moved, size)
        scores = torch.fft.irfftn((spectrum * ref_spectrum).sum(1), s=size, dim=dims).flatten(1)
        if excluded is not None:
            scores = scores.masked_fill(excluded, -torch.inf)
        value, best = scores.max(-1)
        best_scores.append(value)
        best_shifts.append(shift_of_index[best])
    scores, shifts = torch.cat(best_scores), torch.cat(best_shifts)
    if not bool(torch.isfinite(scores).any()):
        raise InvalidInputError("no translation is allowed: the translation radius is too small")
    candidates = [
        Solution(rotations[i], shifts[i].to(rotations), float(scores[i]))
        for i in scores.argsort(descending=True)[: 50 * top].tolist()
    ]
    chosen = distinct(candidates, _fit_of, distinct_angle_rad, 2.0, operators=symmetry, top=top)
    return SearchResult(chosen, scores)
