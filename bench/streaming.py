"""Peak memory of the stack-level commands against the amount of data: each command (``refine``
and ``class2d`` for one iteration) runs in a
fresh process on 1,024 and 8,192 particles of 64 x 64 (batches of 128), and ``fsc`` on two
128^3 and two 256^3 maps; the peak is VmHWM, reset after importing the CLI (so torch's import,
done by the command, is included). ``tests/test_streaming.py`` asserts the same growth.

    python bench/streaming.py [--workdir /tmp]
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from cryomath.atoms import map_from_model, read_atoms
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier import crop_or_pad
from cryomath.io import write_mrc
from cryomath.pipelines import simulate_dataset
from cryomath.simulate import SimulationSettings

PEAK = """
import sys
from pathlib import Path
from cryomath.cli import main
Path("/proc/self/clear_refs").write_text("5")
assert main(sys.argv[1:]) == 0
print(hwm_mb())
"""
sys.path.insert(0, str(Path(__file__).parent))
from measure import MEMORY_PROBES  # noqa: E402

COMMANDS = {
    "simulate": ["simulate", "{root}/map.mrc", "--n", "{n}", "--out", "{root}/sim{n}",
                 "--shard-size", "4096", "--batch-size", "128"],
    "project --ctf": ["project", "{root}/map.mrc", "--poses", "{root}/{n}/particles.star",
                      "--ctf", "--out", "{root}/proj{n}.mrcs", "--batch-size", "128"],
    "reconstruct": ["reconstruct", "{root}/{n}/particles.star", "--out", "{root}/rec{n}",
                    "--batch-size", "128"],
    "reconstruct --method cg --pad 1 --iterations 1": [
        "reconstruct", "{root}/{n}/particles.star", "--method", "cg", "--iterations", "1",
        "--pad", "1", "--out", "{root}/cg{n}", "--batch-size", "128"],
    "convert --stack": ["convert", "{root}/{n}/particles.cs", "{root}/conv{n}/particles.star",
                        "--stack", "{root}/conv{n}/particles.mrcs", "--batch-size", "128"],
    # one iteration each, on small grids: the E-step's memory is the batch's scores, the
    # projection tables and the M-step's sums, none of which grows with the particles
    "refine (1 iteration, order 1)": [
        "refine", "{root}/{n}/particles.star", "--reference", "{root}/map.mrc",
        "--max-iterations", "1", "--healpix-order", "1", "--maxsig", "8", "--offset-range", "2",
        "--out", "{root}/ref{n}", "--batch-size", "128"],
    "class2d (1 iteration, 4 classes)": [
        "class2d", "{root}/{n}/particles.star", "--classes", "4", "--iterations", "1",
        "--psi-step", "30", "--offset-range", "2", "--out", "{root}/c2d{n}", "--batch-size",
        "128"],
}  # fmt: skip


def _peak_mb(argv: list[str]) -> float:
    run = subprocess.run([sys.executable, "-c", MEMORY_PROBES + PEAK, *argv, "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(run.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    root = args.workdir / "bench-streaming"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    volume = map_from_model(read_atoms(BUNDLED_MODEL), 1.5, None, margin_angstrom=5.0)[0]
    volume = crop_or_pad(volume, (64, 64, 64))
    write_mrc(root / "map.mrc", volume.float().numpy(), 1.5)
    counts = (1024, 8192)
    for n in counts:
        settings = SimulationSettings(n_particles=n, pixel_size_angstrom=1.5, shard_size=1024)
        simulate_dataset(volume, root / str(n), settings)
    print(f"| command | {counts[0]:,} particles | {counts[1]:,} particles |\n|---|---|---|")
    for name, argv in COMMANDS.items():
        peaks = [_peak_mb([a.format(n=n, root=root) for a in argv]) for n in counts]
        print(f"| `{name}` | {peaks[0]:.0f} MB | {peaks[1]:.0f} MB |", flush=True)
    g = np.random.default_rng(0)
    peaks = []
    for n in (128, 256):
        for i in (1, 2):
            write_mrc(root / f"{n}_{i}.mrc", g.standard_normal((n, n, n), np.float32), 1.0)
        peaks.append(_peak_mb(["fsc", str(root / f"{n}_1.mrc"), str(root / f"{n}_2.mrc")]))
    print(f"\n| command | 128^3 maps | 256^3 maps |\n|---|---|---|\n"
          f"| `fsc` (streamed) | {peaks[0]:.0f} MB | {peaks[1]:.0f} MB |")  # fmt: skip
    _fsc_in_process(root)
    shutil.rmtree(root, ignore_errors=True)


FSC_EXTRA = """
import sys, torch
from pathlib import Path
from cryomath.resolution import fourier_shell_correlation, fourier_shell_correlation_streamed
from cryomath.io import ImageStack, read_mrc
kind, a, b = sys.argv[1:]
if kind == "streamed":
    maps = ImageStack(a), ImageStack(b)
    run = lambda: fourier_shell_correlation_streamed(*maps, 1.0)
else:
    maps = [torch.from_numpy(read_mrc(p)[0]).to(getattr(torch, kind)) for p in (a, b)]
    run = lambda: fourier_shell_correlation(*maps, 1.0)
run()  # warm-up
Path("/proc/self/clear_refs").write_text("5")
base = rss_mb()
run()
print(hwm_mb() - base)
"""


def _fsc_in_process(root: Path) -> None:
    """Memory over the inputs of one FSC of two 256^3 maps, in memory and streamed."""
    maps = [str(root / f"256_{i}.mrc") for i in (1, 2)]
    print("\nFSC of two 256^3 maps, peak memory over the inputs (after a warm-up call):")
    for kind in ("float64", "float32", "streamed"):
        run = subprocess.run([sys.executable, "-c", MEMORY_PROBES + FSC_EXTRA, kind, *maps],
                             capture_output=True, text=True, check=True)  # fmt: skip
        print(f"  {kind}: {float(run.stdout.split()[-1]):.0f} MB")


if __name__ == "__main__":
    main()
