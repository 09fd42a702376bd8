"""Reconstruction and FSC benchmark: cryomath against torch-fourier-slice (back-projection),
torch-fourier-shell-correlation (FSC) and RELION's ``relion_reconstruct`` (if installed), in the
same run; then a 100,000-particle reconstruction streamed from disk.

    python bench/reconstruction.py [--n 1000] [--box 128] [--stream 100000] [--workdir DIR]
    python bench/reconstruction.py --relion 4000 [--workdir DIR]   # like for like with RELION

Each case runs in a fresh subprocess; times are best of 3 after a warm-up (single runs for the
big cases), peak extra memory is VmHWM minus the RSS before the timed work.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import MEMORY_PROBES

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

COMMON = (
    MEMORY_PROBES
    + """
import json, sys, time
import torch
torch.set_num_threads(2)
n, box, pad, repeat = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
g = torch.Generator().manual_seed(0)
images = torch.randn(n, box, box, generator=g)
from cryomath.so3 import random_rotations
rotations = random_rotations(n, 1).float()
def timed(f):
    if repeat > 1:
        f()
    base = rss_mb()
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    print(json.dumps({"seconds": min(times), "peak_extra_mb": hwm_mb() - base}))
"""
)

CASES = {
    "cryomath back-projection": """
from cryomath.reconstruction import reconstruct
timed(lambda: reconstruct(images, rotations, 1.0, pad_factor=pad, prior_weight=None))
""",
    "torch-fourier-slice back-projection": """
from torch_fourier_slice import backproject_2d_to_3d
timed(lambda: backproject_2d_to_3d(images, rotations, pad_factor=pad))
""",
    "cryomath FSC 256^3": """
from cryomath.resolution import fourier_shell_correlation
a, b = torch.randn(256, 256, 256, generator=g), torch.randn(256, 256, 256, generator=g)
timed(lambda: fourier_shell_correlation(a, b))
""",
    "torch-fourier-shell-correlation 256^3": """
from torch_fourier_shell_correlation import fsc
a, b = torch.randn(256, 256, 256, generator=g), torch.randn(256, 256, 256, generator=g)
timed(lambda: fsc(a, b))
""",
}

RELION_600 = """
import json, sys, time
import torch
torch.set_num_threads(2)
from cryomath.io import read_relion_star
from cryomath.pipelines import reconstruct_particles
table = read_relion_star(sys.argv[1])
t = time.perf_counter()
reconstruct_particles(table, 2.0)
print(json.dumps({"seconds": time.perf_counter() - t}))
"""

STREAM = """
import json, sys, time
import torch
torch.set_num_threads(2)
from cryomath.io import read_relion_star
from cryomath.pipelines import reconstruct_particles
table = read_relion_star(sys.argv[1])
t = time.perf_counter()
reconstruct_particles(table, 2.0, batch_size=512, dtype=torch.float32)
seconds = time.perf_counter() - t
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) / 1024
rate = table.n / seconds
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "particles_per_second": rate}))
"""

LIKE_FOR_LIKE = """
import json, sys, time
import numpy as np
import torch
threads, what = int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
from cryomath.io import read_relion_star
from cryomath.pipelines import reconstruct_particles
from cryomath.reconstruction import accumulate_halves, invert
table = read_relion_star(sys.argv[1])
t = time.perf_counter()
if what == "full":  # one map of all particles, as relion_reconstruct without --subset
    invert(accumulate_halves(table, np.ones(table.n, dtype=np.int64), 2.0)[1], prior_weight=None)
else:  # both half maps, the full map and the FSC
    reconstruct_particles(table, 2.0)
print(json.dumps({"seconds": time.perf_counter() - t}))
"""

SIMULATE_MAP = """
import sys, warnings
import numpy as np, torch
from cryomath.fourier import fourier_resize
from cryomath.io import read_mrc
from cryomath.pipelines import simulate_dataset
from cryomath.simulate import SimulationSettings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    volume = torch.from_numpy(read_mrc(sys.argv[1], np.float64)[0])
n, out = int(sys.argv[2]), sys.argv[3]
simulate_dataset(volume, out, SimulationSettings(n, 1.05, snr=0.1, shift_sigma_angstrom=2.0))
"""

SIMULATE = """
import sys, torch
from cryomath.pipelines import simulate_dataset
from cryomath.simulate import SimulationSettings
n, box, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
g = torch.Generator().manual_seed(0)
small = torch.randn(box // 2, box // 2, box // 2, generator=g, dtype=torch.float64)
volume = torch.fft.irfftn(torch.fft.rfftn(small), s=(box, box, box))
simulate_dataset(volume, out, SimulationSettings(n, 1.0, snr=0.1))
"""


def run(code: str, *args) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True
    )
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return {"error": tail}
    return json.loads(done.stdout.strip().splitlines()[-1])


def relion(star: Path, workdir: str) -> dict:
    if shutil.which("relion_reconstruct") is None:
        return {"error": "relion_reconstruct not installed"}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t = time.perf_counter()
        for subset in ("1", "2"):
            subprocess.run(
                ["relion_reconstruct", "--i", str(star), "--o", f"{tmp}/half{subset}.mrc", "--ctf",
                 "--angpix", "1.05", "--subset", subset],
                capture_output=True, check=True, cwd=star.parent,
            )  # fmt: skip
        return {"seconds": time.perf_counter() - t}


def like_for_like(n: int, workdir: str | None) -> None:
    """``relion_reconstruct`` against ``cryomath reconstruct``'s library call on the same ``n``
    simulated particles of EMD-3488 (100^2, 1.05 A, CTF, SNR 0.1, origins sd 2 A), padding 2,
    double precision both: the full map alone, and the two halves (cryomath's also make the
    full map and the FSC). relion_reconstruct 3.1 has no thread option: cryomath is timed on
    1 thread (like for like) and on 2."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        emd = DATA / "map_model" / "emd_3488.mrc"
        subprocess.run([sys.executable, "-c", SIMULATE_MAP, str(emd), str(n), tmp], check=True)
        star = Path(tmp) / "particles.star"
        for what in ("full", "halves"):
            if shutil.which("relion_reconstruct") is None:
                relion_seconds = None
            else:
                t = time.perf_counter()
                for subset in ("1", "2") if what == "halves" else ("0",):
                    subprocess.run(
                        ["relion_reconstruct", "--i", str(star), "--o", f"{tmp}/r{subset}.mrc",
                         "--ctf", "--angpix", "1.05", "--subset", subset],
                        capture_output=True, check=True, cwd=tmp,
                    )  # fmt: skip
                relion_seconds = time.perf_counter() - t
            ours = {k: run(LIKE_FOR_LIKE, star, k, what)["seconds"] for k in (1, 2)}
            ratio = (
                ""
                if relion_seconds is None
                else f", RELION / cryomath (1 thread) {relion_seconds / ours[1]:.2f}x"
            )
            print(
                f"{n} x 100^2, {what}: relion_reconstruct {relion_seconds} s, cryomath "
                f"1 thread {ours[1]:.2f} s, 2 threads {ours[2]:.2f} s{ratio}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--stream", type=int, default=100_000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--stream-only", action="store_true", help="Only the streamed run")
    parser.add_argument(
        "--relion", type=int, default=0, help="Only RELION against cryomath on this many particles"
    )
    args = parser.parse_args()
    if args.relion:
        like_for_like(args.relion, args.workdir)
        return
    if not args.stream_only:
        peers(args)
    if args.stream:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            subprocess.run(
                [sys.executable, "-c", SIMULATE, str(args.stream), str(args.box), tmp], check=True
            )
            result = run(STREAM, Path(tmp) / "particles.star")
            print(
                f"stream-reconstruct {args.stream} x {args.box}^2 from disk: {result}", flush=True
            )


def peers(args) -> None:
    for pad in (1.0, 2.0):
        for name in ("cryomath back-projection", "torch-fourier-slice back-projection"):
            repeat = 3 if pad == 1.0 else 1
            result = run(COMMON + CASES[name], args.n, args.box, pad, repeat)
            print(f"{name:40s} pad {pad:g}: {result}", flush=True)
    for name in ("cryomath FSC 256^3", "torch-fourier-shell-correlation 256^3"):
        print(f"{name:40s}: {run(COMMON + CASES[name], 1, 8, 1, 3)}", flush=True)
    star = DATA / "relion313_reference" / "emd3488_relion_ctf_noise_600.star"
    print(f"{'cryomath, 600 particles 100^2, halves':40s}: {run(RELION_600, star)}", flush=True)
    print(
        f"{'relion_reconstruct, the same (2 halves)':40s}: {relion(star, args.workdir)}", flush=True
    )
    if args.stream:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            run(SIMULATE, args.stream, args.box, tmp)
            result = run(STREAM, Path(tmp) / "particles.star")
            print(
                f"stream-reconstruct {args.stream} x {args.box}^2 from disk: {result}", flush=True
            )


if __name__ == "__main__":
    main()
