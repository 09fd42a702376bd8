"""Code shared by the benchmarks: resident-memory probes (Linux /proc) for their subprocesses
and for a stretch of this process, the best-of-N wall time of a call on a device or of
several calls taken in turn, the seconds of each iteration a RELION run wrote, and the check
that RELION's programs are there."""

import shutil
import time
from pathlib import Path

import numpy as np
import torch

MEMORY_PROBES = """
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def reset_peak_memory() -> None:
    """Linux: this process's peak resident memory (VmHWM) starts again from its current size,
    so that :func:`peak_memory_mb` afterwards is the peak of what ran in between."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb() -> float:
    """This process's peak resident memory (VmHWM, Linux) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def best_seconds(fn, device: torch.device, repeat: int) -> float:
    """The fastest of ``repeat`` calls of ``fn`` after one warm-up (kernels, plans, caches),
    each timed between device synchronisations on CUDA."""
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved_best(runs: dict, repeat: int) -> tuple[dict[str, float], dict]:
    """The fastest of ``repeat`` timed rounds of each of ``runs`` (name -> ``(prepare,
    call)``: ``call(prepare())`` is timed, ``prepare`` not), after one warm-up round, the runs
    taken in turn within each round so that the machine's drift falls on all of them alike;
    and what each run's last ``call`` returned. CPU timings (no device synchronisation)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    results = {}
    for attempt in range(repeat + 1):
        for name, (prepare, call) in runs.items():
            argument = prepare()
            start = time.perf_counter()
            results[name] = call(argument)
            if attempt:
                times[name].append(time.perf_counter() - start)
    return {name: min(seconds) for name, seconds in times.items()}, results


def relion_iteration_seconds(out: Path, started: float) -> tuple[list[float], Path]:
    """The seconds of each iteration a ``relion_refine`` run started at ``started`` (epoch
    seconds) wrote into ``out`` as ``run_itNNN_data.star``, from its files' times (from
    iteration 0's when it wrote one, so that its start-up does not count), and its last data
    STAR."""
    written = sorted(out.glob("run_it[0-9][0-9][0-9]_data.star"))
    if written and written[0].name == "run_it000_data.star":  # its start, images read
        started = written.pop(0).stat().st_mtime
    if not written:
        raise SystemExit("RELION finished no iteration within --relion-timeout")
    times = [started] + [path.stat().st_mtime for path in written]
    return [float(t) for t in np.diff(times)], written[-1]


def require_relion(*programs: str) -> None:
    """Stop the benchmark in one line when one of RELION's ``programs`` is not on the PATH."""
    for program in programs:
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is not on the PATH (apt-get install relion)")
