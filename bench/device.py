"""Throughput on one device, the numbers issue 7 asks for on a GPU: projection images per
second, insertion images per second (on the CPU also through the compiled kernels,
``compiled=True``), FSC of two 256^3 maps, alignment rotations per second (global search).
On CUDA every timing is bracketed by ``torch.cuda.synchronize``. Inputs are made on the host
and moved once; the times are of the compute, best of ``--repeat`` after a warm-up.

    python bench/device.py --device cuda [--dtype float32] [--repeat 3]
"""

import argparse
import os
from pathlib import Path

import torch
from measure import best_seconds

from cryomath import so3
from cryomath.atoms import read_atoms, render_potential
from cryomath.devices import resolve_device
from cryomath.fitting import align_maps
from cryomath.imaging import FourierAccumulator
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from cryomath.resolution import fourier_shell_correlation

SHARED = os.environ.get("CRYOMATH_SHARED_DATA") or Path(__file__).parents[2] / "shared" / "data"
MODEL = Path(SHARED) / "map_model" / "5me2.pdb"


def _slices(volume, rotations, pad: float, device: torch.device, repeat: int) -> None:
    """Projection (slice extraction) and insertion of 1,000 slices at one padding."""
    n, dtype = volume.shape[-1], volume.dtype
    spectrum = prepare_volume(volume, pad)
    seconds = best_seconds(
        lambda: extract_central_slices_rfft_3d(spectrum, rotations), device, repeat
    )
    print(f"projection, 1,000 slices of 128^3 at pad {pad:g}: {seconds:.3f} s "
          f"({1000 / seconds:,.0f} images/s)")  # fmt: skip
    slices = extract_central_slices_rfft_3d(spectrum, rotations)

    ones = torch.ones_like(slices.real)

    def insert(compiled=False):
        FourierAccumulator(n, pad, dtype, device, compiled=compiled).add(slices, ones, rotations)

    seconds = best_seconds(insert, device, repeat)
    print(f"insertion, 1,000 slices into 128^3 at pad {pad:g}: {seconds:.3f} s "
          f"({1000 / seconds:,.0f} images/s)")  # fmt: skip
    if device.type == "cpu":  # the compiled kernels (CPU only); the warm-up compiles them
        fused = best_seconds(lambda: insert(compiled=True), device, repeat)
        print(f"insertion, compiled kernels (compiled=True): {fused:.3f} s ({1000 / fused:,.0f} "
              f"images/s; {seconds / fused:.2f}x the default)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device, dtype = resolve_device(args.device), getattr(torch, args.dtype)
    atoms = read_atoms(MODEL)
    n = 128
    origin = atoms.positions_angstrom.mean(0) - (n // 2) * 1.0
    volume = render_potential(atoms, (n, n, n), 1.0, origin, dtype=dtype).to(device)
    rotations = so3.random_rotations(1000, 0).to(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}, {torch.get_num_threads()} threads), {args.dtype}, "
          f"torch {torch.__version__}")  # fmt: skip
    for pad in (1.0, 2.0):
        _slices(volume, rotations, pad, device, args.repeat)

    g = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, 256, generator=g, dtype=dtype).to(device)
    b = torch.randn(256, 256, 256, generator=g, dtype=dtype).to(device)
    seconds = best_seconds(lambda: fourier_shell_correlation(a, b, 1.0), device, args.repeat)
    print(f"FSC of two 256^3 maps: {seconds:.3f} s")

    reference = render_potential(atoms, (112, 112, 112), 1.5, origin, resolution_angstrom=4.0,
                                 dtype=dtype).to(device)  # fmt: skip
    seconds = best_seconds(
        lambda: align_maps(reference, 1.5, origin, reference, 1.5, origin, refine=False), device,
        args.repeat,
    )  # fmt: skip
    print(f"alignment search (no refinement), 900 rotations, 112^3 map at 1.5 A: {seconds:.3f} s "
          f"({900 / seconds:,.0f} rotations/s)")  # fmt: skip


if __name__ == "__main__":
    main()
