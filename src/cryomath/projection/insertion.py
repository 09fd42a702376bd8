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
from cryomath.projection.fourier_slice import nyquist_samples, slice_coordinates
from cryomath.so3.checks import check_rotation_matrices


def accumulate_central_slices_rfft_3d(
    out: torch.Tensor,
    slices: torch.Tensor,
    rotations: torch.Tensor,
    slice_weights: torch.Tensor | None = None,
    chunk_size: int = 512,
    frequency_scale: float = 1.0,
    max_shell: int | None = None,
    ewald_curvature: float = 0.0,
) -> None:
    """Add the insertion of ``slices (P, n, n // 2 + 1)`` complex at ``rotations (P, 3, 3)`` to
    ``out (1, C, n_pad, n_pad, n_pad // 2 + 1)`` real: channels 0 and 1 the real and imaginary
    parts, channel 2 (``C = 3``) the insertion of the real ``slice_weights``. Several at once,
    in one pass: ``slices (P, L, n, n // 2 + 1)`` and ``slice_weights (P, W, n, n // 2 + 1)``
    fill channels ``2l, 2l + 1`` and ``2L + w``. Only the samples inside the Nyquist circle are
    spread (the rest are zero: a fifth of the rfft), and with ``max_shell`` only those up to
    that shell (slices known to be zero beyond it). ``ewald_curvature``: onto curved slices
    (the adjoint of extraction with that curvature)."""
    check_rotation_matrices(rotations)
    p, n = slices.shape[0], slices.shape[-2]
    if slices.ndim == 3:
        slices = slices[:, None]
    if slice_weights is not None and slice_weights.ndim == 3:
        slice_weights = slice_weights[:, None]
    if slices.shape[-2:] != (n, n // 2 + 1) or slices.ndim != 4 or rotations.shape != (p, 3, 3):
        raise InvalidInputError(
            f"need slices (P, [L,] n, n//2+1) and rotations (P, 3, 3); got "
            f"{tuple(slices.shape)} and {tuple(rotations.shape)}"
        )
    real, shape = out.dtype, tuple(out.shape[-3:])
    k, keep = nyquist_samples(n, frequency_scale, real, out.device, max_shell)
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")
    for start in range(0, p, chunk_size):
        chunk = slice(start, start + chunk_size)
        index, sign = slice_coordinates(
            rotations[chunk].to(real),
            k,
            shape[0],
            ewald_curvature,
            frequency_scale=frequency_scale,
        )  # (Pc, K, 3), (Pc, K)
        s = slices[chunk].flatten(-2)[..., keep]  # (Pc, L, K)
        parts = torch.stack([s.real, s.imag * sign[:, None]], 2).flatten(1, 2)  # (Pc, 2L, K)
        if slice_weights is not None:
            weights = slice_weights[chunk].flatten(-2)[..., keep].to(real)
            parts = torch.cat([parts, weights], 1)
        values = parts.movedim(1, 0).reshape(1, parts.shape[1], -1, 1, 1)  # (1, C, Pc K, 1, 1)
        grid = grid_sample_coordinates(index.reshape(1, -1, 1, 1, 3), shape)
        out += grid_sample_3d_adjoint(values, shape, grid)


def insert_central_slices_rfft_3d(
    slices: torch.Tensor,
    rotations: torch.Tensor,
    n_pad: int,
    slice_weights: torch.Tensor | None = None,
    chunk_size: int = 512,
    frequency_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Adjoint of slice extraction for ``slices (P, n, n // 2 + 1)`` complex at ``rotations
    (P, 3, 3)``: returns the complex ``(n_pad, n_pad, n_pad // 2 + 1)`` sum, and the same
    insertion of the real ``slice_weights`` if given. ``frequency_scale`` = volume voxel size /
    image pixel size (``projection.slice_coordinates``)."""
    channels = 2 if slice_weights is None else 3
    out = torch.zeros((1, channels, n_pad, n_pad, n_pad // 2 + 1), dtype=slices.real.dtype,
                      device=slices.device)  # fmt: skip
    accumulate_central_slices_rfft_3d(out, slices, rotations, slice_weights, chunk_size,
                                      frequency_scale)  # fmt: skip
    volume = torch.complex(out[0, 0], out[0, 1])
    return volume, (None if slice_weights is None else out[0, 2])
