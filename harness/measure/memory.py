"""Peak memory of one call, per phase (inference, train step), with out-of-memory as a result.

CUDA: ``max_memory_allocated`` after ``reset_peak_memory_stats`` (absolute: weights, activations,
gradients and optimizer state that the phase holds), as optimum-benchmark and timm report it.
CPU: torch has no allocator statistics there, so a background thread samples the resident set size from
``/proc/self/statm`` while the call runs and the growth over the baseline is reported, flagged
``approx=True`` (the sampling can miss short peaks, and freed memory the allocator keeps is not growth).
An out-of-memory error becomes ``status="oom"`` instead of a crash (anchors.md: OOM is a result).
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

import torch

_MB = 2**20
_CPU_OOM_MESSAGES = ("DefaultCPUAllocator: can't allocate memory", "DefaultCPUAllocator: not enough memory")


@dataclass(frozen=True)
class MemoryResult:
    peak_mb: float | None
    status: str  # "ok" | "oom"
    approx: bool


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is an out-of-memory failure (CUDA or CPU allocator)."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _CPU_OOM_MESSAGES)


def release_memory(device: torch.device) -> None:
    """Return cached CUDA blocks (and tensors held by reference cycles) so the next measurement starts clean.

    On CPU no ``gc.collect`` (reference counting already freed the tensors, and a full collection costs
    close to a second in a process holding torch, fvcore and pandas), but freed heap pages go back to the
    OS (glibc ``malloc_trim``): otherwise memory an earlier call freed and the allocator kept is reused
    without growing RSS, and the next peak reads as ~0.
    """
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
    elif _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # glibc only
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


class _RssSampler(threading.Thread):
    """Samples the process's resident set size every ``interval_s`` and keeps the maximum."""

    def __init__(self, interval_s: float):
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.peak = _rss_bytes() or 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.peak = max(self.peak, _rss_bytes() or 0)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, _rss_bytes() or 0)


def peak_memory(fn: Callable[[], Any], device: torch.device, *, sample_interval_s: float = 1e-3) -> MemoryResult:
    """Peak memory of one call of ``fn`` on ``device`` (MB = 2**20 bytes)."""
    release_memory(device)
    try:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            torch.cuda.synchronize(device)
            return MemoryResult(torch.cuda.max_memory_allocated(device) / _MB, "ok", approx=False)
        baseline = _rss_bytes()
        if baseline is None:  # no /proc (not Linux): no honest CPU number to give
            fn()
            return MemoryResult(None, "ok", approx=True)
        sampler = _RssSampler(sample_interval_s)
        sampler.start()
        try:
            fn()
        finally:
            peak = sampler.stop()
        return MemoryResult(max(0, peak - baseline) / _MB, "ok", approx=True)
    except Exception as exc:
        if not is_oom(exc):
            raise
        release_memory(device)
        return MemoryResult(None, "oom", approx=device.type != "cuda")
