"""Map alignment benchmark: a 112^3 map at 1.5 A simulated from 5ME2 and a copy moved by seeded
random poses; CPU time of the global search (default 15-degree HEALPix sample, and 10 degrees),
rotations scored per second, refinement time, errors, peak memory.

    python bench/align.py [--poses 5]
"""

import argparse
import math
import resource
import time
from pathlib import Path

import numpy as np
import torch

from cryomath import so3
from cryomath.alignment import align_maps
from cryomath.alignment.refine import _positions, move_query
from cryomath.atoms import read_atoms, render_potential

MODEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "map_model" / "5me2.pdb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    atoms = read_atoms(MODEL)
    n, voxel = 112, 1.5
    origin = atoms.positions_angstrom.mean(0) - (n // 2) * voxel
    reference = render_potential(
        atoms, (n, n, n), voxel, origin, resolution_angstrom=4.0, dtype=torch.float64
    )
    centre = torch.as_tensor(origin + (n // 2) * voxel)
    positions = _positions(reference.shape, voxel, origin, torch.float64)
    errors = []
    for seed in range(args.poses):
        rotation = so3.random_rotations(1, seed)[0]
        translation = (
            centre
            - rotation @ centre
            + torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 5
        )
        query = move_query(
            reference, voxel, origin, rotation.T, -rotation.T @ translation, positions
        )
        for step, refine in ((15.0, False), (10.0, False), (15.0, True)):
            cpu, wall = time.process_time(), time.perf_counter()
            fits = align_maps(
                reference,
                voxel,
                origin,
                query,
                voxel,
                origin,
                angle_step_degrees=step,
                top=3,
                refine=refine,
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best = fits[0]
            angle = math.degrees(float(so3.geodesic_distance(best["rotation_matrix"], rotation)))
            shift = float((best["translation_angstrom"] - translation).norm())
            rotations = 72 * 8 ** max(0, math.ceil(math.log2(60 / step)))
            print(
                f"pose {seed} step {step:g} refine {refine}: cpu {cpu:.2f} s, wall {wall:.2f} s, "
                f"{rotations / wall:.0f} rotations/s, error {angle:.2f} deg {shift:.2f} A",
                flush=True,
            )
            if refine:
                errors.append((angle, shift))
    angles, shifts = np.array(errors).T
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"median error after refinement: {np.median(angles):.3f} deg, {np.median(shifts):.3f} A; "
        f"peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
