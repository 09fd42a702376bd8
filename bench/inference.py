"""2-D classification side by side with RELION 3.1.3 (issue 16, section 5): the same particles,
K, in-plane step, offset search, T and iterations; wall time per iteration and class purity in
the true viewing direction.

    python bench/inference.py [--n 1000] [--classes 12] [--iterations 10] [--dataset a|b]
                              [--relion-timeout S] [--out bench-out/inference]

Without ``--dataset`` the particles are simulated by ``cryomath simulate`` (the bundled 6VYB
N-domain, box 48, 2 A, CTF, SNR 0.05, offsets of 2 A sd) at the 12 HEALPix order-0 directions
(``--poses grid --grid-order 0``: 6 in-plane angles each), so a perfect classification puts one
direction in each class. Purity: the share of particles whose class's most common direction is
their own.

With ``--dataset`` they are section 5's (a) or (b) (``bench/abinitio.py``'s ``make_dataset``:
EMD-3488 by ``relion_project`` at 64^2, Haar-random poses), whose directions are continuous.
Purity there is measured around each class's medoid direction, modulo haemoglobin's exact
2-fold (5ME2's chains A:C, B:D; the same map seen from directions ``v`` and ``S^T v``): the
median angle between a particle's true direction and its class's medoid, and the share within
20 degrees. The best any K classes can do is given by spherical k-medoids of the true
directions themselves (``best_possible``).

RELION runs ``relion_refine`` (2-D, no reference, ``--j 2``), stopped after
``--relion-timeout`` seconds; its seconds per iteration come from its iteration files' times
(from iteration 0's, so its start-up is not counted; cryomath's is).
If it stops early, cryomath runs again for the iterations RELION finished, so that the two are
compared at the same iteration. cryomath runs ``class2d`` on the CPU with torch's default
threads. Needs ``relion_refine`` on the PATH.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from measure import relion_iteration_seconds, require_relion
from refine import _run_or_stop as run_or_stop  # this folder's: RELION stopped with its ranks

from cryomath import so3
from cryomath.cli import main as cryomath
from cryomath.io import read_particles, read_star

WITHIN_DEGREES = 20.0


def purity(classes: np.ndarray, directions: np.ndarray) -> float:
    """The share of particles whose class's most common direction is their own."""
    good = 0
    for c in np.unique(classes):
        members = directions[classes == c]
        good += np.bincount(members).max()
    return good / len(classes)


def directions_of(table) -> np.ndarray:
    """Each particle's direction as an integer label (rounded rot, tilt)."""
    angles = so3.relion_euler_from_matrix(torch.from_numpy(table.rotations)).numpy()
    keys = np.round(angles[:, :2]).astype(np.int64)
    _, label = np.unique(keys, axis=0, return_inverse=True)
    return label.reshape(-1)


def angles_degrees(v: np.ndarray, w: np.ndarray, mates: np.ndarray) -> np.ndarray:
    """``(n, m)`` degrees between unit directions ``v`` and ``w``, each ``w`` taken as its mate
    nearest ``v`` (``mates``: ``(g, 3, 3)`` rotations S; the mate of ``w`` is ``S^T w``)."""
    cosine = np.max([v @ (w @ s).T for s in mates], axis=0)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def _medoid(members: np.ndarray, v: np.ndarray, mates: np.ndarray) -> int:
    """The index (into ``v``) of the member direction whose mean angle to the others is least."""
    return int(members[angles_degrees(v[members], v[members], mates).mean(0).argmin()])


def medoid_spread(classes: np.ndarray, v: np.ndarray, mates: np.ndarray) -> np.ndarray:
    """Each particle's angle (degrees) to its class's medoid: the member direction whose mean
    angle to the other members is least."""
    spread = np.empty(len(v))
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        spread[members] = angles_degrees(v[members], v[[_medoid(members, v, mates)]], mates)[:, 0]
    return spread


def best_possible(v: np.ndarray, k: int, mates: np.ndarray, seed: int = 0) -> np.ndarray:
    """Classes of the true directions themselves by k-medoids (modulo ``mates``; farthest-point
    start, then alternating assignment and medoid steps): the purity no K classes can beat by
    much."""
    rng = np.random.default_rng(seed)
    centres = [int(rng.integers(len(v)))]
    for _ in range(k - 1):
        centres.append(int(angles_degrees(v, v[centres], mates).min(1).argmax()))
    for _ in range(30):
        classes = angles_degrees(v, v[centres], mates).argmin(1)
        moved = []
        for c in range(k):
            moved.append(_medoid(np.flatnonzero(classes == c), v, mates))
        if moved == centres:
            break
        centres = moved
    return angles_degrees(v, v[centres], mates).argmin(1)


def direction_scores(classes: np.ndarray, v: np.ndarray, mates: np.ndarray) -> dict:
    spread = medoid_spread(classes, v, mates)
    return {
        "median_degrees_to_class_medoid": float(np.median(spread)),
        f"share_within_{WITHIN_DEGREES:g}_degrees": float((spread <= WITHIN_DEGREES).mean()),
    }


def run_cryomath(star: Path, out: Path, args, iterations: int) -> float:
    start = time.perf_counter()
    assert cryomath(["class2d", str(star), "--classes", str(args.classes), "--iterations",
                     str(iterations), "--psi-step", "6", "--offset-range", "3",
                     "--offset-step", "1", "--tau2-fudge", "2", "--particle-diameter",
                     str(args.diameter), "--out", str(out), "--force", "--json"]) == 0  # fmt: skip
    return time.perf_counter() - start


def run_relion(star: Path, out: Path, args) -> tuple[list[float], Path]:
    """RELION's 2-D classification; its seconds per finished iteration and its last data STAR."""
    out.mkdir(parents=True, exist_ok=True)
    command = ["relion_refine", "--i", str(star.resolve()), "--o", str((out / "run").resolve()),
               "--K", str(args.classes), "--iter", str(args.iterations), "--psi_step", "6",
               "--offset_range", "3", "--offset_step", "1", "--tau2_fudge", "2",
               "--particle_diameter", str(args.diameter), "--ctf", "--zero_mask", "--j", "2",
               "--pool", "30", "--dont_combine_weights_via_disc"]  # fmt: skip
    start = time.time()
    run_or_stop(command, star.parent, args.relion_timeout)
    return relion_iteration_seconds(out, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--dataset", choices=("a", "b"), help="section 5's particles (EMD-3488)")
    parser.add_argument("--relion-timeout", type=float, default=4 * 3600.0)
    parser.add_argument("--out", type=Path, default=Path("bench-out/inference"))
    args = parser.parse_args()
    require_relion("relion_refine")
    out, sim = args.out, args.out / "sim"
    if args.dataset:
        from abinitio import make_dataset  # this folder's
        from refine import DATASET_MODEL, exact_mates

        star, _ = make_dataset(sim, args.dataset, args.n)
        mates = exact_mates(str(DATASET_MODEL), "A:C,B:D").numpy()
        args.diameter = 90.0
    else:
        star, args.diameter = sim / "particles.star", 86.0
        assert cryomath(["simulate", "src/cryomath/data/6vyb_ndom.pdb.gz", "--n", str(args.n),
                         "--box-size", "48", "--pixel-size", "2", "--snr", "0.05",
                         "--shift-sigma", "2", "--poses", "grid", "--grid-order", "0", "--out",
                         str(sim), "--force", "--json"]) == 0  # fmt: skip
    table = read_particles(star)
    ours = run_cryomath(star, out / "cryomath", args, args.iterations)
    relion_seconds, last = run_relion(star, out / "relion", args)
    compared = len(relion_seconds)
    if compared < args.iterations:  # RELION was stopped: cryomath at the iteration it reached
        run_cryomath(star, out / f"cryomath_it{compared}", args, compared)

    def classes_of(folder: Path) -> np.ndarray:
        found = read_particles(folder / "particles.star", allow_unknown_columns=True)
        return found.extra["rlnClassNumber"].to_numpy()

    same = out / ("cryomath" if compared == args.iterations else f"cryomath_it{compared}")
    relion = read_star(last)["particles"]
    order = {name: i for i, name in enumerate(read_star(star)["particles"]["rlnImageName"])}
    relion_classes = np.empty(len(relion), np.int64)
    relion_classes[[order[name] for name in relion["rlnImageName"]]] = relion["rlnClassNumber"]
    result = {
        "particles": args.n, "dataset": args.dataset, "classes": args.classes,
        "iterations": args.iterations, "relion_iterations_finished": compared,
        "cryomath_seconds_per_iteration": ours / args.iterations,
        "relion_seconds_per_iteration": relion_seconds,
        "speedup_per_iteration": float(np.mean(relion_seconds)) / (ours / args.iterations),
    }  # fmt: skip
    if args.dataset:
        v = so3.projection_directions(torch.from_numpy(table.rotations)).numpy()
        result[f"cryomath_at_iteration_{args.iterations}"] = direction_scores(
            classes_of(out / "cryomath"), v, mates)  # fmt: skip
        result[f"cryomath_at_iteration_{compared}"] = direction_scores(classes_of(same), v, mates)
        result[f"relion_at_iteration_{compared}"] = direction_scores(relion_classes, v, mates)
        result["best_possible"] = direction_scores(best_possible(v, args.classes, mates), v, mates)
    else:
        truth = directions_of(table)
        result["cryomath_purity"] = purity(classes_of(same), truth)
        result["relion_purity"] = purity(relion_classes, truth)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
