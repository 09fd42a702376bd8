"""How well the poses of ``bench/refine.py`` 's particles can be known (issue 16): the
Cramér-Rao bound (an efficient estimator's median error), the engine's own limit (expectation
passes against the true map: global HEALPix order 2 with oversampling, then local orders
3, 4, 5, 5, no M-step), and the cost of one pass with Gaussian against Poisson scores.

    python bench/pose_floor.py [--n 2000] [--pixel 1.5] [--model PDB] [--out DIR]

The particles are simulated as in ``bench/refine.py`` (box 48, CTF, SNR 0.05, offsets of 3 A
sd). The Poisson timing scores the same images as counts at 5 e/A^2: only its cost is
measured (these images are not counts).
"""

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from refine import MODEL, efficient_median_errors, pose_errors

from cryomath.cli import main as _cryomath
from cryomath.imaging import estimate_noise_from_background, iter_batches
from cryomath.inference import expectation as ex
from cryomath.inference.sampling import Sampling
from cryomath.io import read_particles
from cryomath.pipelines import read_volume
from cryomath.so3.symmetry import point_group

PASSES = [(2, False, 1.0), (3, True, 0.5), (4, True, 0.5), (5, True, 0.25), (5, True, 0.25)]


def run_pass(table, rows, refs, noise, state, sampling) -> float:
    """One expectation pass over ``rows`` (in place on ``state``); seconds."""
    start = time.perf_counter()
    ex.expectation_pass(table, rows, np.ones(table.n, np.int64), refs, state, sampling, noise,
                        ex.PassSums({}), offset_sigma_px=2.0,
                        group=point_group("C1", dtype=torch.float64))  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--pixel", type=float, default=1.5)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--out", type=Path, default=Path("bench-out/pose-floor"))
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        assert _cryomath(["simulate", args.model, "--n", str(args.n), "--box-size", "48",
                          "--pixel-size", str(args.pixel), "--snr", "0.05", "--shift-sigma",
                          "3", "--out", str(args.out), "--force", "--json"]) == 0  # fmt: skip
    table = read_particles(args.out / "particles.star")
    truth, _ = read_volume(Path(args.model), 48, args.pixel)
    bound, _ = efficient_median_errors(table, truth, args.pixel, 0.05)
    result = {"particles": args.n, "model": str(args.model),
              "efficient_median_error_degrees": bound}  # fmt: skip
    noise = estimate_noise_from_background(
        iter_batches(table, 256, None, torch.float64, use_ctf=False), 0.45 * 48
    )
    refs = ex.References(truth[None].float(), args.pixel, torch.zeros(1))
    rows = np.arange(table.n)
    state = ex.ParticleState.start(np.tile(np.eye(3), (table.n, 1, 1)), np.zeros((table.n, 2)),
                                   np.zeros(table.n, np.int64))  # fmt: skip
    engine = []
    for order, local, step in PASSES:
        sampling = Sampling(order, local, 3 * step if local else 5.0, step, 23)
        seconds = run_pass(table, rows, refs, noise, state, sampling)
        errors = pose_errors(table.rotations, state.rotations)
        engine.append({"order": order, "local": local, "seconds": seconds,
                       "median_error_degrees": float(np.median(errors)),
                       "share_over_30_degrees": float((errors > 30).mean())})  # fmt: skip
    result["true_map_passes"] = engine
    timing, some = {}, rows[: min(256, table.n)]
    for local in (False, True):
        for dose in (None, 5.0):
            poses = table.rotations if local else np.tile(np.eye(3), (table.n, 1, 1))
            part = ex.ParticleState.start(np.asarray(poses), np.zeros((table.n, 2)),
                                          np.zeros(table.n, np.int64))  # fmt: skip
            sampling = Sampling(4 if local else 2, local, 1.5 if local else 5.0,
                                0.5 if local else 1.0, 20, dose_e_per_a2=dose)  # fmt: skip
            key = f"{'local order 4' if local else 'global order 2'}, "
            key += "gaussian" if dose is None else "poisson"
            timing[key] = run_pass(table, some, refs, noise, part, sampling)
    result[f"pass_seconds_{len(some)}_particles"] = timing
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
