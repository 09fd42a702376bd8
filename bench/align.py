"""Map alignment benchmark: a 112^3 map at 1.5 A simulated from 5ME2 (4 A) and a copy moved by
seeded random poses; CPU time (``time.process_time``, all threads) of ``align_maps`` with
default settings and with a 10-degree sample, rotations scored per second, errors of the top
fit, peak memory. VESPER's default on such pairs (issue 6): 0.7-0.8 CPU-s.

    python bench/align.py [--poses 5] [--threads 2]
"""

import argparse
import math
import resource
import time
from pathlib import Path

import numpy as np
import torch

from cryomath import so3
from cryomath.atoms import read_atoms, render_potential
from cryomath.fitting import align_maps
from cryomath.fitting.align import search_rotations
from cryomath.fitting.refine import transform_map

MODEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "map_model" / "5me2.pdb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    atoms = read_atoms(MODEL)
    n, voxel = 112, 1.5
    origin = atoms.positions_angstrom.mean(0) - (n // 2) * voxel
    reference = render_potential(
        atoms, (n, n, n), voxel, origin, resolution_angstrom=4.0, dtype=torch.float64
    )
    centre = torch.as_tensor(origin + (n // 2) * voxel)
    # warm-up: first calls pay one-off costs (thread pools, FFT plans)
    align_maps(reference, voxel, origin, reference, voxel, origin)
    results = {}
    for step in (30.0, 10.0):
        rows = []
        for seed in range(args.poses if step == 30.0 else 1):
            rotation = so3.random_rotations(1, seed)[0]
            noise = torch.randn(
                3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
            )
            translation = centre - rotation @ centre + noise * 5
            query = transform_map(
                reference, voxel, origin, rotation.T, -rotation.T @ translation, (n, n, n),
                voxel, origin,
            )  # fmt: skip
            cpu, wall = time.process_time(), time.perf_counter()
            fits = align_maps(
                reference, voxel, origin, query, voxel, origin, angle_step_degrees=step
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best = fits[0]
            angle = math.degrees(float(so3.geodesic_distance(best.rotation_matrix, rotation)))
            shift = float((best.translation_angstrom - translation).norm())
            rows.append((cpu, wall, angle, shift))
            print(
                f"step {step:g}: pose {seed}: cpu {cpu:.2f} s, wall {wall:.2f} s, "
                f"error {angle:.4f} deg {shift:.4f} A",
                flush=True,
            )
        cpu, wall, angle, shift = np.median(np.array(rows), 0)
        count = len(search_rotations(step))
        results[step] = (count, cpu, wall, count / wall, angle, shift)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| sample | rotations | CPU s | wall s | rotations/s (wall) | median error |")
    print("|---|---|---|---|---|---|")
    for step, (count, cpu, wall, rate, angle, shift) in results.items():
        print(
            f"| {step:g} degrees | {count} | {cpu:.2f} | {wall:.2f} | {rate:.0f} | "
            f"{angle:.4f} deg, {shift:.4f} A |"
        )
    print(f"peak RSS {peak:.0f} MB ({args.threads} threads)")


if __name__ == "__main__":
    main()
