"""The covariance of 3-D structure side by side with ASPIRE 0.14.3's ``CovarianceEstimator``
(issue 18, section 6): the continuous dataset of ``bench/heterogeneity.py`` (5,000 particles of
64^2 at SNR 0.05, CTF, a domain sliding through 7 frames), each method at the largest box it
can afford; the top eigenvolume against the truth's, time and peak memory.

    python bench/covariance.py [--aspire-boxes 8,12] [--aspire PYTHON] [--out DIR]

Truth: the trajectory's own covariance (the frames linearly interpolated at 601 points of
``t``, their PCA), its top eigenvolume at each method's box (Fourier-cropped to ASPIRE's
``L``), band-limited to the band the method estimates and, for cryomath, under the same mask.
ASPIRE: ``RelionSource`` -> ``downsample(L)`` -> ``whiten`` -> ``MeanEstimator`` ->
``WhiteNoiseEstimator`` -> ``CovarianceEstimator.estimate``: the steps of its ``aspire cov3d``
command (default ``L`` 8), which in 0.14.3 fails as shipped (it passes the basis positionally
to ``MeanEstimator``, which no longer takes it so), called here with the basis by keyword;
the eigenvector of the ``L^3 x L^3`` estimate with the largest eigenvalue,
compared in the best of the 48 axis orders and flips and of half-voxel shifts (cryomath's
eigenvolume, Fourier-cropped to the same ``L``, compared in the same way).
cryomath: ``estimate_covariance`` at the full box, two components, band ``n // 4``. Each runs
in its own process; memory is that process's peak resident set.
"""

import argparse
import itertools
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from heterogeneity import BOX, PIXEL, domain_states

ASPIRE = textwrap.dedent("""
    import resource, sys, numpy as np
    from aspire.basis import FBBasis3D
    from aspire.covariance import CovarianceEstimator
    from aspire.noise import WhiteNoiseEstimator
    from aspire.reconstruction import MeanEstimator
    from aspire.source.relion import RelionSource
    star, L, pixel, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    source = RelionSource(star, pixel_size=pixel).downsample(L).cache().whiten()
    basis = FBBasis3D((L, L, L))
    mean_estimator = MeanEstimator(source, basis=basis, batch_size=512)
    mean = mean_estimator.estimate()
    noise = WhiteNoiseEstimator(source, batch_size=512).estimate()
    covariance = CovarianceEstimator(source, basis=basis, mean_kernel=mean_estimator.kernel)
    estimate = covariance.estimate(mean, noise, tol=1e-5).reshape(L**3, L**3)
    values, vectors = np.linalg.eigh(estimate)
    np.save(out, vectors[:, -1].reshape(L, L, L))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")

OURS = textwrap.dedent("""
    import resource, sys, numpy as np, torch
    torch.set_num_threads(2)
    from cryomath.fourier.masks import spherical_mask
    from cryomath.heterogeneity import estimate_covariance
    from cryomath.imaging import estimate_noise_from_background, iter_batches
    from cryomath.io import read_particles
    from cryomath.reconstruction import accumulate_halves, maps_from_halves
    star, out = sys.argv[1], sys.argv[2]
    table = read_particles(star)
    n, pixel = int(table.image_size[0]), float(table.pixel_size_angstrom[0])
    batches = lambda: iter_batches(table, 512, None, torch.float64)
    noise = estimate_noise_from_background(batches(), 0.45 * n)
    mean = maps_from_halves(accumulate_halves(table, table.random_subset)).full
    mask = spherical_mask((n, n, n), 0.35 * n, 3.0, dtype=torch.float64)
    result = estimate_covariance(batches, mean, pixel, noise, 2, max_shell=n // 4, mask=mask)
    np.save(out, result.components[0].numpy())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and the process's peak resident memory (GB; its last line, in KB)."""
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, int(done.stdout.strip().splitlines()[-1]) / 2**20


def true_top_eigenvolume() -> torch.Tensor:
    frames = domain_states(range(7))
    s = np.linspace(0, 6, 601)
    low = np.minimum(s.astype(int), 5)
    w = torch.from_numpy(s - low)[:, None]
    flat = frames.flatten(1)
    volumes = (1 - w) * flat[low] + w * flat[low + 1]
    centred = volumes - volumes.mean(0)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)
    return vt[0].reshape(BOX, BOX, BOX)


def crop(volume: torch.Tensor, size: int) -> torch.Tensor:
    """Fourier cropping to ``size^3`` (ASPIRE's ``downsample``), centred."""
    f = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(volume)))
    start = (volume.shape[-1] - size) // 2
    part = f[start : start + size, start : start + size, start : start + size]
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(part))).real


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|cos|`` between two volumes."""
    return abs(float((a * b).sum() / (a.norm() * b.norm())))


def half_voxel_shift(volume: torch.Tensor, shift) -> torch.Tensor:
    """``volume`` moved by ``shift`` ``(x, y, z)`` voxels (a Fourier phase ramp)."""
    k = torch.fft.fftfreq(volume.shape[-1], dtype=torch.float64)
    ramp = torch.exp(-2j * torch.pi * (shift[2] * k[:, None, None] + shift[1] * k[None, :, None]
                                       + shift[0] * k[None, None, :]))  # fmt: skip
    f = torch.fft.fftn(torch.fft.ifftshift(volume)) * ramp
    return torch.fft.fftshift(torch.fft.ifftn(f)).real


def best_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest ``|cos|`` over the 48 axis permutations and flips of ``a`` and its shifts by
    0 or half a voxel along each axis (another package's axis order, hand and grid centre need
    not be ours)."""
    best = 0.0
    for shift in itertools.product((-0.5, 0.0, 0.5), repeat=3):
        moved = half_voxel_shift(a, shift)
        for order in itertools.permutations(range(3)):
            for flips in itertools.product((False, True), repeat=3):
                dims = [d for d, f in enumerate(flips) if f]
                turned = moved.permute(order)
                best = max(best, cosine(turned.flip(dims) if dims else turned, b))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aspire-boxes", default="8,12")
    parser.add_argument("--aspire", type=Path, default=Path("/tmp/aspire-venv/bin/python"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/heterogeneity"))
    args = parser.parse_args()
    star = args.out / "continuous" / "particles.star"
    if not star.exists():
        raise SystemExit(f"{star} missing: run bench/heterogeneity.py --cases continuous first")
    from cryomath.fourier.masks import spherical_mask
    from cryomath.resolution import weight_by_shell

    rows = {}
    ours = args.out / "ours_top.npy"
    seconds, gb = run([sys.executable, "-c", OURS, str(star), str(ours)])
    truth = true_top_eigenvolume()  # after the run: its memory is not the child's
    band = torch.ones(BOX // 4 + 1, dtype=torch.float64)
    mask = spherical_mask((BOX,) * 3, 0.35 * BOX, 3.0, dtype=torch.float64)
    reference = weight_by_shell(truth, band) * mask
    rows[f"cryomath {BOX}^3"] = {"seconds": seconds, "peak GB": gb,
                                 "|cos| with the true top eigenvolume": cosine(
                                     torch.from_numpy(np.load(ours)), reference)}  # fmt: skip
    print(json.dumps(rows))
    for size in map(int, args.aspire_boxes.split(",")):
        ours_cropped = crop(torch.from_numpy(np.load(ours)), size)
        rows[f"cryomath {BOX}^3 cropped to {size}^3"] = {
            "|cos| with the true top eigenvolume": best_cosine(ours_cropped, crop(truth, size))
        }
        path = args.out / f"aspire_top_{size}.npy"
        try:
            seconds, gb = run([str(args.aspire), "-c", ASPIRE, str(star), str(size), str(PIXEL),
                               str(path)])  # fmt: skip
        except subprocess.CalledProcessError as error:
            rows[f"ASPIRE {size}^3"] = {"failed": error.stderr[-300:]}
            continue
        estimate = torch.from_numpy(np.load(path)).double()
        rows[f"ASPIRE {size}^3"] = {"seconds": seconds, "peak GB": gb,
                                    "|cos| with the true top eigenvolume": best_cosine(
                                        estimate, crop(truth, size))}  # fmt: skip
        print(json.dumps(rows))
    (args.out / "covariance.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
