"""Sampling grids in real and Fourier space.

Arrays are ``(..., z, y, x)``; the last axis of every grid returned here holds coordinates in
``(x, y[, z])`` order (docs/conventions.md). Real-space coordinates are in pixels relative to the
centre at index ``N // 2``; frequencies are in cycles per pixel, or in 1/Angstrom when a voxel
size is given (per axis, in ``(x, y[, z])`` order, for anisotropic sampling).
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cryomath.errors import InvalidInputError


def fourier_shape(image_shape: Sequence[int], rfft: bool = True) -> tuple[int, ...]:
    """Shape of the spectrum of an array of ``image_shape`` (rfft halves the last axis)."""
    shape = tuple(int(n) for n in image_shape)
    return (*shape[:-1], shape[-1] // 2 + 1) if rfft else shape


def _per_axis(value: float | Sequence[float], ndim: int) -> list[float]:
    """A scalar or an ``(x, y[, z])`` sequence, returned in array-axis order ``([z,] y, x)``."""
    if isinstance(value, (int, float)):
        return [float(value)] * ndim
    values = [float(v) for v in value]
    if len(values) != ndim:
        raise InvalidInputError(f"expected {ndim} values in (x, y[, z]) order, got {len(values)}")
    return values[::-1]


def fftfreq_grid(
    image_shape: Sequence[int],
    *,
    rfft: bool = True,
    fftshift: bool = False,
    voxel_size_angstrom: float | Sequence[float] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Frequency of every Fourier sample of an array of ``image_shape``.

    Returns ``(*fourier_shape(image_shape, rfft), ndim)`` with the last axis ``(kx, ky[, kz])``,
    in cycles/pixel, or in 1/Angstrom if ``voxel_size_angstrom`` is given. Matches the layout of
    :func:`cryomath.fourier.fft_nd` with the same ``rfft`` and ``fftshift``.
    """
    ndim = len(image_shape)
    dtype = dtype or torch.get_default_dtype()
    spacing = _per_axis(1.0 if voxel_size_angstrom is None else voxel_size_angstrom, ndim)
    axes = []
    for i, n in enumerate(image_shape):
        last = i == ndim - 1
        if rfft and last:
            f = torch.fft.rfftfreq(n, d=spacing[i], device=device, dtype=dtype)
        else:
            f = torch.fft.fftfreq(n, d=spacing[i], device=device, dtype=dtype)
            if fftshift:
                f = torch.fft.fftshift(f)
        axes.append(f)
    grid = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(grid[::-1], dim=-1)


def real_space_grid(
    image_shape: Sequence[int],
    *,
    center: Sequence[float] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Pixel coordinates ``(*image_shape, ndim)``, last axis ``(x, y[, z])``, origin at ``N // 2``.

    ``center`` (in ``(x, y[, z])`` pixel indices) moves the origin elsewhere.
    """
    ndim = len(image_shape)
    dtype = dtype or torch.get_default_dtype()
    origin = [n // 2 for n in image_shape] if center is None else _per_axis(center, ndim)
    axes = [
        torch.arange(n, device=device, dtype=dtype) - o
        for n, o in zip(image_shape, origin, strict=True)
    ]
    grid = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(grid[::-1], dim=-1)


def grid_sample_coordinates(index: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """Array indices ``(..., 3)`` in ``(x, y, z)`` order into a ``(z, y, x)`` array of
    ``spatial_shape`` -> ``torch.nn.functional.grid_sample``'s ``[-1, 1]`` coordinates
    (``align_corners=True``: index 0 -> -1, index N - 1 -> +1)."""
    size = torch.tensor(tuple(spatial_shape)[::-1], dtype=index.dtype, device=index.device) - 1
    return torch.addcmul(torch.full_like(size, -1.0), index, 2.0 / size)


def _thread_groups(p: int, device: torch.device, copy_bytes: int = 0) -> int:
    """How many groups to cut ``p`` samples into on this device: torch's CPU grid-sampler
    kernels run one thread per batch entry, so one group per thread (while the extra copies
    an adjoint needs stay under 256 MB); one group elsewhere."""
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), p, (2**28) // max(copy_bytes, 1)))


def _grouped(tensor: torch.Tensor, dim: int, groups: int) -> torch.Tensor:
    """``tensor`` (batch 1) with its ``dim`` cut into ``groups`` equal parts (zero-padded) that
    become the batch: ``(1, ..., P, ...)`` -> ``(groups, ..., ceil(P / groups), ...)``."""
    p = tensor.shape[dim]
    size = -(-p // groups)
    if size * groups != p:
        pad = [0, 0] * (tensor.ndim - dim - 1) + [0, size * groups - p]
        tensor = torch.nn.functional.pad(tensor, pad)
    return tensor[0].unflatten(dim - 1, (groups, size)).movedim(dim - 1, 0)


def grid_sample_3d(
    volume: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear"
) -> torch.Tensor:
    """``torch.nn.functional.grid_sample`` of ``volume (B, C, D, H, W)`` at ``grid
    (B, P, h, w, 3)`` (``align_corners=True``, zero padding) -> ``(B, C, P, h, w)``; on the CPU
    one volume's samples are cut into one group per thread (the kernel parallelises over the
    batch only). Differentiable."""
    p = grid.shape[1]
    groups = _thread_groups(p, volume.device) if volume.shape[0] == 1 else 1
    if groups == 1:
        return F.grid_sample(volume, grid, mode=mode, padding_mode="zeros", align_corners=True)
    out = F.grid_sample(
        volume.expand(groups, *volume.shape[1:]), _grouped(grid, 1, groups), mode=mode,
        padding_mode="zeros", align_corners=True,
    )  # fmt: skip
    return out.movedim(0, 1).flatten(1, 2)[None, :, :p]


def spread_trilinear_(out: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> None:
    """Add the adjoint of trilinear sampling to ``out (C, Z, Y, X)`` (contiguous, each axis at
    least 2), in place: each of ``values (C, M)`` at array index ``index (M, 3)`` (x, y, z) is
    spread onto the eight voxels around it with its trilinear weights; a corner outside the
    array receives nothing (``grid_sample``'s zero padding, ``align_corners=True``), so this is
    :func:`grid_sample_3d_adjoint` without the ``[-1, 1]`` coordinates.

    By ``index_add_`` into one flat channel per corner: on the CPU a serial loop in the
    samples' order (one result whatever the thread count), about twice as fast as torch's
    ``grid_sampler_3d_backward``, whose CPU kernel does a sampler's per-sample work
    (bench/RESULTS.md, "Insertion by index_add_"). For sums that need no gradient (insertion
    uses :func:`grid_sample_3d_adjoint` when one must flow back)."""
    for start in range(0, len(index), _SPREAD_BLOCK):
        block = slice(start, start + _SPREAD_BLOCK)
        _spread_block(out.view(out.shape[0], -1), out.shape[1:], index[block], values[:, block])


_SPREAD_BLOCK = 2**16  # samples per pass: each pass's buffers stay in cache


def _spread_block(flat, shape, index, values) -> None:
    """:func:`spread_trilinear_` of one block of samples into the flat channels ``(C, Z Y X)``
    of an array of ``shape (Z, Y, X)``."""
    c, (z, y, x) = flat.shape[0], shape
    # the array's cell that holds the sample (or the nearest one: a sample within a voxel
    # outside still reaches the edge); a corner's trilinear weight is the tent max(0, 1 - |r|)
    # of the sample's distance r from it, zero for a corner more than a voxel away
    base = index.floor().clamp_(min=index.new_zeros(3), max=index.new_tensor([x, y, z]) - 2)
    r = index - base
    lower = r.abs().neg_().add_(1).clamp_(min=0)
    upper = r.sub_(1).abs_().neg_().add_(1).clamp_(min=0)
    corner = base.long()
    start = (corner[:, 2] * y + corner[:, 1]) * x + corner[:, 0]
    # one buffer each for the corner's flat index, weight and weighted values, reused
    at, wzy, weight, spread = torch.empty_like(start), *index.new_empty((3, len(index)))
    for dz, wz in enumerate((lower[:, 2], upper[:, 2])):
        for dy, wy in enumerate((lower[:, 1], upper[:, 1])):
            torch.mul(wz, wy, out=wzy)
            for dx, wx in enumerate((lower[:, 0], upper[:, 0])):
                torch.add(start, (dz * y + dy) * x + dx, out=at)
                torch.mul(wzy, wx, out=weight)
                for channel in range(c):
                    flat[channel].index_add_(0, at, torch.mul(weight, values[channel], out=spread))


def grid_sample_3d_adjoint(
    values: torch.Tensor, spatial_shape: Sequence[int], grid: torch.Tensor
) -> torch.Tensor:
    """The adjoint of trilinear ``grid_sample`` (``align_corners=True``, zero padding): spreads
    ``values (1, C, P, h, w)`` sampled at ``grid (1, P, h, w, 3)`` back onto a
    ``(1, C, *spatial_shape)`` array.

    This is the one place that calls torch's private ``aten::grid_sampler_3d_backward`` (the
    kernel autograd uses for ``grid_sample``; it needs no per-sample corner indices);
    ``tests/test_imaging.py`` checks it against autograd so that a change in torch fails loudly.
    On the CPU that kernel runs one thread per batch entry, so the samples are cut into one
    group per thread, each spread onto its own copy of the array, and the copies summed (while
    a copy is at most 256 MB)."""
    c, p = values.shape[1], values.shape[2]
    copy_bytes = c * math.prod(spatial_shape) * values.element_size()
    groups = _thread_groups(p, values.device, copy_bytes)
    values = _grouped(values, 2, groups)  # (groups, C, size, h, w)
    grid = _grouped(grid, 1, groups)  # (groups, size, h, w, 3)
    like = values.new_empty((groups, c, *spatial_shape))
    bilinear, zeros = 0, 0  # torch's enum values of mode and padding_mode
    out, _ = torch.ops.aten.grid_sampler_3d_backward(
        values.contiguous(), like, grid.contiguous(), bilinear, zeros, True, [True, False]
    )
    return out if groups == 1 else out.sum(0, keepdim=True)
