"""``measure.latency_seeds``: architecture costs are timed in the listed seeds' runs only, quality and
counts are in every run (a 3-seed suite need not time the same architecture three times)."""

from __future__ import annotations

import math
from pathlib import Path

from harness.config.load import load_suite
from harness.plan.planner import plan
from harness.run.runner import execute_run

TINY_RECALL = """tasks:
  - name: recall
    family: sequence
    dataset: mqar
    data: {seq_len: 16, num_kv: 2, key_vocab: 8, value_vocab: 8, n_eval: 8}
    model: {d_model: 16, n_layers: 1}
"""
"""A one-task suite body that trains in a second on CPU (the suites here add their own header)."""

SUITE = """suite: s
seeds: [0, 1]
train: {steps: 2, batch_size: 4, eval_batch_size: 8, warmup_steps: 1}
measure: {batch_size: 2, warmup_iters: 1, warmup_s: 0.0, min_iters: 2, min_time_s: 0.0, max_iters: 2, latency_seeds: [0]}
variants: [gated_cnn]
""" + TINY_RECALL


def test_only_listed_seeds_are_timed(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    rows = {spec.config["seed"]: execute_run(spec.run, spec.run_id, tmp_path / "cache") for spec in plan(load_suite(path), device="cpu")}
    assert rows[0]["status"] == rows[1]["status"] == "ok"
    assert rows[0]["latency_ms_p50"] > 0 and rows[0]["train_step_ms_p50"] > 0
    assert rows[1]["latency_ms_p50"] is None and rows[1]["train_step_ms_p50"] is None
    for row in rows.values():  # everything but the timing is still measured
        assert row["flops_fwd"] > 0 and row["params"] > 0 and not math.isnan(row["accuracy"])
