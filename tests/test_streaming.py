"""Streaming: every stack-level command reads and writes in batches, so its peak resident memory
does not grow with the number of particles. Each command runs in a fresh process on 512 and on
4,096 particles of 64 x 64 (batches of 128) and the two peaks of the command itself are
compared. Measured peaks (MB, the ~300 MB of the imports included; 512 -> 4,096 particles, the
same to 1 MB in a second run): simulate 406 -> 407, project 415 -> 418, reconstruct 499 -> 503,
reconstruct --method cg (pad 1) 439 -> 443, convert --stack 328 -> 333: the metadata. Holding
the 3,584 extra images would add 59 MB (float32), and their float64 spectra twice that; the
limit, 15 MB, is a quarter of the smallest of these."""

import os
import subprocess
import sys

import numpy as np
import pytest

from cryomath.atoms import map_from_model, read_atoms
from cryomath.demo import BUNDLED_MODEL
from cryomath.fourier import crop_or_pad
from cryomath.io import write_mrc
from cryomath.pipelines import simulate_dataset
from cryomath.simulate import SimulationSettings

COUNTS = (512, 4096)
GROWTH_MB = 15  # the metadata: about 7 MB of STAR/.cs tables


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming")
    volume = map_from_model(read_atoms(BUNDLED_MODEL), 1.5, None, margin_angstrom=5.0)[0]
    volume = crop_or_pad(volume, (64, 64, 64))
    write_mrc(root / "map.mrc", volume.float().numpy(), 1.5)
    for n in COUNTS:
        settings = SimulationSettings(n_particles=n, pixel_size_angstrom=1.5, shard_size=512)
        simulate_dataset(volume, root / str(n), settings)
    return root


# after the imports, Linux's peak resident memory (VmHWM) is reset (clear_refs 5), so the peak
# read at the end is the command's own, not the import's
PEAK = """
import re, sys
from pathlib import Path
from cryomath.cli import main
Path("/proc/self/clear_refs").write_text("5")
assert main(sys.argv[1:]) == 0
print(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


# glibc raises its mmap threshold to the size of each big block freed, after which the batches'
# buffers come from the heap, whose holes it keeps: the resident peak then drifted by up to 70 MB
# between runs of the same command (reconstruct on 4,096 particles: 590-657 MB; 511-516 MB at a
# fixed threshold). A fixed threshold makes the peak the memory the command holds.
ALLOCATOR = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}


def _peak_mb(*argv: str) -> float:
    run = subprocess.run([sys.executable, "-c", PEAK, *argv, "--json"], capture_output=True,
                         text=True, env=ALLOCATOR)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return int(run.stdout.split()[-1]) / 1024


def _peaks(data, argv) -> list[float]:
    """Peak MB of ``argv`` (``{n}`` and ``{root}`` filled in) for each particle count."""
    return [_peak_mb(*(a.format(n=n, root=data) for a in argv)) for n in COUNTS]


def _assert_flat(peaks, limit_mb=GROWTH_MB):
    assert peaks[1] - peaks[0] < limit_mb, peaks


def test_simulate_streams(data):
    argv = ["simulate", "{root}/map.mrc", "--n", "{n}", "--out", "{root}/sim{n}",
            "--shard-size", "4096", "--batch-size", "128"]  # fmt: skip
    _assert_flat(_peaks(data, argv))


def test_project_streams(data):
    argv = ["project", "{root}/map.mrc", "--poses", "{root}/{n}/particles.star", "--ctf",
            "--out", "{root}/proj{n}.mrcs", "--batch-size", "128"]  # fmt: skip
    _assert_flat(_peaks(data, argv))


def test_reconstruct_streams_by_direct_inversion(data):
    argv = ["reconstruct", "{root}/{n}/particles.star", "--out", "{root}/rec{n}",
            "--batch-size", "128"]  # fmt: skip
    _assert_flat(_peaks(data, argv))


def test_reconstruct_streams_by_conjugate_gradients(data):
    # the images are read once for the right-hand side; the iterations need only poses and CTFs
    argv = ["reconstruct", "{root}/{n}/particles.star", "--method", "cg", "--iterations", "1",
            "--pad", "1", "--out", "{root}/cg{n}", "--batch-size", "128"]  # fmt: skip
    _assert_flat(_peaks(data, argv))


def test_convert_streams_the_images_into_one_stack(data):
    argv = ["convert", "{root}/{n}/particles.cs", "{root}/conv{n}/particles.star",
            "--stack", "{root}/conv{n}/particles.mrcs", "--batch-size", "128"]  # fmt: skip
    _assert_flat(_peaks(data, argv))


def test_fsc_streams_the_maps(tmp_path):
    # 8x the voxels: measured 423 -> 456 MB (the slab buffers grow with n^2, not n^3); in
    # memory, two float64 maps and their spectra alone are 538 MB at 256^3, 67 MB at 128^3
    g = np.random.default_rng(0)
    peaks = []
    for n in (128, 256):
        for i in (1, 2):
            write_mrc(tmp_path / f"{n}_{i}.mrc", g.standard_normal((n, n, n), np.float32), 1.0)
        peaks.append(_peak_mb("fsc", str(tmp_path / f"{n}_1.mrc"), str(tmp_path / f"{n}_2.mrc")))
    _assert_flat(peaks, limit_mb=100)
