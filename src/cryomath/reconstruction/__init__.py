"""Reconstruction with known poses: direct Fourier inversion and least squares (conjugate
gradients), streamed over particle batches (``imaging.iter_batches``); over Dask workers:
``pipelines.reconstruct_particles``."""

from cryomath.reconstruction.direct import (
    accumulate_halves,
    insert_particles,
    invert,
    maps_from_halves,
    reconstruct,
    volume_grid,
)
from cryomath.reconstruction.halves import HalfMaps, fourier_average_fsc, half_subsets
from cryomath.reconstruction.least_squares import (
    reconstruct_least_squares,
    reconstruct_least_squares_halves,
    reconstruct_least_squares_particles,
)

__all__ = [
    "HalfMaps",
    "accumulate_halves",
    "fourier_average_fsc",
    "half_subsets",
    "insert_particles",
    "invert",
    "maps_from_halves",
    "reconstruct",
    "reconstruct_least_squares",
    "reconstruct_least_squares_halves",
    "reconstruct_least_squares_particles",
    "volume_grid",
]
