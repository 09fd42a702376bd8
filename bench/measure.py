"""Code shared by the benchmarks: resident-memory probes (Linux /proc) for their subprocesses,
and the best-of-N wall time of a call on a device."""

import time

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
