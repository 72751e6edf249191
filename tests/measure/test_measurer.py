"""measure_model: every cost column, consistent with the counters, the model left as it was found,
config switches honoured, OOM as a status; the Measurer API families use."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.measure import COLUMNS, Measurer, measure_model
from harness.measure.flops import count_flops
from harness.modules.attention import Attention

CPU = torch.device("cpu")


def test_all_columns_and_model_untouched(tiny_cfg):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(6), Attention(32, n_heads=2, causal=True))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 6, 16)
    row = measure_model(model, (x,), lambda: model(x).pow(2).mean(), tiny_cfg, CPU)
    assert set(row) == set(COLUMNS)
    assert row["params"] == sum(p.numel() for p in model.parameters())
    expected = count_flops(model, (x,), lambda: model(x).pow(2).mean())
    assert (row["flops_fwd"], row["flops_train_step"]) == (expected.flops_fwd, expected.flops_train_step)
    for prefix in ("latency_ms", "train_step_ms"):
        assert 0 < row[f"{prefix}_p10"] <= row[f"{prefix}_p50"] <= row[f"{prefix}_p90"]
    assert row["throughput"] == pytest.approx(4 / (row["latency_ms_p50"] / 1e3))
    assert row["mem_approx"] is True and row["peak_mem_mb_train"] is not None
    assert row["measure_status"] == "ok" and row["backend"] == "sdpa-flash-cpu"
    assert "perf_counter" in row["latency_protocol"]
    assert not model.training
    for k, v in model.state_dict().items():  # BatchNorm statistics and weights restored exactly
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_switches_leave_columns_empty(tiny_cfg):
    cfg = tiny_cfg.model_copy(update={"flops": False, "memory": False, "train_step": False})
    model = nn.Linear(8, 8)
    row = measure_model(model, (torch.randn(2, 8),), None, cfg, CPU)
    assert row["flops_fwd"] is None and row["peak_mem_mb_infer"] is None and row["train_step_ms_p50"] is None
    assert row["latency_ms_p50"] > 0


class OomWhenTraining(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")
        return super().forward(x)


def test_train_oom_is_a_status(tiny_cfg):
    cfg = tiny_cfg.model_copy(update={"flops": False})
    row = measure_model(OomWhenTraining(4, 4), (torch.randn(2, 4),), None, cfg, CPU)
    assert row["measure_status"] == "oom:train"
    assert row["latency_ms_p50"] > 0 and row["train_step_ms_p50"] is None and row["peak_mem_mb_train"] is None


def test_measurer_api(tiny_cfg):
    m = Measurer(tiny_cfg, "cpu")
    calls = []
    stats = m.time(lambda: calls.append(torch.is_inference_mode_enabled()), inference=True)
    assert stats.n_iters == 2 and all(calls)
    assert isinstance(m.peak_memory(lambda: torch.ones(10)), float)
    model = nn.Linear(5, 3, bias=False)
    assert m.flops(lambda: model(torch.randn(2, 5))) == 2 * 2 * 5 * 3
    assert m.protocol() == stats.protocol


def test_autocast_follows_dtype(tiny_cfg):
    m = Measurer(tiny_cfg.model_copy(update={"dtype": "bf16"}), "cpu")
    seen = []
    m.time(lambda: seen.append(torch.is_autocast_enabled("cpu")))
    assert all(seen)
