"""Reconstruction with known poses: direct Fourier inversion and least squares (conjugate
gradients), streamed over particle batches (``imaging.iter_batches``) and over Dask workers."""

from cryomath.reconstruction.direct import (
    accumulate_halves,
    insert_particles,
    invert,
    merge_halves,
    reconstruct,
    reconstruct_particles,
    volume_grid,
)
from cryomath.reconstruction.halves import HalfMaps, half_subsets
from cryomath.reconstruction.least_squares import (
    reconstruct_least_squares,
    reconstruct_least_squares_halves,
    reconstruct_least_squares_particles,
)

__all__ = [
    "HalfMaps",
    "accumulate_halves",
    "half_subsets",
    "insert_particles",
    "invert",
    "merge_halves",
    "reconstruct",
    "reconstruct_least_squares",
    "reconstruct_least_squares_halves",
    "reconstruct_least_squares_particles",
    "reconstruct_particles",
    "volume_grid",
]
