"""Insertion (back-projection) of central slices into a padded rfft volume: the exact adjoint
of :func:`~cryomath.projection.extract_central_slices_rfft_3d` (same trilinear kernel, same
Friedel flip, same Nyquist mask), computed by the adjoint kernel of ``grid_sample``
(``fourier.grid_sample_3d_adjoint``), one chunk of slices at a time: memory is the volume plus
one chunk, whatever the number of slices, and no per-sample corner indices are materialised.

The volume is ``(n_pad, n_pad, n_pad // 2 + 1)`` with z, y fft-shifted (``prepare_volume``'s
layout).
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.grids import grid_sample_3d_adjoint, grid_sample_coordinates
from cryomath.projection.fourier_slice import slice_coordinates


def insert_central_slices_rfft_3d(
    slices: torch.Tensor,
    rotations: torch.Tensor,
    n_pad: int,
    slice_weights: torch.Tensor | None = None,
    chunk_size: int = 128,
    frequency_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Adjoint of slice extraction for ``slices (P, n, n // 2 + 1)`` complex at ``rotations
    (P, 3, 3)``: returns the complex ``(n_pad, n_pad, n_pad // 2 + 1)`` sum, and the same
    insertion of the real ``slice_weights`` if given. ``frequency_scale`` = volume voxel size /
    image pixel size (``projection.slice_coordinates``)."""
    p, n = slices.shape[0], slices.shape[-2]
    if slices.shape != (p, n, n // 2 + 1) or rotations.shape != (p, 3, 3):
        raise InvalidInputError(
            f"need slices (P, n, n//2+1) and rotations (P, 3, 3); got {tuple(slices.shape)} "
            f"and {tuple(rotations.shape)}"
        )
    real = slices.real.dtype
    shape = (n_pad, n_pad, n_pad // 2 + 1)
    data = torch.zeros((1, 2, *shape), dtype=real, device=slices.device)
    weights = (
        None
        if slice_weights is None
        else torch.zeros((1, 1, *shape), dtype=real, device=slices.device)
    )
    for start in range(0, p, chunk_size):
        chunk = slice(start, start + chunk_size)
        index, sign, inside = slice_coordinates(
            rotations[None, chunk].to(real), n, n_pad, frequency_scale=frequency_scale
        )
        grid = grid_sample_coordinates(index, shape)
        s = slices[chunk] * inside
        grad = torch.stack([s.real, s.imag * sign[0]], 0)[None]  # (1, 2, P, h, w)
        data += grid_sample_3d_adjoint(grad.contiguous(), shape, grid)
        if weights is not None:
            w = (slice_weights[chunk] * inside)[None, None]
            weights += grid_sample_3d_adjoint(w.to(real).contiguous(), shape, grid)
    volume = torch.complex(data[0, 0], data[0, 1])
    return volume, (None if weights is None else weights[0, 0])
