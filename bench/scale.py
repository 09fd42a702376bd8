"""Scale-out benchmark: reconstruction of N particles of 128 x 128 in one process and on Dask
LocalClusters of 1 and 2 single-threaded workers (parallel efficiency), and simulation of M
particles of 128 x 128 to disk on 2 workers (time, peak memory per worker, disk throughput).

    python bench/scale.py [--reconstruct 100000] [--simulate 1000000] [--workdir /tmp]

(a count of 0 skips that part)
"""

import argparse
import resource
import shutil
import time
from pathlib import Path

import torch

from cryomath.atoms import read_atoms, render_potential
from cryomath.io import read_particles
from cryomath.pipelines import dask_client, reconstruct_particles, simulate_dataset
from cryomath.simulate import SimulationSettings

MODEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "map_model" / "5me2.pdb"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _volume():
    atoms = read_atoms(MODEL)
    n, pixel = 128, 1.0
    origin = atoms.positions_angstrom.mean(0) - (n // 2) * pixel
    return render_potential(atoms, (n, n, n), pixel, origin, dtype=torch.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reconstruct", type=int, default=100_000)
    parser.add_argument("--simulate", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    volume = _volume()
    if args.reconstruct:
        _reconstruct(volume, args.reconstruct, args.workdir)
    if args.simulate:
        _simulate(volume, args.simulate, args.workdir)


def _reconstruct(volume: torch.Tensor, n: int, workdir: Path) -> None:
    data = workdir / "scale-reconstruct"
    shutil.rmtree(data, ignore_errors=True)
    start = time.perf_counter()
    with dask_client("local:2") as client:
        simulate_dataset(volume, data, SimulationSettings(n, 1.0), client=client)
    print(f"simulated {n} particles for the reconstruction in "
          f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
    table = read_particles(data / "particles.star")
    times = {}
    for name, scheduler in (("1 process, 2 threads", None), ("Dask, 1 worker", "local:1"),
                            ("Dask, 2 workers", "local:2")):  # fmt: skip
        with dask_client(scheduler) as client:
            start = time.perf_counter()
            reconstruct_particles(table, client=client)
            times[name] = time.perf_counter() - start
            workers = client.run(_peak_mb) if client is not None else {"this process": _peak_mb()}
        print(f"reconstruct {table.n}: {name}: {times[name]:.1f} s "
              f"({table.n / times[name]:.0f} particles/s), peak RSS per worker "
              f"{max(workers.values()):.0f} MB", flush=True)  # fmt: skip
    efficiency = times["Dask, 1 worker"] / (2 * times["Dask, 2 workers"])
    print(f"parallel efficiency 1 -> 2 workers: {efficiency:.2f}")
    shutil.rmtree(data, ignore_errors=True)


def _simulate(volume: torch.Tensor, n: int, workdir: Path) -> None:
    out = workdir / "scale-simulate"
    shutil.rmtree(out, ignore_errors=True)
    with dask_client("local:2") as client:
        start = time.perf_counter()
        simulate_dataset(volume, out, SimulationSettings(n, 1.0), client=client)
        seconds = time.perf_counter() - start
        workers = client.run(_peak_mb)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"simulate {n} particles of 128 x 128 on 2 workers: {seconds:.0f} s "
          f"({n / seconds:.0f} particles/s), {size / 1e9:.1f} GB written "
          f"({size / 1e6 / seconds:.0f} MB/s), peak RSS per worker "
          f"{max(workers.values()):.0f} MB, driver {_peak_mb():.0f} MB")  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
