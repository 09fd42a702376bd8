"""Insertion (back-projection) of central slices into a padded rfft volume: the exact adjoint
of :func:`~cryomath.projection.extract_central_slices_rfft_3d` (same trilinear kernel, same
Friedel flip, same Nyquist mask), one chunk of slices at a time: memory is the volume plus
one chunk, whatever the number of slices. By the adjoint kernel of ``grid_sample``
(``fourier.grid_sample_3d_adjoint``; on the CPU without a gradient its equal by ``index_add_``,
``fourier.spread_trilinear_``), or with ``compiled=True`` on the CPU by two compiled
kernels (``projection.compiled_insertion``), which add to a channel-last array (the volume
itself when it is one in memory, as a compiled ``FourierAccumulator``'s sums are, else a
copy).

The volume is ``(n_pad, n_pad, n_pad // 2 + 1)`` with z, y fft-shifted (``prepare_volume``'s
layout).
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.grids import (
    grid_sample_3d_adjoint,
    grid_sample_coordinates,
    spread_trilinear_,
)
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
    that shell (slices known to be zero beyond it). ``ewald_curvature`` and ``compiled`` as in
    :func:`accumulate_samples_rfft_3d`, whose spreading loop spreads each chunk's samples."""
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
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")
    channels = 2 * slices.shape[1] + (0 if slice_weights is None else slice_weights.shape[1])
    _check_out(out, channels)
    real = out.dtype
    k, keep = nyquist_samples(n, frequency_scale, real, out.device, max_shell)

    def chunks():  # (Pc, C, K) real parts of a chunk's samples inside the band, its rotations
        for start in range(0, p, chunk_size):
            chunk = slice(start, start + chunk_size)
            s = slices[chunk].flatten(-2)[..., keep]  # (Pc, L, K)
            parts = torch.stack([s.real, s.imag], 2).flatten(1, 2)  # (Pc, 2L, K)
            if slice_weights is not None:
                weights = slice_weights[chunk].flatten(-2)[..., keep].to(real)
                parts = torch.cat([parts, weights], 1)
            yield parts, rotations[chunk]

    grad = _needs_grad(slices, slice_weights, rotations)
    _spread_chunks(out, chunks(), k, slice(1, 2 * slices.shape[1], 2), frequency_scale,
                   ewald_curvature, compiled, grad)  # fmt: skip


def accumulate_samples_rfft_3d(
    out: torch.Tensor,
    values: torch.Tensor,
    rotations: torch.Tensor,
    frequencies: torch.Tensor,
    imaginary: slice = slice(1, 2),
    chunk_size: int = 512,
    frequency_scale: float = 1.0,
    ewald_curvature: float = 0.0,
    compiled: bool = False,
) -> None:
    """Add the insertion of real ``values (P, C, K)`` at ``rotations (P, 3, 3)`` to ``out (1,
    C, n_pad, n_pad, n_pad // 2 + 1)``: channel ``c`` of image ``p`` at the rfft frequencies
    ``frequencies (K, 2)`` ``(kx, ky)`` in cycles per image pixel (inside both Nyquist circles:
    :func:`~cryomath.projection.fourier_slice.nyquist_samples`; a band's samples need no zeros
    around them), the channels ``imaginary`` being imaginary parts (the Friedel flip negates
    them). ``frequency_scale`` = volume voxel size / image pixel size; ``ewald_curvature``:
    onto curved slices (the adjoint of extraction with that curvature).

    How: on the CPU without a gradient, by ``index_add_`` (``fourier.spread_trilinear_``, 2x
    torch's ``grid_sample`` adjoint), or with ``compiled=True`` (opt-in) through the compiled
    kernels of :mod:`~cryomath.projection.compiled_insertion`, the same sums to rounding and
    faster again on small volumes (bench/RESULTS.md), but the first call in a process compiles
    them (4 s with torch's disk cache warm, 16 s cold); otherwise (a gradient, another device)
    by torch's ``grid_sample`` adjoint, which autograd differentiates."""
    check_rotation_matrices(rotations)
    p, c = values.shape[0], values.shape[1]
    if values.ndim != 3 or rotations.shape != (p, 3, 3) or frequencies.shape != (
        values.shape[2], 2):  # fmt: skip
        raise InvalidInputError(
            f"need values (P, C, K), rotations (P, 3, 3) and frequencies (K, 2); got "
            f"{tuple(values.shape)}, {tuple(rotations.shape)} and {tuple(frequencies.shape)}"
        )
    _check_out(out, c)
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")
    chunks = ((values[start : start + chunk_size], rotations[start : start + chunk_size])
              for start in range(0, p, chunk_size))  # fmt: skip
    _spread_chunks(out, chunks, frequencies.to(out.dtype), imaginary, frequency_scale,
                   ewald_curvature, compiled, _needs_grad(values, rotations))  # fmt: skip


def _check_out(out: torch.Tensor, channels: int) -> None:
    """Refuse an ``out`` that is not ``(1, channels, z, y, x)``, before anything is added."""
    if out.ndim != 5 or out.shape[1] != channels:
        raise InvalidInputError(f"need out (1, {channels}, z, y, x) for {channels} channels of "
                                f"values; got {tuple(out.shape)}")  # fmt: skip


def _spread_chunks(out, chunks, k, imaginary, frequency_scale, ewald_curvature, compiled,
                   grad) -> None:  # fmt: skip
    """Add each chunk of ``chunks`` (real parts ``(Pc, C, K)`` at the frequencies ``k (K, 2)``,
    and their rotations ``(Pc, 3, 3)``) into ``out``, the way chosen once for all of them
    (:func:`accumulate_samples_rfft_3d`'s "How"); ``grad``: whether a gradient must flow back
    to the parts or rotations."""
    c, real, shape = out.shape[1], out.dtype, tuple(out.shape[-3:])
    grad = grad and torch.is_grad_enabled()
    cpu = out.device.type == "cpu" and min(shape) >= 2
    fused = compiled and not (ewald_curvature or grad) and cpu
    # without a gradient, the CPU spreads by index_add_ into ``out`` itself when each channel
    # is one in memory, else into a copy added at the end
    scatter = cpu and not grad
    target = out[0] if scatter and out[0].is_contiguous() else None
    copied = False
    if fused:
        flipped = torch.zeros(c, dtype=torch.bool, device=out.device)
        flipped[imaginary] = True
        # the compiled scatter adds to a channel-last array: ``out`` itself when it is one in
        # memory (a compiled ``FourierAccumulator``'s sums are), else a copy added at the end
        spread = out[0].permute(1, 2, 3, 0)
        direct = spread.is_contiguous()
        if not direct:
            spread = out.new_zeros(spread.shape)
    for parts, rotation in chunks:
        parts, rotation = parts.to(real), rotation.to(real)
        if fused and spread_slices(spread, rotation, k, parts.transpose(1, 2), flipped,
                                   shape[0] * frequency_scale):  # fmt: skip
            continue
        index, sign = slice_coordinates(
            rotation, k, shape[0], ewald_curvature, frequency_scale=frequency_scale
        )  # (Pc, K, 3), (Pc, K)
        parts = parts.clone()  # the caller's values stay as they are
        parts[:, imaginary] *= sign[:, None]
        if scatter:
            if target is None:
                target, copied = out.new_zeros(out.shape[1:]), True
            spread_trilinear_(target, index.reshape(-1, 3), parts.movedim(1, 0).flatten(1))
            continue
        grid = grid_sample_coordinates(index.reshape(1, -1, 1, 1, 3), shape)
        out += grid_sample_3d_adjoint(parts.movedim(1, 0).reshape(1, c, -1, 1, 1), shape, grid)
    if fused and not direct:
        out += spread.permute(3, 0, 1, 2)
    if copied:
        out[0] += target


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
