"""Projection of 3-D maps to 2-D images: the Fourier-slice projector and its exact adjoint
(insertion), the real-space reference projector, and the Fourier projector of the trilinear
voxel basis (the real-space projector's spectral form)."""

from cryomath.projection.fourier_slice import (
    VolumeSpectrum,
    edge_mean,
    extract_central_slices_rfft_3d,
    extract_samples_rfft_3d,
    gridding_correction,
    inside_nyquist,
    nyquist_samples,
    prepare_volume,
    project_fourier,
    slice_coordinates,
)
from cryomath.projection.insertion import (
    accumulate_central_slices_rfft_3d,
    accumulate_samples_rfft_3d,
    insert_central_slices_rfft_3d,
)
from cryomath.projection.real_space import project_real_space
from cryomath.projection.voxel_basis import project_fourier_voxel_basis

__all__ = [
    "VolumeSpectrum",
    "accumulate_central_slices_rfft_3d",
    "accumulate_samples_rfft_3d",
    "edge_mean",
    "extract_central_slices_rfft_3d",
    "extract_samples_rfft_3d",
    "gridding_correction",
    "insert_central_slices_rfft_3d",
    "inside_nyquist",
    "nyquist_samples",
    "prepare_volume",
    "project_fourier",
    "project_fourier_voxel_basis",
    "project_real_space",
    "slice_coordinates",
]
