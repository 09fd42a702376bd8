"""Insertion (the adjoint of slicing) on the CPU, three ways, in the same run: torch's
``grid_sampler_3d_backward`` (``fourier.grid_sample_3d_adjoint``, the default before
``fourier.spread_trilinear_``), the ``index_add_`` spread (the default without a gradient) and
the compiled kernels (``compiled=True``). Two sizes: a refinement's (slices of 42^2 into the
padded 84^3 up to shell 20, as the demo's chain inserts) and the inference boxes (64^2 into
128^3, the full band). Three channels (real, imaginary, weight), as an M-step inserts; best of
``--repeat`` after a warm-up, interleaved.

    python bench/insertion.py [--threads 1] [--dtype float32] [--repeat 5]
"""

import argparse

import torch
from measure import interleaved_best

from cryomath import so3
from cryomath.fourier import grid_sample_3d_adjoint, grid_sample_coordinates
from cryomath.projection import accumulate_central_slices_rfft_3d
from cryomath.projection.fourier_slice import nyquist_samples, slice_coordinates


def grid_sampler_insertion(out, slices, rotations, weights, max_shell, chunk_size=512) -> None:
    """The insertion as it was before the ``index_add_`` spread (same chunks, same samples)."""
    n, shape = slices.shape[-2], tuple(out.shape[-3:])
    k, keep = nyquist_samples(n, 1.0, out.dtype, out.device, max_shell)
    for start in range(0, len(rotations), chunk_size):
        chunk = slice(start, start + chunk_size)
        s = slices[chunk].flatten(-2)[..., keep]
        parts = torch.stack([s.real, s.imag, weights[chunk].flatten(-2)[..., keep]], 1)
        index, sign = slice_coordinates(rotations[chunk], k, shape[0])
        parts[:, 1] *= sign
        values = parts.movedim(1, 0).reshape(1, 3, -1, 1, 1)
        grid = grid_sample_coordinates(index.reshape(1, -1, 1, 1, 3), shape)
        out += grid_sample_3d_adjoint(values, shape, grid)


def compare(n: int, slices_count: int, max_shell: int | None, dtype, repeat: int) -> None:
    """Time the three insertions of ``slices_count`` random slices of ``n^2`` and print them."""
    g = torch.Generator().manual_seed(0)
    rotations = so3.random_rotations(slices_count, 0).to(dtype)
    shape = (slices_count, n, n // 2 + 1)
    slices = torch.complex(*torch.randn(2, *shape, generator=g, dtype=dtype))
    weights = torch.rand(shape, generator=g, dtype=dtype)
    out_shape = (1, 3, 2 * n, 2 * n, n + 1)
    runs = {
        "grid_sampler_3d_backward": lambda o: grid_sampler_insertion(
            o, slices, rotations, weights, max_shell),
        "index_add_ (default)": lambda o: accumulate_central_slices_rfft_3d(
            o, slices, rotations, weights, max_shell=max_shell),
        "compiled=True": lambda o: accumulate_central_slices_rfft_3d(
            o, slices, rotations, weights, max_shell=max_shell, compiled=True),
    }  # fmt: skip

    def inserted(run):  # (prepare, call) for interleaved_best: a fresh volume, filled
        def call(out):
            run(out)
            return out

        return lambda: torch.zeros(out_shape, dtype=dtype), call

    best, sums = interleaved_best({name: inserted(run) for name, run in runs.items()}, repeat)
    reference = sums["grid_sampler_3d_backward"]
    scale = float(reference.abs().max())
    base = best["grid_sampler_3d_backward"]
    band = "full band" if max_shell is None else f"shell {max_shell}"
    print(f"{slices_count} slices of {n}^2 into {2 * n}^3, {band}:")
    for name in runs:
        error = float((sums[name] - reference).abs().max()) / scale
        print(f"  {name:26s} {best[name]:.3f} s  {base / best[name]:.2f}x  "
              f"(largest difference {error:.1e} of the largest sum)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} thread(s), {args.dtype}, torch {torch.__version__}")
    for n, slices_count, max_shell in ((42, 4096, 20), (64, 1024, None)):
        compare(n, slices_count, max_shell, getattr(torch, args.dtype), args.repeat)


if __name__ == "__main__":
    main()
