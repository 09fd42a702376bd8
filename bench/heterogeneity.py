"""Heterogeneity side by side with cryoDRGN (issue 18, section 6): the same simulated particles
with known poses and CTFs; cryomath's PPCA and covariance (``cryomath variability --method``)
and its VAE (``cryomath train-vae``), and cryoDRGN 4.3.1's VAE (``cryodrgn train_vae``, CPU,
its own virtual environment); latent correlation with the true trajectory coordinate,
adjusted Rand index of 2-means states, time, peak resident memory (ours: this process's,
reset before each method; cryoDRGN: its largest subprocess's); FSC-AUC of the per-state maps
(direct inversion of each found state's particles) against the true ones.

    python bench/heterogeneity.py [--particles 5000] [--epochs 20] [--cases continuous,discrete]
                                  [--methods ppca,covariance,vae,cryodrgn] [--device cuda]
                                  [--vae-beta 1] [--cryodrgn-args "..."] [--cryodrgn PATH]
                                  [--resume-cryodrgn] [--out DIR]

Particles: the bundled N-domain at a 64 box of 1.125 A, its upper half (z >= 32) moved along x;
SNR 0.05, CTF (defocus 1-2.5 um). Continuous: a trajectory through 7 frames moved by 0..6
voxels (a motion, not a linear change). Discrete: two states moved by 0 and 6 voxels, equal
weights. cryoDRGN: ``parse_pose_star``, ``parse_ctf_star``, ``train_vae --zdim 1
--uninvert-data --no-analysis`` (our images are RELION's protein-positive ones),
``-n EPOCHS``, the final ``z.pkl`` (its encoder's means); every epoch's ``z.N.pkl`` is scored
too (``cryodrgn per epoch``). A cryoDRGN run longer than one sitting: the same command with
``--resume-cryodrgn`` continues it from its last ``weights.N.pkl`` (``--load``), and its time
is then the sum of its epochs' own times from its ``run.log`` (the gaps between sittings do
not count).
"""

import argparse
import json
import pickle
import resource
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from measure import peak_memory_mb, reset_peak_memory

from cryomath.demo import BUNDLED_MODEL
from cryomath.heterogeneity import adjusted_rand_index, fsc_auc, kmeans, latent_correlation
from cryomath.io import read_particles
from cryomath.pipelines import read_conformations, read_volume, simulate_dataset
from cryomath.pipelines.variability import VariabilitySettings, analyse_variability
from cryomath.reconstruction import accumulate_halves, invert
from cryomath.simulate import SimulationSettings

BOX, PIXEL = 64, 1.125


def domain_states(shifts) -> torch.Tensor:
    base, _ = read_volume(BUNDLED_MODEL, BOX, PIXEL)
    upper = (torch.arange(BOX)[:, None, None] >= BOX // 2).double()
    return torch.stack([base * (1 - upper) + torch.roll(base * upper, s, -1) for s in shifts])


def maps_of(table, picks: np.ndarray) -> torch.Tensor:
    """One direct-inversion map per row of ``picks (G, N)`` (bool: the particles it takes)."""
    return torch.stack([invert(accumulate_halves(table, np.where(p, 1, 2))[1]) for p in picks])


def latent_neighbourhoods(latent: np.ndarray, states: np.ndarray, n_states: int) -> np.ndarray:
    """``(n_states, N)`` for each true state, the particles whose first latent coordinate is
    nearest the median of that state's particles, as many as the state has: the particles a
    method puts at that state (a method-agnostic map per state, cryoDRGN's or PCA's alike)."""
    z = latent[:, 0]
    picks = np.zeros((n_states, len(z)), bool)
    for k in range(n_states):
        members = states == k
        nearest = np.argsort(np.abs(z - np.median(z[members])))[: members.sum()]
        picks[k, nearest] = True
    return picks


def run_cryodrgn(cryodrgn: Path, folder: Path, epochs: int, extra: list[str],
                 resume: bool = False) -> tuple[np.ndarray, float, float, str]:  # fmt: skip
    star = folder / "particles.star"
    out = folder / "cryodrgn"
    last = max(epochs_written(out, "weights"), default=0) if resume else 0
    if not last:
        shutil.rmtree(out, ignore_errors=True)
    steps = [
        [str(cryodrgn), "parse_pose_star", str(star), "-o", str(folder / "pose.pkl"), "-D",
         str(BOX), "--Apix", str(PIXEL)],
        [str(cryodrgn), "parse_ctf_star", str(star), "-o", str(folder / "ctf.pkl"), "-D",
         str(BOX), "--Apix", str(PIXEL)],
        [str(cryodrgn), "train_vae", str(star), "--datadir", str(folder), "--poses",
         str(folder / "pose.pkl"), "--ctf", str(folder / "ctf.pkl"), "--zdim", "1",
         "--uninvert-data", "-n", str(epochs), "--no-analysis", *extra, "-o", str(out)],
    ]  # fmt: skip
    if last:  # its parsed poses and CTFs are there
        steps = [[*steps[2], "--load", str(out / f"weights.{last}.pkl")]]
    start = time.perf_counter()
    for step in steps:
        subprocess.run(step, check=True, capture_output=True)
    seconds = epoch_seconds(out) if last else time.perf_counter() - start
    # the largest child's peak (train_vae's: the parsing steps are small)
    memory = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return cryodrgn_latent(out), seconds, memory, " && ".join(" ".join(s) for s in steps)


def cryodrgn_latent(out: Path, epoch: int | None = None) -> np.ndarray:
    """cryoDRGN's latent means: the final epoch's ``z.pkl``, or epoch ``epoch``'s ``z.N.pkl``."""
    with open(out / ("z.pkl" if epoch is None else f"z.{epoch}.pkl"), "rb") as handle:
        return np.asarray(pickle.load(handle))


def epochs_written(out: Path, kind: str) -> list[int]:
    """The epochs of cryoDRGN's ``kind.N.pkl`` files in ``out`` (``weights`` or ``z``), sorted."""
    return sorted(int(p.name.split(".")[1]) for p in out.glob(f"{kind}.*.pkl"))


def epoch_seconds(out: Path) -> float:
    """The sum of the epochs' own times in cryoDRGN's ``run.log`` ("Finished in H:MM:SS")."""
    total = 0.0
    for line in (out / "run.log").read_text().splitlines():
        if "Epoch:" in line and "Finished in" in line:
            hours, minutes, seconds = line.rsplit("Finished in", 1)[1].strip().split(":")
            total += 3600 * int(hours) + 60 * int(minutes) + float(seconds)
    return total


def latent_scores(values: np.ndarray, table, truth, volumes: torch.Tensor,
                  nearest: np.ndarray | None) -> dict:  # fmt: skip
    """A latent's metrics: with a trajectory (``nearest``, each particle's nearest frame) its
    correlation with the true coordinate and the per-state FSC-AUC of its neighbourhoods; for
    discrete states the adjusted Rand index of its 2-means states and their maps' FSC-AUC."""
    if nearest is not None:
        maps = maps_of(table, latent_neighbourhoods(values, nearest, len(volumes)))
        return {"latent correlation": latent_correlation(values, truth.coordinate).best,
                "per-state FSC-AUC": float(fsc_auc(maps, volumes).mean())}  # fmt: skip
    labels = kmeans(torch.from_numpy(values[:, :1].copy()), 2).labels.numpy()
    maps = maps_of(table, labels == np.arange(2)[:, None])
    auc = max(fsc_auc(maps, volumes).mean(), fsc_auc(maps.flip(0), volumes).mean())
    return {"adjusted Rand index": adjusted_rand_index(truth.state, labels),
            "per-state FSC-AUC": float(auc)}  # fmt: skip


def ours(folder: Path, method: str, epochs: int, beta: float, device: str = "cpu"
         ) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """The latents of cryomath's ``method`` (``ppca``, ``covariance`` or ``vae``), its time and
    its peak resident memory (MB; this process's, reset before it starts)."""
    from cryomath.heterogeneity.neural import NeuralSettings
    from cryomath.pipelines.neural import train_neural_model

    table = read_particles(folder / "particles.star")
    out = folder / method
    reset_peak_memory()
    start = time.perf_counter()
    if method == "vae":
        train_neural_model(table, out, NeuralSettings(epochs=epochs, beta=beta), device=device,
                           force=True)  # fmt: skip
    else:
        settings = VariabilitySettings(method, n_components=2,
                                       iterations=15 if method == "ppca" else None)  # fmt: skip
        analyse_variability(table, out, settings, device=device, force=True)
    seconds = time.perf_counter() - start
    return np.load(out / "latent.npy"), seconds, peak_memory_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--vae-beta", type=float, default=1.0, help="the VAE's KL weight")
    parser.add_argument("--cryodrgn", type=Path, default=Path("/tmp/cryodrgn-venv/bin/cryodrgn"))
    parser.add_argument("--out", type=Path, default=Path("bench-out/heterogeneity"))
    parser.add_argument("--cases", default="continuous,discrete")
    parser.add_argument("--device", default="cpu", help="cryomath's device (cpu, cuda)")
    parser.add_argument("--methods", default="ppca,covariance,vae,cryodrgn")
    parser.add_argument(
        "--cryodrgn-args",
        default="",
        help='extra train_vae options, e.g. "--enc-dim 256 --dec-dim 256"',
    )
    parser.add_argument("--resume-cryodrgn", action="store_true",
                        help="continue cryoDRGN from its last weights.N.pkl in --out")  # fmt: skip
    args = parser.parse_args()
    methods = args.methods.split(",")
    if "cryodrgn" in methods and shutil.which(str(args.cryodrgn)) is None:
        raise SystemExit(f"{args.cryodrgn} not found: pip install cryodrgn==4.3.1 in a venv")
    if args.device == "cpu":
        torch.set_num_threads(2)  # like for like with the peers' two cores
    result = {"particles": args.particles, "box": BOX, "snr": 0.05, "epochs": args.epochs,
              "vae beta": args.vae_beta, "device": args.device}  # fmt: skip
    cases = {"continuous": (range(7), True), "discrete": ((0, 6), False)}
    for name in args.cases.split(","):
        shifts, trajectory = cases[name]
        folder = args.out / name
        volumes = domain_states(shifts)
        settings = SimulationSettings(n_particles=args.particles, pixel_size_angstrom=PIXEL,
                                      snr=0.05, seed=7, trajectory=trajectory)  # fmt: skip
        simulate_dataset(volumes, folder, settings, force=True)
        truth, table = read_conformations(folder), read_particles(folder / "particles.star")
        row, latents = {}, {}
        for method in methods:
            if method == "cryodrgn":
                latents[method], seconds, memory, command = run_cryodrgn(
                    args.cryodrgn, folder, args.epochs, args.cryodrgn_args.split(),
                    args.resume_cryodrgn)  # fmt: skip
                row["cryodrgn command"] = command
            else:
                latents[method], seconds, memory = ours(folder, method, args.epochs,
                                                        args.vae_beta, args.device)  # fmt: skip
            row[f"{method} seconds"] = seconds
            row[f"{method} peak memory MB"] = memory
        nearest = None
        if trajectory:  # the particles' nearest trajectory frames, and their own maps
            nearest = np.rint(truth.coordinate * (len(volumes) - 1)).astype(np.int64)
            oracle = maps_of(table, nearest == np.arange(len(volumes))[:, None])
            row["true states per-state FSC-AUC"] = float(fsc_auc(oracle, volumes).mean())
        # the metrics' floor: a latent that knows nothing (seeded)
        latents["random latent"] = np.random.default_rng(0).normal(size=(table.n, 1))
        for who, values in latents.items():
            for metric, value in latent_scores(values, table, truth, volumes, nearest).items():
                row[f"{who} {metric}"] = value
        if "cryodrgn" in methods:  # how its latent learned
            out = folder / "cryodrgn"
            row["cryodrgn per epoch"] = {
                epoch: latent_scores(cryodrgn_latent(out, epoch), table, truth, volumes, nearest)
                for epoch in epochs_written(out, "z")
            }
        result[name] = row
        print(name, json.dumps({k: v for k, v in row.items() if "command" not in k}))
    (args.out / f"heterogeneity-{'-'.join(methods)}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
