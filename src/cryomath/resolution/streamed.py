"""FSC of maps too large to hold in memory, read a slab at a time.

Pass 1: each map is read a z-slab at a time (from an MRC file through
``cryomath.io.ImageStack``, or from any array-like ``m[z0:z1] -> (k, n, n)``) and transformed
over (y, x); the half-spectra go to scratch files in (ky, z, kx) order. Pass 2: chunks of ky
are read back (contiguous), transformed over z, and their shell sums added
(``curves.add_shell_sums``). Memory: blocks of about ``chunk_samples`` samples, whatever the
map size (scratch files are read and written, not memory-mapped, so their pages are not the
process's); scratch disk: the two half-spectra, ``n^2 (n/2 + 1)`` complex samples each (8.6 GB
for two 1024^3 maps in float32). The result equals :func:`fourier_shell_correlation` of the
maps (no mask) to rounding.
"""

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from cryomath.errors import InvalidInputError, check_positive
from cryomath.resolution.curves import FSCCurve, add_shell_sums

_COMPLEX = {torch.float32: np.complex64, torch.float64: np.complex128}


def _box(m) -> int:
    shape = (len(m), *np.asarray(m[0:1]).shape[1:])
    if len(set(shape)) != 1:
        raise InvalidInputError(f"FSC needs cubic maps, got {shape}")
    return int(shape[0])


def fourier_shell_correlation_streamed(
    map1,
    map2,
    voxel_size_angstrom: float = 1.0,
    dtype: torch.dtype = torch.float32,
    chunk_samples: int = 2**20,
    scratch_dir: str | Path | None = None,
) -> FSCCurve:
    """FSC of two cubic maps given as z-slab readers ``m[z0:z1] -> (k, n, n)`` (e.g.
    ``ImageStack(path)``), transformed in ``dtype`` and summed in float64; scratch files go
    to ``scratch_dir`` (default: the system's temporary folder) and are removed at the end."""
    check_positive(voxel_size_angstrom, "the voxel size", "A")
    n = _box(map1)
    if _box(map2) != n:
        raise InvalidInputError(f"maps differ in shape: {n}^3 and {_box(map2)}^3")
    nx = n // 2 + 1
    complex_dtype = np.dtype(_COMPLEX[dtype])
    sample = complex_dtype.itemsize
    sums = torch.zeros(3, nx, dtype=torch.float64)
    counts = torch.zeros(nx, dtype=torch.float64)
    with (
        tempfile.TemporaryDirectory(dir=scratch_dir, prefix="cryomath-fsc-") as tmp,
        ExitStack() as files,
    ):
        scratch = [files.enter_context(open(Path(tmp) / f"{i}.bin", "w+b")) for i in (1, 2)]
        slab = max(1, chunk_samples // (n * n))
        for name, m, f in zip(("first", "second"), (map1, map2), scratch, strict=True):
            empty = True
            for z0 in range(0, n, slab):
                block = torch.as_tensor(np.array(m[z0 : z0 + slab]), dtype=dtype)
                if not bool(torch.isfinite(block).all()):
                    raise InvalidInputError(f"the {name} map contains NaN or inf")
                empty = empty and not bool(block.any())
                by_row = torch.fft.rfft2(block).transpose(0, 1).contiguous().numpy()
                for y in range(n):  # stored as (ky, z, kx): pass 2 reads whole ky rows
                    os.pwrite(f.fileno(), by_row[y], (y * n + z0) * nx * sample)
            if empty:
                raise InvalidInputError(f"the {name} map is all zeros: its FSC is undefined")
        k = torch.fft.fftfreq(n, dtype=torch.float64)
        kx2 = torch.fft.rfftfreq(n, dtype=torch.float64) ** 2
        rows = max(1, chunk_samples // (n * nx))
        for y0 in range(0, n, rows):
            blocks = []
            for f in scratch:
                buffer = np.empty((min(rows, n - y0), n, nx), dtype=complex_dtype)
                f.seek(y0 * n * nx * sample)
                f.readinto(memoryview(buffer).cast("B"))
                blocks.append(torch.fft.fft(torch.from_numpy(buffer), dim=1))  # over z
            k2 = k[y0 : y0 + rows, None, None] ** 2 + k[:, None] ** 2 + kx2  # (ky, kz, kx)
            add_shell_sums(sums, counts, *blocks, k2, n)
    fsc = sums[0] / torch.sqrt(sums[1] * sums[2]).clamp(min=torch.finfo(torch.float64).tiny)
    frequency = torch.arange(nx, dtype=torch.float64) / (n * voxel_size_angstrom)
    return FSCCurve(fsc.to(dtype), frequency.to(dtype), counts.to(dtype))
