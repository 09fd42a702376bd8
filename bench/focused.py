"""Focused 3-D classification side by side with RELION 3.1.3: ``cryomath class3d --skip-align
--solvent-mask`` and ``relion_refine --K --skip_align --solvent_mask`` on the same particles,
mask, K, T, band and iterations; wall time per iteration and the share of particles in the
class of their true conformation.

    python bench/focused.py [--n 4000] [--snr 0.05] [--iterations 25] [--relion-timeout S]
                            [--out bench-out/focused]

The particles: the bundled 6VYB N-domain at a 64 box of 1.5 A, whole or without the part at
x >= 35 px (the truth per particle, equal weights; ``simulate_dataset`` with two volumes),
Haar-random poses, offsets of 2 A sd, CTF, ``--snr`` per image; the STAR holds the true poses
and offsets, as a consensus refinement would give them. The mask: the removed part
(``resolution.auto_mask`` of the whole map minus the cut one, extended 3 px, 3 px soft edge).
Both programs start from the whole map low-passed to 60 A with K = 2 (RELION's random
classes of a first iteration), T = 4 (the GUI's 3-D default). RELION's seconds per iteration
come from its iteration files' times (from iteration 0's); cryomath's from its run divided by
the iterations (its start-up counted). Needs ``relion_refine`` on the PATH.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from measure import relion_iteration_seconds, require_relion
from refine import _run_or_stop as run_or_stop  # this folder's: RELION stopped with its ranks

from cryomath.cli import main as cryomath
from cryomath.demo import BUNDLED_MODEL
from cryomath.io import read_particles, read_star, write_mrc
from cryomath.pipelines import read_conformations, read_volume, simulate_dataset
from cryomath.resolution import auto_mask
from cryomath.simulate import SimulationSettings

BOX, PIXEL, CUT, DIAMETER = 64, 1.5, 35, 90.0


def make_dataset(folder: Path, n: int, snr: float) -> np.ndarray:
    """The particles, the whole map and the focus mask in ``folder``; each particle's state."""
    whole, _ = read_volume(BUNDLED_MODEL, BOX, PIXEL)
    cut = whole.clone()
    cut[..., CUT:] = 0
    settings = SimulationSettings(n_particles=n, pixel_size_angstrom=PIXEL, snr=snr, seed=11,
                                  shift_sigma_angstrom=2.0, state_weights=(0.5, 0.5))  # fmt: skip
    simulate_dataset(torch.stack([whole, cut]), folder, settings, force=True)
    write_mrc(folder / "whole.mrc", whole.float().numpy(), PIXEL, force=True)
    removed = whole - cut
    mask = auto_mask(removed, 0.1 * float(removed.max()), 3.0, 3.0)
    write_mrc(folder / "focus.mrc", mask.float().numpy(), PIXEL, force=True)
    return read_conformations(folder).state


def accuracy(classes: np.ndarray, truth: np.ndarray) -> float:
    """The share of particles in the class of their state, under the better labelling."""
    return float(max((classes == truth).mean(), (classes != truth).mean()))


def run_cryomath(sim: Path, out: Path, iterations: int) -> float:
    start = time.perf_counter()
    assert cryomath(["class3d", str(sim / "particles.star"), "--reference",
                     str(sim / "whole.mrc"), "--classes", "2", "--iterations", str(iterations),
                     "--skip-align", "--solvent-mask", str(sim / "focus.mrc"), "--tau2-fudge",
                     "4", "--ini-high", "60", "--particle-diameter", str(DIAMETER), "--out",
                     str(out), "--force", "--json"]) == 0  # fmt: skip
    return time.perf_counter() - start


def run_relion(sim: Path, out: Path, iterations: int, timeout: float) -> tuple[list, Path, str]:
    """RELION's focused classification; its seconds per finished iteration, its last data STAR
    and its command."""
    out.mkdir(parents=True, exist_ok=True)
    command = ["relion_refine", "--i", "particles.star", "--o", str((out / "run").resolve()),
               "--ref", "whole.mrc", "--firstiter_cc", "--ini_high", "60", "--K", "2",
               "--iter", str(iterations), "--skip_align", "--solvent_mask", "focus.mrc",
               "--tau2_fudge", "4", "--particle_diameter", str(DIAMETER), "--ctf",
               "--flatten_solvent", "--zero_mask", "--sym", "C1", "--pad", "2", "--j", "2",
               "--pool", "30", "--dont_combine_weights_via_disc",
               "--random_seed", "1"]  # fmt: skip
    started = time.time()
    run_or_stop(command, sim, timeout)
    return (*relion_iteration_seconds(out, started), " ".join(command))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--snr", type=float, default=0.05)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--relion-timeout", type=float, default=3600.0)
    parser.add_argument("--out", type=Path, default=Path("bench-out/focused"))
    args = parser.parse_args()
    require_relion("relion_refine")
    sim = args.out / "sim"
    truth = make_dataset(sim, args.n, args.snr)
    ours = run_cryomath(sim, args.out / "cryomath", args.iterations)
    relion_seconds, last, command = run_relion(sim, args.out / "relion", args.iterations,
                                               args.relion_timeout)  # fmt: skip
    found = read_particles(args.out / "cryomath" / "particles.star", allow_unknown_columns=True)
    relion = read_star(last)["particles"]
    order = {name: i for i, name in enumerate(read_star(sim / "particles.star")["particles"][
        "rlnImageName"])}  # fmt: skip
    relion_classes = np.empty(len(relion), np.int64)
    relion_classes[[order[name] for name in relion["rlnImageName"]]] = relion["rlnClassNumber"]
    result = {
        "particles": args.n, "snr": args.snr, "iterations": args.iterations,
        "relion_iterations_finished": len(relion_seconds), "relion_command": command,
        "cryomath_seconds_per_iteration": ours / args.iterations,
        "relion_seconds_per_iteration": relion_seconds,
        "speedup_per_iteration": float(np.mean(relion_seconds)) / (ours / args.iterations),
        "cryomath_accuracy": accuracy(found.extra["rlnClassNumber"].to_numpy() - 1, truth),
        "relion_accuracy": accuracy(relion_classes - 1, truth),
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    (args.out / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
