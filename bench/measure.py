"""Code shared by the benchmarks: resident-memory probes (Linux /proc) for their subprocesses
and for a stretch of this process, and the best-of-N wall time of a call on a device."""

import time
from pathlib import Path

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
