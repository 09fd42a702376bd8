"""Ewald-sphere correction side by side with RELION 3.1.3's ``relion_reconstruct --ewald``
(issue 19, section 4): the same simulated particles, reconstructed flat, with the correction
and with the reversed curvature (the other hand), by both programs; FSC against the truth and
wall time.

    python bench/ewald.py [--particles 1000] [--snr 0] [--box 64] [--voxel 0.25]
                          [--voltage 100] [--out DIR] [--write-reference DIR]

The particle: EMD-3488 Fourier-resampled to a 64 box, its spectrum flattened
(``resolution.flatten_spectrum``: as much signal at Nyquist as at low resolution) and given
voxels of 0.25 Angstrom: a 9.5-Angstrom particle at 0.5-Angstrom Nyquist, 100 kV. What sets
the size of the effect is ``D lambda / d^2`` (the sphere leaves a slice by ``lambda k^2 / 2``,
a phase of ``pi lambda D / d^2`` across the particle): 1.4 here, as for a 700-Angstrom
particle at 3 Angstrom and 300 kV, at a box CI can afford. Images: ``cryomath simulate
--ewald``'s model, defocus 0.5-1.5 um, noiseless unless ``--snr``; the same particles simulated
flat are the reference of what the curvature costs. ``--write-reference DIR`` copies RELION's
maps to DIR (``tests/reference/ewald``: the test that proves the curvature sign).
"""

import argparse
import json
import shutil
import subprocess
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from measure import require_relion

from cryomath.imaging import Ewald
from cryomath.io import read_mrc, read_particles
from cryomath.pipelines import read_volume, simulate_dataset
from cryomath.reconstruction import accumulate_halves, invert
from cryomath.resolution import flatten_spectrum, fourier_shell_correlation, resolution_angstrom
from cryomath.simulate import SimulationSettings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def truth_map(box: int) -> torch.Tensor:
    """The test particle (module docstring), ``(box, box, box)`` float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EMD-3488's header statistics
        volume, _ = read_volume(DATA / "map_model" / "emd_3488.mrc", box, 1.05 * 100 / box)
    return flatten_spectrum(volume)


def scores(volume: torch.Tensor, truth: torch.Tensor, voxel: float) -> dict:
    curve = fourier_shell_correlation(volume, truth, voxel)
    fsc = curve.fsc.numpy()
    n = truth.shape[-1]
    return {"fsc_0.5_angstrom": resolution_angstrom(curve, 0.5),
            "mean_fsc_outer_quarter": float(fsc[3 * n // 8 : n // 2].mean()),
            "fsc": [round(float(v), 4) for v in fsc]}  # fmt: skip


def ours(star: Path, ewald: Ewald | None) -> tuple[torch.Tensor, float]:
    """One map of all particles (as ``relion_reconstruct`` without ``--subset``)."""
    table = read_particles(star)
    start = time.perf_counter()
    sums = accumulate_halves(table, np.ones(table.n, dtype=np.int64), ewald=ewald)[1]
    volume = invert(sums, prior_weight=1e-3)
    return volume, time.perf_counter() - start


def relion(star: Path, out: Path, options: list[str]) -> tuple[torch.Tensor, float, str]:
    command = ["relion_reconstruct", "--i", star.name, "--o", out.name, "--ctf", *options]
    start = time.perf_counter()
    subprocess.run(command, cwd=star.parent, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return torch.from_numpy(read_mrc(out, np.float64)[0]), seconds, " ".join(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--snr", type=float, default=0.0, help="0: noiseless")
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--voxel", type=float, default=0.25, help="Angstrom")
    parser.add_argument("--voltage", type=float, default=100.0, help="kV")
    parser.add_argument("--mask-diameter", type=float, default=None, help="A (default: 0.9 box)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/ewald"))
    parser.add_argument("--write-reference", type=Path, default=None)
    args = parser.parse_args()
    require_relion("relion_reconstruct")
    torch.set_num_threads(2)
    truth = truth_map(args.box)
    mask = args.mask_diameter or round(0.9 * args.box * args.voxel, 2)
    settings = SimulationSettings(
        n_particles=args.particles, pixel_size_angstrom=args.voxel, seed=3, voltage_kv=args.voltage,
        defocus_min_angstrom=5000.0, defocus_max_angstrom=15000.0, snr=args.snr or None,
        ewald=True,
    )  # fmt: skip
    simulate_dataset(truth, args.out, settings, force=True)
    star = args.out / "particles.star"
    # the same particles without the curvature: what a flat slice would have given
    simulate_dataset(truth, args.out / "flat", replace(settings, ewald=False), force=True)
    reference, seconds = ours(args.out / "flat" / "particles.star", None)
    cases = {
        "flat": (None, []),
        "ewald": (Ewald(1, mask), ["--ewald", "--mask_diameter", str(mask)]),
        "reverse": (Ewald(-1, mask), ["--ewald", "--mask_diameter", str(mask),
                                      "--reverse_curvature"]),
        "ewald_unmasked": (Ewald(1), None),
    }  # fmt: skip
    result = {
        "particles": args.particles,
        "snr": args.snr,
        "box": args.box,
        "voxel_angstrom": args.voxel,
        "voltage_kv": args.voltage,
        "mask_diameter_angstrom": mask,
        "cryomath flat data": {"seconds": seconds, **scores(reference, truth, args.voxel)},
    }
    for name, (ewald, options) in cases.items():
        volume, seconds = ours(star, ewald)
        result[f"cryomath {name}"] = {"seconds": seconds, **scores(volume, truth, args.voxel)}
        if options is None:
            continue
        volume, seconds, command = relion(star, args.out / f"relion_{name}.mrc", options)
        result[f"relion {name}"] = {"seconds": seconds, "command": command,
                                    **scores(volume, truth, args.voxel)}  # fmt: skip
    for name, row in result.items():
        if isinstance(row, dict):
            print(f"{name:24s} {row['seconds']:7.2f} s  FSC 0.5 at {row['fsc_0.5_angstrom']:.2f} A"
                  f"  mean FSC (outer quarter) {row['mean_fsc_outer_quarter']:.3f}")  # fmt: skip
    print(
        "time ratio relion/cryomath (ewald):",
        round(result["relion ewald"]["seconds"] / result["cryomath ewald"]["seconds"], 2),
    )
    (args.out / "ewald.json").write_text(json.dumps(result, indent=1))
    if args.write_reference is not None:
        args.write_reference.mkdir(parents=True, exist_ok=True)
        for name in ("ewald", "reverse"):
            shutil.copy(
                args.out / f"relion_{name}.mrc", args.write_reference / f"relion_{name}.mrc"
            )


if __name__ == "__main__":
    main()
