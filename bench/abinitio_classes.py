"""Ab initio with two classes on two molecules (issue 17: K classes from heterogeneous
particles): how often ``cryomath abinitio --classes 2`` separates them, with RELION 4's
inactive-class rule (``--class-inactivity-threshold 0.1``, the default) and without it (0),
over several seeds; the adjusted Rand index of the classes against the simulation's states and
each class map's FSC against each molecule in its better hand (``fitting.fit_both_hands``).

    python bench/abinitio_classes.py [--n 600] [--iterations 30] [--seeds 0,1,2]
        [--thresholds 0.1,0] [--out bench-out/abinitio-classes]

The molecules: the bundled 6VYB N-domain and haemoglobin (5ME2, from the shared test data),
half each, box 32 at 3 A, CTF, offsets of 3 A sd, rendered noiseless by ``cryomath simulate``
and then given one white noise level for every image (SNR 0.1 over the mean image): the
simulator's ``--snr`` sets each image's own noise, which would tell the molecules apart by
their noise alone.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cryomath.cli import main as cryomath
from cryomath.demo import BUNDLED_MODEL
from cryomath.fitting import fit_both_hands
from cryomath.heterogeneity import adjusted_rand_index
from cryomath.io import read_mrc, read_particles, write_mrc
from cryomath.pipelines import read_volume

HAEMOGLOBIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "map_model" / "5me2.pdb"
BOX, PIXEL, SNR = 32, 3.0, 0.1


def make_dataset(folder: Path, n: int) -> Path:
    """The particles STAR of the two molecules (module docstring)."""
    star = folder / "particles.star"
    if star.exists():
        return star
    assert cryomath(["simulate", str(BUNDLED_MODEL), str(HAEMOGLOBIN), "--state-weights", "1,1",
                     "--n", str(n), "--box-size", str(BOX), "--pixel-size", str(PIXEL),
                     "--shift-sigma", "3", "--snr", "1e6", "--out", str(folder),
                     "--json"]) == 0  # fmt: skip
    for stack in sorted(folder.glob("particles_*.mrcs")):
        clean = read_mrc(stack)[0].astype(np.float64)
        sd = np.sqrt(clean.var(axis=(1, 2)).mean() / SNR)
        noise = np.random.default_rng(0).normal(size=clean.shape) * sd
        write_mrc(stack, (clean + noise).astype(np.float32), PIXEL, force=True)
    return star


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--thresholds", default="0.1,0")
    parser.add_argument("--out", type=Path, default=Path("bench-out/abinitio-classes"))
    args = parser.parse_args()
    star = make_dataset(args.out / "data", args.n)
    states = read_particles(star).extra["rlnClassNumber"].to_numpy()
    truths = [read_volume(path, BOX, PIXEL)[0] for path in (BUNDLED_MODEL, HAEMOGLOBIN)]
    rows = []
    for threshold in args.thresholds.split(","):
        for seed in args.seeds.split(","):
            out = args.out / f"threshold{threshold}_seed{seed}"
            started = time.perf_counter()
            run = ["abinitio", str(star), "--classes", "2", "--iterations", str(args.iterations),
                   "--class-inactivity-threshold", threshold, "--seed", seed, "--out", str(out),
                   "--force", "--json"]  # fmt: skip
            assert cryomath(run) == 0
            seconds = time.perf_counter() - started
            found = read_particles(out / "particles.star").extra["rlnClassNumber"].to_numpy()
            history = json.loads((out / "iterations.json").read_text())["iterations"]
            fsc = []
            for k in (1, 2):
                volume = torch.from_numpy(read_mrc(out / f"abinitio_class{k:03d}.mrc")[0].copy())
                fsc.append([round(min(f.resolution_angstrom for f in fit_both_hands(
                    truth, volume.double(), PIXEL)), 1) for truth in truths])  # fmt: skip
            rows.append({"threshold": float(threshold), "seed": int(seed),
                         "seconds": round(seconds, 1),
                         "ari": round(adjusted_rand_index(states, found), 3),
                         "fsc_05_angstrom_vs_ndomain_haemoglobin": fsc,
                         "restarts": [line["iteration"] for line in history
                                      if line.get("reset_class")]})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"runs": rows}, indent=1))


if __name__ == "__main__":
    main()
