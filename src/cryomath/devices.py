"""Where compute runs: ``device=`` arguments and ``--device`` options, and the host <-> device
transfers of streamed batches.

Compute functions follow their inputs' device; the functions that read files (simulation,
projection, reconstruction, FSC and alignment of files) take ``device=`` and move each batch
there through :class:`Staging`. On CUDA it copies through one reused page-locked (pinned)
host buffer per direction and dtype, so a host-to-device copy is a DMA that does not stall on
paging, and no pinned buffer is allocated per batch (``cudaHostAlloc`` is slow). On the CPU
the staging is a no-op view. Commands also set the host's allocator to keep freed memory for
reuse (:func:`keep_freed_host_memory`).
"""

import os

import numpy as np
import torch

from cryomath.errors import InvalidInputError


def _parse(device: str | torch.device | None) -> torch.device:
    try:
        return torch.device(device or "cpu")
    except (RuntimeError, TypeError) as exc:
        message = f"unknown device {device!r} (use cpu, cuda, cuda:N or mps)"
        raise InvalidInputError(message) from exc


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``torch.device`` for ``None`` (the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``;
    an unknown name, or an accelerator this torch cannot reach, is a clear error."""
    device = _parse(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(
                f"device {str(device)!r} is not available: this torch ({torch.__version__}) "
                "sees no CUDA GPU"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidInputError(
                f"device {str(device)!r} is not available: {torch.cuda.device_count()} CUDA "
                "device(s) visible"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError("device 'mps' is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InvalidInputError(f"unsupported device {str(device)!r} (use cpu, cuda or mps)")
    return device


def device_name(device: str | torch.device | None, client=None) -> str:
    """The device for work that may run elsewhere: resolved here without a Dask ``client``;
    with one, only checked for form (the workers, not this process, must have it)."""
    return str(resolve_device(device) if client is None else _parse(device))


class Staging:
    """Copies of streamed batches between the host and ``device``.

    ``to_device(array)`` returns a tensor on the device (on CUDA: through a pinned buffer,
    asynchronously; the next call waits for the previous copy before reusing the buffer).
    ``to_host(tensor)`` returns a numpy array that stays valid until the next ``to_host``."""

    def __init__(self, device: str | torch.device | None):
        self.device = resolve_device(device)
        self._pinned = self.device.type == "cuda"
        self._buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}
        self._copied: torch.cuda.Event | None = None

    def _buffer(self, direction: str, like: torch.Tensor) -> torch.Tensor:
        key = (direction, like.dtype)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < like.numel():
            buffer = torch.empty(like.numel(), dtype=like.dtype, pin_memory=True)
            self._buffers[key] = buffer
        return buffer[: like.numel()].view(like.shape)

    def to_device(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(array, np.ndarray):
            array = np.ascontiguousarray(array)
        host = torch.as_tensor(array)
        if not self._pinned:
            return host.to(self.device)
        if self._copied is not None:
            self._copied.synchronize()
        staged = self._buffer("up", host)
        staged.copy_(host)
        out = staged.to(self.device, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record(torch.cuda.current_stream(self.device))
        return out

    def to_host(self, tensor: torch.Tensor) -> np.ndarray:
        if tensor.device.type != "cuda":
            return tensor.detach().cpu().numpy()
        staged = self._buffer("down", tensor)
        staged.copy_(tensor.detach(), non_blocking=True)
        torch.cuda.current_stream(tensor.device).synchronize()
        return staged.numpy()


def available_memory_bytes(device: str | torch.device | None = None) -> int:
    """Memory free for new allocations on ``device``: CUDA's free memory, or the host's
    ``MemAvailable`` (Linux; elsewhere the physical memory)."""
    device = _parse(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(needed_bytes: float, what: str, device: str | torch.device | None = None) -> None:
    """Refuse, before allocating, work whose estimated memory exceeds what ``device`` has free:
    one line with both figures."""
    free = available_memory_bytes(device)
    if needed_bytes > free:
        raise InvalidInputError(
            f"{what} needs about {_size(needed_bytes)} of memory; {_size(free)} is available"
        )


def _size(n_bytes: float) -> str:
    if n_bytes < 1024:
        return f"{n_bytes:.0f} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n_bytes /= 1024
        if n_bytes < 1024:
            return f"{n_bytes:.1f} {unit}"
    return f"{n_bytes / 1024:.1f} PB"


_ALLOCATOR_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
# mallopt: mmap threshold, trim threshold (-1: never give the heap's top back), top pad
_KEPT = {-3: 1 << 30, -1: -1, -2: 256 << 20}


def keep_freed_host_memory() -> bool:
    """Ask glibc's ``malloc`` to keep freed blocks below 1 GiB for reuse (``mallopt``: mmap
    threshold 1 GiB, no trimming of the heap's top, top pad 256 MiB); True if it took them.

    Why: expectation passes and ab initio steps allocate and free tensors of tens to hundreds
    of MB per batch. Under glibc's defaults many come from ``mmap`` and go back with
    ``munmap``, and the kernel zeroes their pages again at each first touch: the default demo
    spent 86 s of its 209 s of CPU time in the kernel, in 112 s; with these settings (and
    later E-step changes) 3 s of 118, in 63 s, with the same maps (bench/RESULTS.md).
    The heap's top is never given back: a trim threshold of 2 GiB (``mallopt``'s largest
    positive value) still let a refinement at box 64 free its top and fault it in again,
    82 s of kernel time in 118 s (25 s in 86 s without trimming, at 8 % less peak memory).
    Not on other C libraries, and not when the environment sets any of
    ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_TOP_PAD_`` (the user's
    choice wins; tests/test_streaming.py measures peaks under its own)."""
    if any(name in os.environ for name in _ALLOCATOR_VARIABLES):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return all(mallopt(option, value) == 1 for option, value in _KEPT.items())
