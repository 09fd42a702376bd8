"""The E-step's core against the machine's matrix-product rate (issue 16, rule 5: the hot loop
is dense linear algebra; state its throughput against the measured matmul rate).

    python bench/estep.py [--images 256] [--box 64] [--shifts 25] [--projections 4608]
                          [--own-rows 512] [--table 36864]

Times ``inference.gaussian_pose_scores`` for images x shifts x projections in float32 (the
projections made once, outside the timing, as an E-step reuses them across batches), counts
its floating-point work (the cross term ``2 (B S) (2K) R`` and the power term ``2 B K R``),
and prints that rate next to a plain ``torch.matmul`` of the same shapes measured in the same
run: the fraction says how close the E-step is to the machine's BLAS rate. Then the same for
an oversampled global search's scores: each image against its own ``--own-rows`` rows of a
shared band table of ``--table`` projections (HEALPix order 2 oversampled: 36,864; ``maxsig``
64 x 8 children: 512 rows), gathered in the score (``inference.band.OwnRows``), against the
rate of the bare batched product of the same shapes.
"""

import argparse
import json

import torch
from measure import best_seconds

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.fourier.shells import hermitian_multiplicity, shell_index
from cryomath.imaging import NoiseSpectrum, ParticleBatch
from cryomath.inference import gaussian_pose_scores
from cryomath.inference.band import OwnRows
from cryomath.inference.global_search import band_projections
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--shifts", type=int, default=25)
    parser.add_argument("--projections", type=int, default=4608)  # HEALPix order 2
    parser.add_argument("--own-rows", type=int, default=512)
    parser.add_argument("--table", type=int, default=36864)  # order 2, oversampled
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    n, device, dtype = args.box, torch.device(args.device), torch.float32
    g = torch.Generator().manual_seed(0)
    volume = torch.randn(n, n, n, generator=g).to(device, dtype)
    projections = extract_central_slices_rfft_3d(
        prepare_volume(volume, 2.0), so3.random_rotations(args.projections, 1).to(device, dtype)
    )
    defocus = (10000 + 10000 * torch.rand(args.images, generator=g)).to(device, dtype)
    one = torch.tensor(1.0, device=device, dtype=dtype)
    ctf = CTF(defocus, defocus, 0 * one, 300 * one, 2.7 * one, 0.1 * one)
    images = torch.randn(args.images, n, n, generator=g).to(device, dtype)
    poses = so3.random_rotations(args.images, 2).to(device, dtype)
    batch = ParticleBatch.from_tensors(images, poses, 1.0, ctf=ctf)
    noise = NoiseSpectrum((0,), torch.ones(1, n, device=device, dtype=dtype) * n * n)
    side = round(args.shifts**0.5)
    grid = torch.arange(side, dtype=dtype) - side // 2
    shifts = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2).to(device)

    seconds = best_seconds(
        lambda: gaussian_pose_scores(batch, projections, shifts, noise), device, 3
    )
    m = hermitian_multiplicity((n, n))
    k = int(((shell_index((n, n)) <= n // 2 - 1) & (m > 0)).sum())
    b, s, r = args.images, len(shifts), args.projections
    flops = 2 * (b * s) * (2 * k) * r + 2 * b * k * r
    left = torch.randn(b * s, 2 * k, generator=g).to(device, dtype)
    right = torch.randn(2 * k, r, generator=g).to(device, dtype)

    matmul_seconds = best_seconds(lambda: left @ right, device, 3)
    matmul_rate = 2 * (b * s) * (2 * k) * r / matmul_seconds
    result = {
        "device": str(device), "threads": torch.get_num_threads(), "images": b, "shifts": s,
        "projections": r, "samples_K": k, "seconds": seconds,
        "hypotheses_per_second": b * s * r / seconds, "gflops": flops / seconds / 1e9,
        "matmul_gflops": matmul_rate / 1e9,
        "fraction_of_matmul_rate": flops / seconds / matmul_rate,
    }  # fmt: skip
    result["own_rows"] = own_rows(args, batch, shifts, noise, volume, k, g)
    print(json.dumps(result, indent=2))


def own_rows(args, batch, shifts, noise, volume, k: int, g) -> dict:
    """Each image against its own rows of a shared band table, and the bare ``torch.bmm`` of
    the cross term's shapes (the data already gathered) in the same run."""
    device, dtype, n = volume.device, volume.dtype, volume.shape[-1]
    rotations = so3.random_rotations(args.table, 3).to(device, dtype)
    # as a global search makes it, chunk by chunk (the whole complex table never held)
    table = band_projections(prepare_volume(volume[None], 2.0), rotations, dtype, n // 2 - 1)
    b, s, j = args.images, len(shifts), args.own_rows
    rows = torch.randint(args.table, (b, j), generator=g).to(device)
    seconds = best_seconds(
        lambda: gaussian_pose_scores(batch, OwnRows(table, rows), shifts, noise), device, 3
    )
    flops = 2 * s * (2 * k) * j * b + 2 * k * j * b
    left = torch.randn(b, s, 2 * k, generator=g).to(device, dtype)
    right = torch.randn(b, 2 * k, j, generator=g).to(device, dtype)
    bmm_rate = 2 * s * (2 * k) * j * b / best_seconds(lambda: torch.bmm(left, right), device, 3)
    return {"table": args.table, "rows_per_image": j, "seconds": seconds,
            "hypotheses_per_second": b * s * j / seconds, "gflops": flops / seconds / 1e9,
            "bmm_gflops": bmm_rate / 1e9,
            "fraction_of_bmm_rate": flops / seconds / bmm_rate}  # fmt: skip


if __name__ == "__main__":
    main()
