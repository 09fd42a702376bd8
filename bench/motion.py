"""Global motion correction side by side with RELION 3.1.3's own implementation (issue 19,
section 3): the same simulated movies (``simulate.movies``: a 1/k texture of rms contrast 0.3,
damage, Poisson counts, a known drift), the drift error against the truth, the wall time, and
how well each dose-weighted sum matches the undamaged field.

    python bench/motion.py [--movies 3] [--size 512] [--frames 24] [--dose 1.2] [--out DIR]

RELION runs ``relion_run_motioncorr --use_own --patch_x 1 --patch_y 1`` (global only, as
cryomath) with ``--dose_weighting``, B-factor 150 px^2, ``--j 2``. Its per-frame
``rlnMicrographShiftX/Y`` are the shifts that align each frame to the first: minus the drift
relative to frame 1 (measured: the increments have opposite signs to the true drift's).
"""

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from measure import require_relion

from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.shift import phase_ramp
from cryomath.io import read_mrc, read_star, write_mrc, write_relion_movies_star
from cryomath.motion import align_frames, aligned_sum
from cryomath.simulate.movies import MovieSettings, simulate_movie, texture


def rms(a: np.ndarray) -> float:
    return float(np.sqrt((a**2).sum(1).mean()))


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--dose", type=float, default=1.2)
    parser.add_argument("--out", type=Path, default=Path("bench-out/motion"))
    args = parser.parse_args()
    require_relion("relion_run_motioncorr")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    n = args.size
    truths, fields, names = [], [], []
    for i in range(args.movies):
        field = texture(n, 0.3, seed=i)
        movie = simulate_movie(field, 1.0, MovieSettings(
            n_frames=args.frames, dose_per_frame_e_per_a2=args.dose,
            initial_speed_px_per_frame=1.5, seed=10 + i))  # fmt: skip
        write_mrc(out / f"movie_{i:03d}.mrc", movie.frames.float().numpy(), 1.0, force=True)
        truths.append(movie)
        fields.append(field)
        names.append(f"movie_{i:03d}.mrc")
    write_relion_movies_star(out / "movies.star", names, 1.0, force=True)
    rows = {"cryomath": [], "relion": []}
    seconds = {"cryomath": 0.0, "relion": 0.0}
    for movie, field in zip(truths, fields, strict=True):
        frames = movie.frames.float()  # as read from a float32 movie
        start = time.perf_counter()
        drift = align_frames(frames)
        total = aligned_sum(frames, drift, 1.0, movie.exposures_e_per_a2.float())
        seconds["cryomath"] += time.perf_counter() - start
        truth = (movie.shifts_px - movie.shifts_px.mean(0)).numpy()
        centre = movie.shifts_px.mean(0)
        reference = ifft_nd(fft_nd(field, 2) * phase_ramp((n, n), centre), (n, n))
        rows["cryomath"].append((rms(drift.double().numpy() - truth),
                                 correlation(total.double(), reference)))  # fmt: skip
    command = ["relion_run_motioncorr", "--i", "movies.star", "--o", "MC/", "--use_own", "--j",
               "2", "--patch_x", "1", "--patch_y", "1", "--dose_weighting", "--angpix", "1",
               "--voltage", "300", "--dose_per_frame", str(args.dose), "--bfactor", "150",
               "--skip_defect"]  # fmt: skip
    shutil.rmtree(out / "MC", ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=out, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    seconds["relion"] = time.perf_counter() - start
    for i, (movie, field) in enumerate(zip(truths, fields, strict=True)):
        shifts = read_star(out / "MC" / f"movie_{i:03d}.star")["global_shift"]
        found = -shifts[["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy(np.float64)
        truth = movie.shifts_px.numpy()
        error = (found - found.mean(0)) - (truth - truth.mean(0))
        summed = torch.from_numpy(read_mrc(out / "MC" / f"movie_{i:03d}.mrc", np.float64)[0][0])
        reference = ifft_nd(fft_nd(field, 2) * phase_ramp((n, n), movie.shifts_px[0]), (n, n))
        rows["relion"].append((rms(error), correlation(summed, reference)))
    result = {"movies": args.movies, "size": n, "frames": args.frames,
              "dose_per_frame": args.dose, "relion_command": " ".join(command)}  # fmt: skip
    for name, values in rows.items():
        result[name] = {"seconds": seconds[name],
                        "drift_rms_error_px": [v[0] for v in values],
                        "sum_correlation_with_field": [v[1] for v in values]}  # fmt: skip
    result["time_ratio_relion_over_cryomath"] = seconds["relion"] / seconds["cryomath"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
