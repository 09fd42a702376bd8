"""Projection of 3-D maps to 2-D images: the Fourier-slice projector and the real-space
reference projector."""

from cryomath.projection.fourier_slice import (
    VolumeSpectrum,
    edge_mean,
    extract_central_slices_rfft_3d,
    gridding_correction,
    prepare_volume,
    project_fourier,
)
from cryomath.projection.real_space import project_real_space

__all__ = [
    "VolumeSpectrum",
    "edge_mean",
    "extract_central_slices_rfft_3d",
    "gridding_correction",
    "prepare_volume",
    "project_fourier",
    "project_real_space",
]
