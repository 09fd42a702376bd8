"""Trilinear insertion (the adjoint of slicing) as two compiled kernels, on the CPU.

torch's ``grid_sampler_3d_backward`` (the eager insertion) spends most of its time per sample
on work a scatter does not need. Here two short functions that ``torch.compile`` turns into
C++ loops do the job (opt-in, ``compiled=True``: each process compiles them once, 4-16 s;
bench/RESULTS.md, "Insertion as compiled kernels"):

1. :func:`_corners`, per sample: its array index ``A^T k``, the Friedel flip, the flat
   index of the lowest of its eight corners, its linear weights along x, y and z (zero for a
   corner outside the array, as ``grid_sample``'s zero padding) and its values with the
   flip's sign on the imaginary channels;
2. :func:`_scatter`: every (sample, corner) adds ``w v`` to a channel-last ``(voxels, C)``
   array in place (a compiled ``FourierAccumulator``'s sums are one in memory; for other
   arrays insertion spreads into a channel-last copy and adds it once per call).

Both are compiled for any number of poses and samples, so one compilation per dtype and
channel count serves every chunk and band (and a second one every array size): the first call
compiles (seconds; later processes reuse torch's cache). The scatter is compiled for one
thread, a plain loop in a fixed order (inductor's parallel scatter uses atomic adds, slower
here and in no fixed order), and the per-sample work is elementwise (inductor compiles
without contracting products into fused multiply-adds, and a BLAS product of ``A^T k`` could
round by thread count), so a result does not depend on the thread count. Without a working
C++ compiler ``torch.compile`` fails: :func:`spread_slices` then returns ``False`` and the
caller inserts eagerly, and the first such failure warns with its reason.
"""

import warnings

import torch

_KERNELS: dict = {}
_UNAVAILABLE: list[str] = []


def _corners(rows, frequencies, values, imaginary, sizes: tuple[int, int, int]):
    """For samples at ``frequencies (K, 2)`` of poses whose first two rows, times the scale of
    the padded spectrum, are ``rows (P, 2, 3)``, with ``values (P, K, C)``: the flat index
    ``(P K,)`` of each one's lowest corner in the ``(z, y, x)`` array of ``sizes`` (array
    index ``A^T k + (0, n_pad // 2, n_pad // 2)`` after the Friedel flip), its weights
    ``(P K, 3, 2)`` (x, y, z; lower and upper corner) and its values ``(P K, C)``."""
    # A^T k = kx A[0] + ky A[1], elementwise (a BLAS product may round by thread count)
    q = frequencies[:, :1] * rows[:, None, 0] + frequencies[:, 1:] * rows[:, None, 1]
    sign = torch.where(q[..., :1] < 0, -1.0, 1.0).to(q.dtype)  # F(-k) = conj F(k)
    index = (q * sign + q.new_tensor([0.0, sizes[1] // 2, sizes[0] // 2])).flatten(0, 1)
    low = index.floor()
    t = index - low
    top = index.new_tensor([sizes[2] - 2, sizes[1] - 2, sizes[0] - 2])
    base = torch.minimum(torch.clamp(low, min=0.0), top)  # a cell inside the array
    # the corners low and low + 1 carry 1 - t and t; those outside the array carry nothing
    lower = torch.where(low == base, 1 - t, torch.where(low + 1 == base, t, 0.0))
    upper = torch.where(low == base, t, torch.where(low == base + 1, 1 - t, 0.0))
    b = base.long()
    flat = (b[:, 2] * sizes[1] + b[:, 1]) * sizes[2] + b[:, 0]
    v = (values * torch.where(imaginary, sign, 1.0)).flatten(0, 1)
    return flat, torch.stack([lower, upper], -1), v


def _scatter(out, index, weights, values, sizes: tuple[int, int, int]) -> None:
    """Add the trilinear spread of ``values (M, C)`` (:func:`_corners`) to the channel-last
    ``out (Z Y X, C)`` in place."""
    two = torch.arange(2, device=index.device)
    corner = (two * (sizes[1] * sizes[2]))[:, None, None] + (two * sizes[2])[:, None] + two
    w = weights[:, 2, :, None, None] * weights[:, 1, None, :, None] * weights[:, 0, None, None, :]
    spread = w[..., None] * values[:, None, None, None, :]  # (M, z, y, x, C)
    out.index_put_(((index[:, None, None, None] + corner).reshape(-1),),
                   spread.reshape(-1, values.shape[-1]), accumulate=True)  # fmt: skip


def _kernels():
    if not _KERNELS:  # the scatter on one thread: a plain loop in a fixed order
        _KERNELS["corners"] = torch.compile(_corners)
        _KERNELS["scatter"] = torch.compile(_scatter, options={"cpp.threads": 1})
    return _KERNELS["corners"], _KERNELS["scatter"]


def spread_slices(out, rotations, frequencies, values, imaginary, scale: float) -> bool:
    """Add the trilinear insertion of real ``values (P, K, C)`` at ``frequencies (K, 2)`` of
    ``rotations (P, 3, 3)`` (``imaginary (C,)`` bool: the channels the Friedel flip negates)
    to the channel-last ``out (n_pad, n_pad, n_pad // 2 + 1, C)`` of a padded rfft (z, y
    fft-shifted), on the CPU; ``scale``: ``n_pad`` times the frequency scale. Returns
    ``False``, having added nothing, when the kernels cannot be compiled here (no C++
    compiler), or not once more in this process (torch keeps a few variants of a function:
    dtypes, channel counts, thread counts)."""
    if _UNAVAILABLE:
        return False
    sizes, c = tuple(out.shape[:3]), out.shape[3]
    if len(rotations) < 2 or len(frequencies) < 2:  # a size 1 would be compiled apart
        return _spread_padded(out, rotations, frequencies, values, imaginary, scale)
    corners, scatter = _kernels()
    rows, values = rotations[:, :2, :] * scale, values.contiguous()  # one layout: one compile
    for tensor, dims in ((rows, (0,)), (frequencies, (0,)), (values, (0, 1))):
        for dim in dims:  # compiled for any number of poses and samples, not these
            torch._dynamo.maybe_mark_dynamic(tensor, dim)
    # ``out`` as a tensor of its own over the same memory: a view would be compiled again for
    # every array it is a view of
    flat = out.new_empty(0).set_(out.untyped_storage(), out.storage_offset(),
                                 (out.numel() // c, c), (c, 1))  # fmt: skip
    try:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            spread = corners(rows, frequencies, values, imaginary, sizes)
            for tensor in spread:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
            scatter(flat, *spread, sizes)
    except torch._dynamo.exc.FailOnRecompileLimitHit:  # more variants than torch keeps
        return False
    except torch._dynamo.exc.BackendCompilerFailed as error:  # no C++ compiler, for one
        _UNAVAILABLE.append(str(error).splitlines()[0])
        warnings.warn(f"compiled insertion is unavailable here, inserting eagerly: "
                      f"{_UNAVAILABLE[0]}", RuntimeWarning, stacklevel=2)  # fmt: skip
        return False
    return True


def _spread_padded(out, rotations, frequencies, values, imaginary, scale: float) -> bool:
    """:func:`spread_slices` for one pose or one sample: with a zero-valued second one."""
    if len(rotations) < 2:
        rotations, values = rotations.expand(2, 3, 3), torch.cat([values, 0 * values])
    if len(frequencies) < 2:
        frequencies, values = frequencies.expand(2, 2), torch.cat([values, 0 * values], 1)
    return spread_slices(out, rotations, frequencies, values, imaginary, scale)
