"""Insertion (back-projection) of central slices into a padded rfft volume: the exact adjoint
of :func:`~cryomath.projection.extract_central_slices_rfft_3d` (same trilinear kernel, same
Friedel flip, same Nyquist mask), one chunk of slices at a time: memory is the volume plus
one chunk, whatever the number of slices. By the adjoint kernel of ``grid_sample``
(``fourier.grid_sample_3d_adjoint``), or with ``compiled=True`` on the CPU by two compiled
kernels (``projection.compiled_insertion``), which add to a channel-last array (the volume
itself when it is one in memory, as a compiled ``FourierAccumulator``'s sums are, else a
copy).

The volume is ``(n_pad, n_pad, n_pad // 2 + 1)`` with z, y fft-shifted (``prepare_volume``'s
layout).
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.grids import grid_sample_3d_adjoint, grid_sample_coordinates
from cryomath.projection.compiled_insertion import spread_slices
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
    compiled: bool = False,
) -> None:
    """Add the insertion of ``slices (P, n, n // 2 + 1)`` complex at ``rotations (P, 3, 3)`` to
    ``out (1, C, n_pad, n_pad, n_pad // 2 + 1)`` real: channels 0 and 1 the real and imaginary
    parts, channel 2 (``C = 3``) the insertion of the real ``slice_weights``. Several at once,
    in one pass: ``slices (P, L, n, n // 2 + 1)`` and ``slice_weights (P, W, n, n // 2 + 1)``
    fill channels ``2l, 2l + 1`` and ``2L + w``. Only the samples inside the Nyquist circle are
    spread (the rest are zero: a fifth of the rfft), and with ``max_shell`` only those up to
    that shell (slices known to be zero beyond it). ``ewald_curvature``: onto curved slices
    (the adjoint of extraction with that curvature). ``compiled`` (opt-in, on the CPU):
    through the compiled kernels of :mod:`~cryomath.projection.compiled_insertion`, the same
    sums to rounding, 1.2-2.2x faster (bench/RESULTS.md), but the first call in a process
    compiles them (4 s with torch's disk cache warm, 16 s cold); the eager kernel (torch's
    ``grid_sample`` adjoint, differentiable) otherwise, and with ``ewald_curvature``, off the
    CPU, when a gradient is needed, or where they cannot be compiled."""
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
    imag = slice(1, 2 * slices.shape[1], 2)  # the channels the Friedel flip negates
    grad = torch.is_grad_enabled() and _needs_grad(slices, slice_weights, rotations)
    fused = compiled and not (ewald_curvature or grad) and out.device.type == "cpu"
    fused = fused and min(shape) >= 2
    if fused:
        imaginary = torch.zeros(out.shape[1], dtype=torch.bool, device=out.device)
        imaginary[imag] = True
        # the scatter adds to a channel-last array: ``out`` itself when it is one in memory
        # (a compiled ``FourierAccumulator``'s sums are), else a copy added at the end
        spread = out[0].permute(1, 2, 3, 0)
        direct = spread.is_contiguous()
        if not direct:
            spread = out.new_zeros(spread.shape)
    for start in range(0, p, chunk_size):
        chunk = slice(start, start + chunk_size)
        s = slices[chunk].flatten(-2)[..., keep]  # (Pc, L, K)
        parts = torch.stack([s.real, s.imag], 2).flatten(1, 2)  # (Pc, 2L, K)
        if slice_weights is not None:
            weights = slice_weights[chunk].flatten(-2)[..., keep].to(real)
            parts = torch.cat([parts, weights], 1)
        rotation = rotations[chunk].to(real)
        if fused and spread_slices(spread, rotation, k, parts.transpose(1, 2), imaginary,
                                   shape[0] * frequency_scale):  # fmt: skip
            continue
        index, sign = slice_coordinates(
            rotation, k, shape[0], ewald_curvature, frequency_scale=frequency_scale
        )  # (Pc, K, 3), (Pc, K)
        parts[:, imag] *= sign[:, None]
        values = parts.movedim(1, 0).reshape(1, parts.shape[1], -1, 1, 1)  # (1, C, Pc K, 1, 1)
        grid = grid_sample_coordinates(index.reshape(1, -1, 1, 1, 3), shape)
        out += grid_sample_3d_adjoint(values, shape, grid)
    if fused and not direct:
        out += spread.permute(3, 0, 1, 2)


def _needs_grad(*tensors) -> bool:
    """Whether a gradient must flow back (then the eager kernel, which autograd knows)."""
    return any(t is not None and t.requires_grad for t in tensors)


def insert_central_slices_rfft_3d(
    slices: torch.Tensor,
    rotations: torch.Tensor,
    n_pad: int,
    slice_weights: torch.Tensor | None = None,
    chunk_size: int = 512,
    frequency_scale: float = 1.0,
    compiled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Adjoint of slice extraction for ``slices (P, n, n // 2 + 1)`` complex at ``rotations
    (P, 3, 3)``: returns the complex ``(n_pad, n_pad, n_pad // 2 + 1)`` sum, and the same
    insertion of the real ``slice_weights`` if given. ``frequency_scale`` = volume voxel size /
    image pixel size (``projection.slice_coordinates``); ``compiled`` as in
    :func:`accumulate_central_slices_rfft_3d`."""
    channels = 2 if slice_weights is None else 3
    out = torch.zeros((1, channels, n_pad, n_pad, n_pad // 2 + 1), dtype=slices.real.dtype,
                      device=slices.device)  # fmt: skip
    accumulate_central_slices_rfft_3d(out, slices, rotations, slice_weights, chunk_size,
                                      frequency_scale, compiled=compiled)  # fmt: skip
    volume = torch.complex(out[0, 0], out[0, 1])
    return volume, (None if slice_weights is None else out[0, 2])
