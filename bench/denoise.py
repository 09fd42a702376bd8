"""Denoising side by side with ASPIRE's covariance Wiener filter (issue 19, section 1): the same
simulated stacks at several SNRs, cryomath's ``wiener`` and ``cwf`` and ``aspire denoise`` (CWF,
ASPIRE 0.14.3 in its own virtual environment), error and FRC against the clean CTF-free images,
wall time.

    python bench/denoise.py [--particles 1000] [--snr 0.01,0.05,0.5] [--aspire PATH] [--out DIR]

Particles: the bundled N-domain model at a 64 box of 1.5 A, uniform poses, CTF (defocus
1-2.5 um, 300 kV), white noise (``cryomath simulate``); the truth is the same particles without
CTF or noise. Every method estimates the CTF-free image (``--ctf-corrected``; ASPIRE's CWF
does this by design), with the noise estimated from the images. ASPIRE runs ``aspire denoise
--max_resolution 64`` (no downsampling) with its white-noise estimator. Relative error:
``sum (x - truth)^2 / sum truth^2`` over the stack, also after the best single scale factor
per method (a method whose output is scaled differently is not penalised for it). ASPIRE's CTF
is the negative of RELION's (``CTFFilter``: ``sqrt(1 - a^2) sin(chi) - a cos(chi)``, the
cisTEM sign), so its CTF-corrected images come out contrast-inverted: the best scale is
negative, and its FRC is taken of the sign-corrected images. FRC: the stack's mean Fourier ring
correlation with the truth, its 0.5 crossing.
"""

import argparse
import json
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cryomath.demo import BUNDLED_MODEL
from cryomath.io import read_mrc, read_particles
from cryomath.pipelines import read_volume, simulate_dataset
from cryomath.pipelines.denoising import denoise_particles
from cryomath.resolution import fourier_ring_correlation, resolution_angstrom
from cryomath.simulate import SimulationSettings

PIXEL = 1.5


def stack(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_mrc(path, np.float64)[0])


def scores(estimate: torch.Tensor, truth: torch.Tensor) -> dict:
    error = float(((estimate - truth) ** 2).sum() / (truth**2).sum())
    scale = float((estimate * truth).sum() / (estimate**2).sum())
    scaled = float(((scale * estimate - truth) ** 2).sum() / (truth**2).sum())
    sign = 1.0 if scale >= 0 else -1.0  # ASPIRE's CTF has the opposite sign (module docstring)
    curve = fourier_ring_correlation(sign * estimate, truth, PIXEL)
    curve = replace(curve, fsc=curve.fsc.mean(0))
    return {"relative_error": error, "relative_error_best_scale": scaled, "best_scale": scale,
            "frc_0.5_angstrom": resolution_angstrom(curve, 0.5)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--snr", default="0.01,0.05,0.5")
    parser.add_argument(
        "--aspire",
        type=Path,
        default=Path("/tmp/aspire-venv/bin/aspire"),
        help="the aspire command (pip install aspire==0.14.3 in its own venv)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out/denoise"))
    args = parser.parse_args()
    if shutil.which(str(args.aspire)) is None:
        raise SystemExit(f"{args.aspire} not found: pip install aspire into a virtual environment")
    torch.set_num_threads(2)
    volume, _ = read_volume(BUNDLED_MODEL, 64, PIXEL)
    base = SimulationSettings(n_particles=args.particles, pixel_size_angstrom=PIXEL, seed=5)
    truth_dir = args.out / "truth"
    simulate_dataset(volume, truth_dir, replace(base, ctf=False, snr=None), force=True)
    truth = stack(truth_dir / "particles_000.mrcs")
    results = {"particles": args.particles, "box": 64, "pixel_angstrom": PIXEL}
    for snr in (float(s) for s in args.snr.split(",")):
        data = args.out / f"snr{snr:g}"
        simulate_dataset(volume, data, replace(base, snr=snr), force=True)
        table = read_particles(data / "particles.star")
        row = {}
        for method in ("wiener", "cwf"):
            start = time.perf_counter()
            denoise_particles(table, data / method, method, force=True, ctf_corrected=True)
            seconds = time.perf_counter() - start
            row[f"cryomath {method}"] = {
                "seconds": seconds,
                **scores(stack(data / method / "denoised.mrcs"), truth),
            }
        command = [str(args.aspire), "denoise", "--data_folder", ".", "--starfile_in",
                   "particles.star", "--starfile_out", "aspire.star", "--pixel_size",
                   str(PIXEL), "--max_resolution", "64"]  # fmt: skip
        for old in data.glob("aspire*"):  # aspire refuses to overwrite its outputs
            old.unlink()
        start = time.perf_counter()
        subprocess.run(command, cwd=data, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        output = data / f"aspire_0_{args.particles - 1}.mrcs"
        row["aspire cwf"] = {"seconds": seconds, "command": " ".join(command[1:]),
                             **scores(stack(output), truth)}  # fmt: skip
        results[f"snr {snr:g}"] = row
        for name, r in row.items():
            print(f"SNR {snr:<5g} {name:16s} {r['seconds']:7.1f} s  error {r['relative_error']:.3f}"
                  f" (best scale {r['relative_error_best_scale']:.3f}, x{r['best_scale']:.2f})"
                  f"  FRC 0.5 at {r['frc_0.5_angstrom']:.2f} A")  # fmt: skip
    (args.out / "denoise.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
