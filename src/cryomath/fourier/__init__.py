"""Fourier toolbox: centred FFTs, frequency grids, shells, crop/pad, shifts and masks.

Arrays are ``(..., [z,] y, x)``; coordinate vectors are ``(x, y[, z])``; the real-space centre
is index ``N // 2``. Every function is batched over leading dims, keeps dtype and device, and is
differentiable. See docs/conventions.md.
"""

from cryomath.fourier.crop import crop_or_pad, fourier_resize, rescale
from cryomath.fourier.fft import (
    complex_dtype,
    fft_2d,
    fft_3d,
    fft_nd,
    ifft_nd,
    irfft_2d,
    irfft_3d,
    rfft_2d,
    rfft_3d,
)
from cryomath.fourier.grids import (
    fftfreq_grid,
    fourier_shape,
    grid_sample_3d,
    grid_sample_3d_adjoint,
    grid_sample_coordinates,
    real_space_grid,
    spread_trilinear_,
)
from cryomath.fourier.masks import cylindrical_mask, spherical_mask
from cryomath.fourier.shells import hermitian_multiplicity, shell_index, shell_sum
from cryomath.fourier.shift import phase_ramp, shift_2d, shift_3d, shift_nd

__all__ = [
    "complex_dtype",
    "crop_or_pad",
    "cylindrical_mask",
    "fft_2d",
    "fft_3d",
    "fft_nd",
    "fftfreq_grid",
    "fourier_resize",
    "fourier_shape",
    "grid_sample_3d",
    "grid_sample_3d_adjoint",
    "grid_sample_coordinates",
    "hermitian_multiplicity",
    "ifft_nd",
    "irfft_2d",
    "irfft_3d",
    "phase_ramp",
    "real_space_grid",
    "rescale",
    "rfft_2d",
    "rfft_3d",
    "shell_index",
    "shell_sum",
    "shift_2d",
    "shift_3d",
    "shift_nd",
    "spherical_mask",
    "spread_trilinear_",
]
