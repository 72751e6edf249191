"""The latency protocol's logic on a fake clock: first call apart, warm-up until both count and time,
timed calls until both minimums (capped), percentiles; and the protocol string every row records."""

from __future__ import annotations

import pytest
import torch

import harness.measure.latency as latency
from harness.config.sections import MeasureConfig

CPU = torch.device("cpu")


class FakeClock:
    """``perf_counter`` that advances ``step_s`` per call of the timed function (two clock reads per call)."""

    def __init__(self) -> None:
        self.now, self.calls, self.step_s = 0.0, 0, 0.1

    def perf_counter(self) -> float:
        return self.now

    def fn(self) -> None:
        self.calls += 1
        self.now += self.step_s


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(latency.time, "perf_counter", fake.perf_counter)
    return fake


def test_warmup_and_timing_need_both_count_and_time(clock):
    cfg = MeasureConfig(warmup_iters=1, warmup_s=0.35, min_iters=2, min_time_s=0.45, max_iters=1000)
    stats = latency.time_fn(clock.fn, cfg, CPU)
    # 1 first call + 4 warm-up (time-bound: 0.4 s >= 0.35 s) + 5 timed (time-bound: 0.5 s >= 0.45 s)
    assert clock.calls == 1 + 4 + 5
    assert stats.n_iters == 5
    assert stats.p10_ms == stats.p50_ms == stats.p90_ms == pytest.approx(100.0)
    assert stats.std_ms == pytest.approx(0.0)


def test_count_bound_and_cap(clock):
    cfg = MeasureConfig(warmup_iters=3, warmup_s=0.0, min_iters=6, min_time_s=0.0, max_iters=1000)
    assert latency.time_fn(clock.fn, cfg, CPU).n_iters == 6
    assert clock.calls == 1 + 3 + 6
    capped = MeasureConfig(warmup_iters=0, warmup_s=0.0, min_iters=1, min_time_s=1e6, max_iters=4)
    assert latency.time_fn(clock.fn, capped, CPU).n_iters == 4


def test_percentiles(monkeypatch, clock):
    steps = iter([0.5] + [0.001 * k for k in range(1, 11)])

    def fn() -> None:
        clock.now += next(steps)

    cfg = MeasureConfig(warmup_iters=0, warmup_s=0.0, min_iters=10, min_time_s=0.0)
    stats = latency.time_fn(fn, cfg, CPU)
    assert stats.first_ms == pytest.approx(500.0)
    assert stats.p50_ms == pytest.approx(5.5)
    assert stats.p10_ms == pytest.approx(1.9)
    assert stats.p90_ms == pytest.approx(9.1)
    assert stats.as_row("latency_ms") == {"latency_ms_p10": stats.p10_ms, "latency_ms_p50": stats.p50_ms,
                                          "latency_ms_p90": stats.p90_ms}


def test_protocol_string_records_the_protocol():
    cfg = MeasureConfig(warmup_iters=7, warmup_s=0.25, min_iters=11, min_time_s=2.0, max_iters=99)
    text = latency.protocol_string(cfg, CPU)
    for part in ("perf_counter", "warmup>=7it&0.25s", "timed>=11it&2.0s,max=99it", "dtype=fp32", "cuda_graph=off"):
        assert part in text
    cuda = latency.protocol_string(cfg, torch.device("cuda"), cuda_graph=True)
    for part in ("cuda-events,sync-every-10;", "dtype=bf16", "cuda_graph=forward"):  # auto: bf16 on CUDA
        assert part in cuda
    assert "dtype=fp16" in latency.protocol_string(cfg.model_copy(update={"dtype": "fp16"}), CPU)


def test_precision_resolves_auto_per_device_and_refuses_unknown_names():
    from harness.measure import precision

    assert [precision.resolve("auto", torch.device(d)) for d in ("cpu", "cuda")] == ["fp32", "bf16"]
    assert precision.autocast_dtype("auto", CPU) is None and precision.autocast_dtype("fp16", CPU) is torch.float16
    with pytest.raises(ValueError, match="unknown precision 'bf32'"):
        precision.resolve("bf32", CPU)


def test_gpu_only_modes_refuse_cpu():
    cfg = MeasureConfig()
    with pytest.raises(ValueError, match="CUDA"):
        latency.time_fn(lambda: None, cfg, CPU, cuda_graph=True)
    with pytest.raises(RuntimeError, match="CUDA"):
        latency.validate_against_do_bench(lambda: None, cfg, CPU)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_events_agree_with_do_bench():
    pytest.importorskip("triton")
    a = torch.randn(2048, 2048, device="cuda")
    cfg = MeasureConfig(warmup_iters=10, warmup_s=0.2, min_iters=50, min_time_s=0.5)
    result = latency.validate_against_do_bench(lambda: a @ a, cfg, torch.device("cuda"))
    assert result["rel_diff"] < 0.25  # do_bench flushes L2 between calls; a large matmul barely cares
    stats = latency.time_fn(lambda: a @ a, cfg.model_copy(update={"cuda_graphs": True}), torch.device("cuda"),
                            cuda_graph=True)
    assert stats.n_iters >= cfg.min_iters
