"""suites/scaling.yaml is a benchmark (GPU sizes); here it only has to plan and run at a tiny size."""

from __future__ import annotations

import copy
from pathlib import Path

from harness.config.load import load_suite
from harness.config.run_config import RunConfig
from harness.plan.planner import config_hash, plan
from harness.run.runner import execute_run

ROOT = Path(__file__).resolve().parents[2]


def test_scaling_suite_runs_tiny(tmp_path: Path) -> None:
    specs = plan(load_suite(ROOT / "suites" / "scaling.yaml"))
    lengths = sorted({s.config["data"]["seq_len"] for s in specs})
    assert lengths[0] == 1024 and lengths[-1] == 65536
    first = [s for s in specs if s.config["data"]["seq_len"] == 1024]
    assert sorted(s.config["variant"] for s in first) == ["attention", "gated_cnn", "mamba", "mamba2"]
    for spec in first:
        config = copy.deepcopy(spec.config)
        config["data"]["seq_len"] = 16
        config["model"].update(d_model=32, n_heads=2, headdim=16)
        config["measure"].update(batch_size=2, warmup_iters=1, warmup_s=0.0, min_iters=2, min_time_s=0.0, max_iters=2, cpu_threads=1)
        config["train"].update(batch_size=2)
        row = execute_run(RunConfig.from_json(config), config_hash(config), tmp_path)
        assert row["status"] == "ok", row["error"]
        assert row["train_steps"] == 0 and row["latency_ms_p50"] > 0 and row["flops_fwd"] > 0
        assert row["seq_len"] == 16 and row["backend"]
