"""The M-step's sums (``inference.PoseSums.add``) of an adaptive pass, dense against sparse, in
the same run: a batch of 256 images of 42^2 (CTF), 29 offsets, each image's own 512 children
(its 64 best coarse orientations x 8) among the 36,864 orientations of HEALPix order 3, the
band to shell 20 (677 rfft samples), as in the demo's chain's last iterations. The dense
product writes every (image, child) row and index-adds it; the sparse one (the default below
``sums._SPARSE_BELOW`` of non-zero weights) multiplies a CSR weight matrix into the sums. Weights
non-zero (an M-step's significant weights hold about 1.5-3 % in the chain's last iterations).
Best of ``--repeat`` after a warm-up, interleaved.

    python bench/pose_sums.py [--threads 1] [--repeat 5]
"""

import argparse

import torch
from measure import interleaved_best

from cryomath import so3
from cryomath.ctf import CTF
from cryomath.imaging import ParticleBatch
from cryomath.inference import sums as sums_module
from cryomath.inference.sums import PoseSums

IMAGES, SHIFTS, CHILDREN, ROWS, SIZE, SHELL = 256, 29, 512, 36864, 42, 20


def _inputs(fraction: float, g: torch.Generator):
    """A batch, weights ``(B, S, J)`` with ``fraction`` of them non-zero, offsets, rows."""
    defocus = 10000 + 10000 * torch.rand(IMAGES, generator=g)
    ctf = CTF(defocus, defocus - 300, torch.tensor(20.0), torch.tensor(300.0),
              torch.tensor(2.7), torch.tensor(0.1))  # fmt: skip
    images = torch.randn(IMAGES, SIZE, SIZE, generator=g)
    batch = ParticleBatch.from_tensors(images, so3.random_rotations(IMAGES, 0).float(), 2.0,
                                       ctf=ctf)  # fmt: skip
    shape = (IMAGES, SHIFTS, CHILDREN)
    weights = torch.rand(shape, generator=g)
    weights = torch.where(torch.rand(shape, generator=g) < fraction, weights, 0)
    shifts = torch.randn(SHIFTS, 2, generator=g)
    rows = torch.stack([torch.randperm(ROWS, generator=g)[:CHILDREN] for _ in range(IMAGES)])
    return batch, weights, shifts, rows


def compare(fraction: float, repeat: int) -> None:
    """Time the dense and the sparse sums at one fraction of non-zero weights and print them."""
    batch, weights, shifts, rows = _inputs(fraction, torch.Generator().manual_seed(0))

    def added(below):  # (prepare, call): empty sums with the _SPARSE_BELOW that picks a way
        def prepare():
            sums_module._SPARSE_BELOW = below
            return PoseSums(ROWS, SIZE, SHELL, torch.float32, None)

        def call(sums):
            sums.add(batch, weights, shifts, rows)
            return sums

        return prepare, call

    best, sums = interleaved_best({"dense": added(0.0), "sparse": added(2.0)}, repeat)
    scale = float(sums["dense"].data.abs().max())
    error = float((sums["sparse"].data - sums["dense"].data).abs().max()) / scale
    dense, sparse = best["dense"], best["sparse"]
    print(
        f"{fraction:6.1%} non-zero: dense {dense:.3f} s, sparse {sparse:.3f} s, "
        f"{dense / sparse:5.2f}x (largest difference {error:.1e} of the largest sum)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    default = sums_module._SPARSE_BELOW
    print(
        f"CPU, {args.threads} thread(s), float32, torch {torch.__version__}; "
        f"{IMAGES} images x {SHIFTS} offsets x {CHILDREN} of {ROWS} rows, shell {SHELL}; "
        f"sparse below {default:.0%} non-zero"
    )
    for fraction in (0.015, 0.03, 0.1, 0.15, 0.25, 0.5, 1.0):
        compare(fraction, args.repeat)


if __name__ == "__main__":
    main()
