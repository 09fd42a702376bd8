"""Projection and CTF benchmark: cryomath against torch-fourier-slice, cryoJAX and torch-ctf in
the same run; then simulation of a large dataset streamed to disk.

    python bench/projection.py [--n 1000] [--box 128] [--simulate 100000] [--workdir DIR]
        [--pads 1,2] [--repeat 1] [--cases cryomath,cryojax,...]

Each measurement runs in a fresh subprocess: best-of-3 wall time after one warm-up (cryoJAX's
includes jit compilation in the warm-up only, as does cryomath's ``compiled=True``) and the
peak extra resident memory (VmHWM minus the RSS before the timed work). cryoJAX's volume
transform is made outside the timed call (its API separates it); torch-fourier-slice's is
inside; cryomath is timed both ways. Volumes are
float32 random band-limited 128^3 maps; rotations are Haar-random; trilinear interpolation
everywhere. CTFs: 1000 astigmatic 128 x 128 rfft CTFs.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time

from measure import MEMORY_PROBES

COMMON = (
    MEMORY_PROBES
    + """
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(2)
n, box, pad = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
g = torch.Generator().manual_seed(0)
small = torch.randn(box // 2, box // 2, box // 2, generator=g)
volume = torch.fft.irfftn(torch.fft.rfftn(small), s=(box, box, box)).float().contiguous()
from cryomath.so3 import random_rotations
rotations = random_rotations(n, 1).float()
def timed(f):
    f()
    base = rss_mb()
    best = min(_t(f) for _ in range(3))
    print(json.dumps({"seconds": best, "peak_extra_mb": hwm_mb() - base}))
def _t(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t
"""
)

CASES = {
    "cryomath": """
from cryomath.projection import project_fourier
timed(lambda: project_fourier(volume, rotations, pad_factor=pad))
""",
    "cryomath (volume prepared once)": """
from cryomath.projection import prepare_volume, extract_central_slices_rfft_3d
from cryomath.fourier.fft import ifft_nd
spectrum = prepare_volume(volume, pad_factor=pad)
timed(lambda: ifft_nd(extract_central_slices_rfft_3d(spectrum, rotations), (box, box), rfft=True))
""",
    "cryomath (compiled)": """
from cryomath.projection import prepare_volume, extract_central_slices_rfft_3d
from cryomath.fourier.fft import ifft_nd
spectrum = prepare_volume(volume, pad_factor=pad)
timed(lambda: ifft_nd(
    extract_central_slices_rfft_3d(spectrum, rotations, compiled=True), (box, box), rfft=True
))
""",
    "torch-fourier-slice": """
from torch_fourier_slice import project_3d_to_2d
timed(lambda: project_3d_to_2d(volume, rotations, pad_factor=pad))
""",
    "cryojax": """
import jax, jax.numpy as jnp
import cryojax.simulator as cxs
jax.config.update("jax_platform_name", "cpu")
vol = cxs.FourierVoxelGridVolume.from_real_voxel_grid(jnp.asarray(volume.numpy()), pad_scale=pad)
config = cxs.BasicImageConfig((box, box), 1.0, padded_shape=(int(box * pad), int(box * pad)))
extract = cxs.FourierSliceExtraction()
angles = jnp.asarray(np.random.default_rng(0).uniform(-180, 180, (n, 3)))
@jax.jit
def run(a):
    def one(x):
        pose = cxs.EulerAnglePose(phi_angle=x[0], theta_angle=x[1], psi_angle=x[2])
        return extract.integrate(vol.rotate_to_pose(pose), config, outputs_real_space=True)
    return jax.lax.map(one, a, batch_size=64)
timed(lambda: run(angles).block_until_ready())
""",
    "ctf-cryomath": """
from cryomath.ctf import CTF, compute_ctf
df = torch.linspace(8000, 30000, n)
one = torch.tensor
ctf = CTF(df, df - 300, one(30.0), one(300.0), one(2.7), one(0.1))
timed(lambda: compute_ctf(ctf, (box, box), 1.0))
""",
    "ctf-torch-ctf": """
from torch_ctf import calculate_ctf_2d
df = torch.linspace(0.8, 3.0, n)[:, None, None]
timed(lambda: calculate_ctf_2d(defocus=df, astigmatism=0.015, astigmatism_angle=30.0, voltage=300.0,
    spherical_aberration=2.7, amplitude_contrast=0.1, phase_shift=0.0, pixel_size=1.0,
    image_shape=(box, box), rfft=True, fftshift=False))
""",
}

SIMULATE = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(2)
from cryomath.pipelines import simulate_dataset
from cryomath.simulate import SimulationSettings
n, box, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
g = torch.Generator().manual_seed(0)
small = torch.randn(box // 2, box // 2, box // 2, generator=g, dtype=torch.float64)
volume = torch.fft.irfftn(torch.fft.rfftn(small), s=(box, box, box))
t = time.perf_counter()
settings = SimulationSettings(n, 1.0, snr=0.1, shift_sigma_angstrom=3.0)
simulate_dataset(volume, out, settings)
seconds = time.perf_counter() - t
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "images_per_second": n / seconds}))
"""


def run(code: str, *args) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True
    )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--simulate", type=int, default=100_000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--pads", default="1,2", help="padding factors, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds of each case")
    parser.add_argument(
        "--cases",
        default="cryomath,cryomath (volume prepared once),cryomath (compiled),torch-fourier-slice,"
        "cryojax",
        help="slicing cases, comma-separated",
    )
    args = parser.parse_args()
    results = {}
    rounds = [
        (float(pad), name)
        for pad in args.pads.split(",")
        for _ in range(args.repeat)
        for name in args.cases.split(",")
    ]
    for pad, name in rounds:
        key = f"{name} pad {pad:g}"
        results[key] = run(COMMON + CASES[name], args.n, args.box, pad)
        print(f"{name:32s} pad {pad:g}: {results[key]}", flush=True)
    for name in ("ctf-cryomath", "ctf-torch-ctf"):
        results[name] = run(COMMON + CASES[name], args.n, args.box, 1)
        print(f"{name:32s}: {results[name]}", flush=True)
    if args.simulate:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            t = time.perf_counter()
            results["simulate"] = run(SIMULATE, args.simulate, args.box, tmp)
            print(
                f"simulate {args.simulate} x {args.box}^2: {results['simulate']} "
                f"({time.perf_counter() - t:.0f} s with start-up)",
                flush=True,
            )


if __name__ == "__main__":
    main()
