"""I/O benchmark: lazy reads from a 100,000-image stack, and 1,000,000-row .cs <-> STAR.

    python bench/io.py [--images 100000] [--box 128] [--rows 1000000] [--workdir DIR]

Each measurement runs in a fresh subprocess; peak resident memory is its VmHWM (Linux), which,
unlike ru_maxrss, does not inherit the parent's peak across exec.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

PEAK_RSS = """
def peak_rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

READ_STACK = (
    PEAK_RSS
    + """
import json, sys, time
import numpy as np
from cryomath.io.mrc import ImageStack
rss0 = peak_rss_mb()
t = time.perf_counter()
stack = ImageStack(sys.argv[1])
idx = np.random.default_rng(0).choice(len(stack), 1000, replace=False)
total = 0.0
for i in idx:
    total += float(stack[int(i)].sum())
elapsed = time.perf_counter() - t
print(json.dumps({"n_images": len(stack), "seconds": elapsed,
                  "rss_after_imports_mb": rss0,
                  "peak_rss_mb": peak_rss_mb(),
                  "torch_imported": "torch" in sys.modules}))
"""
)

CONVERT = (
    PEAK_RSS
    + """
import json, sys, time
from cryomath.io import read_particles, write_particles
cs, star, back = sys.argv[1:4]
times = {}
t = time.perf_counter(); table = read_particles(cs); times["read_cs"] = time.perf_counter() - t
t = time.perf_counter(); write_particles(table, star); times["write_star"] = time.perf_counter() - t
t = time.perf_counter(); table2 = read_particles(star); times["read_star"] = time.perf_counter() - t
t = time.perf_counter(); write_particles(table2, back); times["write_cs"] = time.perf_counter() - t
times["total"] = sum(times.values())
times["rows"] = table2.n
times["peak_rss_mb"] = peak_rss_mb()
print(json.dumps(times))
"""
)


def make_stack(path: Path, n: int, box: int) -> None:
    rng = np.random.default_rng(0)
    with mrcfile.new_mmap(str(path), shape=(n, box, box), mrc_mode=2) as mrc:
        mrc.set_image_stack()
        for start in range(0, n, 5000):
            stop = min(n, start + 5000)
            mrc.data[start:stop] = rng.standard_normal((stop - start, box, box), dtype=np.float32)


def make_cs(path: Path, rows: int) -> None:
    source = np.load(DATA / "cryodrgn_cryosparc" / "cryosparc_P12_J24_001_particles.cs")
    big = np.resize(source, rows)
    big["uid"] = np.arange(rows, dtype=np.uint64)
    big["blob/idx"] = np.arange(rows) % 100000
    with open(path, "wb") as handle:
        np.save(handle, big)


def run(script: str, *args: str) -> dict:
    command = [sys.executable, "-c", script, *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        make_stack(tmp / "stack.mrcs", args.images, args.box)
        print(f"made {args.images} x {args.box}^2 stack in {time.perf_counter() - t:.1f} s")
        stack = run(READ_STACK, str(tmp / "stack.mrcs"))
        print("lazy read of 1000 random images:", json.dumps(stack))
        make_cs(tmp / "big.cs", args.rows)
        convert = run(CONVERT, str(tmp / "big.cs"), str(tmp / "big.star"), str(tmp / "back.cs"))
        print(f"{args.rows}-row .cs -> STAR -> .cs:", json.dumps(convert))


if __name__ == "__main__":
    main()
