"""Latency with the protocol of anchors.md, identical for every variant, recorded in every row.

optimum-benchmark's method: the first call is timed apart (lazy init, compilation); then warm-up for at
least ``warmup_iters`` iterations AND ``warmup_s`` seconds (Triton autotuning, cuDNN algorithm search);
then timed calls until at least ``min_iters`` AND ``min_time_s`` (capped by ``max_iters``); report
p10/p50/p90, mean and std, never one run. On CUDA each call is bracketed by CUDA events and calls are
queued back to back in rounds of ``CUDA_ROUND`` with one synchronisation per round (do_bench's and
mamba_ssm's benchmark method): a sample is one call's device time, and gaps where the GPU waited for the
host's launches still count, but the host's per-call synchronisation does not (syncing after every call
added 7% to a 5.7 ms attention train step on an H100). On CPU ``time.perf_counter`` around each call.
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
from harness.measure import exclusive, precision


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
    timer = f"cuda-events,sync-every-{CUDA_ROUND}" if device.type == "cuda" else "perf_counter"
    shared = ";device-shared,timed-exclusively" if exclusive.sharing() else ""
    return (f"timer={timer}{shared};first-call-apart;warmup>={cfg.warmup_iters}it&{cfg.warmup_s}s;"
            f"timed>={cfg.min_iters}it&{cfg.min_time_s}s,max={cfg.max_iters}it;"
            f"dtype={precision.resolve(cfg.dtype, device)};cuda_graph={'forward' if cuda_graph else 'off'};stats=p10/p50/p90")


CUDA_ROUND = 10
"""Calls queued between two host synchronisations on CUDA."""


def _sampler(device: torch.device) -> tuple[Callable[[Callable[[], Any], int], list[float]], int]:
    """``(sample, round)``: ``sample(fn, n)`` runs ``fn`` n times and returns each call's time in ms."""
    if device.type == "cuda":
        def cuda_calls(fn: Callable[[], Any], n: int) -> list[float]:
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
            for start, end in events:
                start.record()
                fn()
                end.record()
            events[-1][1].synchronize()
            return [start.elapsed_time(end) for start, end in events]

        return cuda_calls, CUDA_ROUND

    def host_calls(fn: Callable[[], Any], n: int) -> list[float]:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return times

    return host_calls, 1


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
    """Time ``fn`` with the protocol above; errors (OOM included) propagate to the caller.

    When runs share the device (``--jobs``), no other run touches it while this one times.
    """
    if cuda_graph and device.type != "cuda":
        raise ValueError("CUDA-graph timing needs a CUDA device")
    with exclusive.exclusive():
        return _time_alone(fn, cfg, device, cuda_graph)


def _time_alone(fn: Callable[[], Any], cfg: MeasureConfig, device: torch.device, cuda_graph: bool) -> TimingStats:
    sample, round_size = _sampler(device)
    first = sample(fn, 1)[0]
    if cuda_graph:
        fn = capture_cuda_graph(fn)
    n, elapsed = 0, 0.0
    while n < cfg.warmup_iters or elapsed < cfg.warmup_s * 1e3:
        warm = sample(fn, round_size)
        n, elapsed = n + len(warm), elapsed + sum(warm)
    times: list[float] = []
    while len(times) < cfg.max_iters and (len(times) < cfg.min_iters or sum(times) < cfg.min_time_s * 1e3):
        times += sample(fn, min(round_size, cfg.max_iters - len(times)))
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
