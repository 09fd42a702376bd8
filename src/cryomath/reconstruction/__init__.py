"""Reconstruction: insertion (the exact adjoint of slice extraction) and direct Fourier
inversion, streamed over particle batches (and over Dask workers)."""

from cryomath.reconstruction.direct import (
    accumulate_halves,
    centred_spectra,
    insert_batch,
    invert,
    merge_halves,
    reconstruct,
    reconstruct_particles,
)
from cryomath.reconstruction.insertion import FourierAccumulator, insert_central_slices_rfft_3d
from cryomath.reconstruction.least_squares import (
    reconstruct_least_squares,
    reconstruct_least_squares_particles,
)

__all__ = [
    "FourierAccumulator",
    "accumulate_halves",
    "centred_spectra",
    "insert_batch",
    "insert_central_slices_rfft_3d",
    "invert",
    "merge_halves",
    "reconstruct",
    "reconstruct_least_squares",
    "reconstruct_least_squares_particles",
    "reconstruct_particles",
]
