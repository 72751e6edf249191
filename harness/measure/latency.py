"""Latency with the protocol of anchors.md, identical for every variant, recorded in every row.

optimum-benchmark's method: the first call is timed apart (lazy init, compilation); then warm-up for at
least ``warmup_iters`` iterations AND ``warmup_s`` seconds (Triton autotuning, cuDNN algorithm search);
then timed calls until at least ``min_iters`` AND ``min_time_s`` (capped by ``max_iters``); report
p10/p50/p90, mean and std, never one run. On CUDA each call is bracketed by CUDA events and synchronised
(so each sample is one call's device time, launch gaps included); on CPU ``time.perf_counter``.
Optional CUDA-graph mode replays a captured forward; the measurer applies it to every variant alike.

``validate_against_do_bench`` times the same callable with ``triton.testing.do_bench`` (the
flash-linear-attention benchmarks' timer) for the conformance check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from harness.config.sections import MeasureConfig


@dataclass(frozen=True)
class TimingStats:
    """Per-call times in milliseconds over ``n_iters`` timed calls (after warm-up)."""

    p10_ms: float
    p50_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    n_iters: int
    first_ms: float
    protocol: str

    def as_row(self, prefix: str) -> dict[str, Any]:
        """``{prefix}_p10/p50/p90`` columns, e.g. ``latency_ms_p50``."""
        return {f"{prefix}_p10": self.p10_ms, f"{prefix}_p50": self.p50_ms, f"{prefix}_p90": self.p90_ms}


def protocol_string(cfg: MeasureConfig, device: torch.device, cuda_graph: bool = False) -> str:
    """The protocol as one string, so rows measured differently are never compared unknowingly.

    ``cuda_graph`` marks rows whose forward was replayed from a CUDA graph (train steps never are).
    """
    timer = "cuda-events+sync" if device.type == "cuda" else "perf_counter"
    return (f"timer={timer};first-call-apart;warmup>={cfg.warmup_iters}it&{cfg.warmup_s}s;"
            f"timed>={cfg.min_iters}it&{cfg.min_time_s}s,max={cfg.max_iters}it;"
            f"cuda_graph={'forward' if cuda_graph else 'off'};stats=p10/p50/p90")


def _timer(device: torch.device) -> Callable[[Callable[[], Any]], float]:
    """One call of ``fn`` -> its time in ms, by CUDA events on CUDA and ``perf_counter`` elsewhere."""
    if device.type == "cuda":
        def cuda_call(fn: Callable[[], Any]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

        return cuda_call

    def host_call(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3

    return host_call


def capture_cuda_graph(fn: Callable[[], Any]) -> Callable[[], None]:
    """Capture ``fn`` (already warm) in a CUDA graph and return its replay (PyTorch's recipe: side-stream warm-up)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def time_fn(fn: Callable[[], Any], cfg: MeasureConfig, device: torch.device, *, cuda_graph: bool = False) -> TimingStats:
    """Time ``fn`` with the protocol above; errors (OOM included) propagate to the caller."""
    if cuda_graph and device.type != "cuda":
        raise ValueError("CUDA-graph timing needs a CUDA device")
    call = _timer(device)
    first = call(fn)
    if cuda_graph:
        fn = capture_cuda_graph(fn)
    n, elapsed = 0, 0.0
    while n < cfg.warmup_iters or elapsed < cfg.warmup_s * 1e3:
        elapsed += call(fn)
        n += 1
    times: list[float] = []
    total = 0.0
    while len(times) < cfg.max_iters and (len(times) < cfg.min_iters or total < cfg.min_time_s * 1e3):
        times.append(call(fn))
        total += times[-1]
    arr = np.asarray(times)
    p10, p50, p90 = np.percentile(arr, [10, 50, 90])
    return TimingStats(
        p10_ms=float(p10), p50_ms=float(p50), p90_ms=float(p90), mean_ms=float(arr.mean()),
        std_ms=float(arr.std(ddof=1)) if arr.size > 1 else 0.0, n_iters=int(arr.size), first_ms=first,
        protocol=protocol_string(cfg, device, cuda_graph),
    )


def validate_against_do_bench(fn: Callable[[], Any], cfg: MeasureConfig, device: torch.device) -> dict[str, float]:
    """Our p50 next to ``triton.testing.do_bench``'s median for the same callable (CUDA only)."""
    if device.type != "cuda":
        raise RuntimeError("validate_against_do_bench needs a CUDA device (triton.testing.do_bench is GPU-only)")
    from triton.testing import do_bench

    ours = time_fn(fn, cfg, device)
    theirs = do_bench(fn, quantiles=[0.1, 0.5, 0.9])
    return {"ours_p50_ms": ours.p50_ms, "do_bench_p50_ms": float(theirs[1]),
            "rel_diff": abs(ours.p50_ms - float(theirs[1])) / float(theirs[1])}
