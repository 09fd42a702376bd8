"""2-D classification side by side with RELION 3.1.3 (issue 16, section 5): the same particles,
K, in-plane step, offset search and iterations; wall time per iteration and class purity in
the true viewing direction.

    python bench/inference.py [--n 1000] [--classes 12] [--iterations 10] [--out bench-out]

The particles are simulated by ``cryomath simulate`` (the bundled 6VYB N-domain, box 48, 2 A,
CTF, SNR 0.05, offsets of 2 A sd) at the 12 HEALPix order-0 directions (``--poses grid
--grid-order 0``: 6 in-plane angles each), so a perfect classification puts one direction in
each class. Purity: the share of particles whose class's most common direction is their own.
RELION runs ``relion_refine`` (2-D, no reference) with ``--j 2``; cryomath ``class2d`` on the
CPU with torch's default threads. Needs ``relion_refine`` on the PATH.
"""

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from cryomath.cli import main as cryomath
from cryomath.io import read_particles, read_star


def purity(classes: np.ndarray, directions: np.ndarray) -> float:
    """The share of particles whose class's most common direction is their own."""
    good = 0
    for c in np.unique(classes):
        members = directions[classes == c]
        good += np.bincount(members).max()
    return good / len(classes)


def directions_of(table) -> np.ndarray:
    """Each particle's direction as an integer label (rounded rot, tilt)."""
    import torch

    from cryomath.so3 import relion_euler_from_matrix

    angles = relion_euler_from_matrix(torch.from_numpy(table.rotations)).numpy()
    keys = np.round(angles[:, :2]).astype(np.int64)
    _, label = np.unique(keys, axis=0, return_inverse=True)
    return label.reshape(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench-out/inference"))
    args = parser.parse_args()
    if shutil.which("relion_refine") is None:
        raise SystemExit("relion_refine is not on the PATH (apt-get install relion)")
    out = args.out
    sim = out / "sim"
    assert cryomath(["simulate", "src/cryomath/data/6vyb_ndom.pdb.gz", "--n", str(args.n),
                     "--box-size", "48", "--pixel-size", "2", "--snr", "0.05", "--shift-sigma",
                     "2", "--poses", "grid", "--grid-order", "0", "--out", str(sim), "--force",
                     "--json"]) == 0  # fmt: skip
    truth = directions_of(read_particles(sim / "particles.star"))
    start = time.perf_counter()
    assert cryomath(["class2d", str(sim / "particles.star"), "--classes", str(args.classes),
                     "--iterations", str(args.iterations), "--psi-step", "6", "--offset-range",
                     "3", "--offset-step", "1", "--out", str(out / "cryomath"), "--force",
                     "--json"]) == 0  # fmt: skip
    ours = time.perf_counter() - start
    ours_classes = (
        read_particles(out / "cryomath" / "particles.star", allow_unknown_columns=True)
        .extra["rlnClassNumber"]
        .to_numpy()
    )
    relion_dir = out / "relion"
    relion_dir.mkdir(parents=True, exist_ok=True)
    command = ["relion_refine", "--i", str((sim / "particles.star").resolve()), "--o",
               str((relion_dir / "run").resolve()), "--K", str(args.classes), "--iter",
               str(args.iterations), "--psi_step", "6", "--offset_range", "3", "--offset_step",
               "1", "--tau2_fudge", "2", "--particle_diameter", "86", "--ctf", "--zero_mask",
               "--j", "2", "--pool", "30", "--dont_combine_weights_via_disc"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=sim, stdout=subprocess.DEVNULL)
    theirs = time.perf_counter() - start
    last = relion_dir / f"run_it{args.iterations:03d}_data.star"
    relion_classes = read_star(last)["particles"]["rlnClassNumber"].to_numpy()
    result = {
        "particles": args.n, "classes": args.classes, "iterations": args.iterations,
        "cryomath_seconds_per_iteration": ours / args.iterations,
        "relion_seconds_per_iteration": theirs / args.iterations,
        "speedup": theirs / ours,
        "cryomath_purity": purity(ours_classes, truth),
        "relion_purity": purity(relion_classes, truth),
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
