"""bench_mixers runs whole mixers across lengths on CPU: one row per (mixer, L), result-row columns,
failures as rows."""

from __future__ import annotations

import json

import torch

from harness.measure import COLUMNS
from harness.measure.bench import bench_mixers


def test_bench_rows(tiny_cfg):
    df = bench_mixers(["attention", "gated_cnn", "mamba"], [8, 16], d_model=16, batch_size=2, device=torch.device("cpu"),
                      dtype="fp32", cfg=tiny_cfg, mixer_kwargs={"causal": True, "n_heads": 2})
    assert list(zip(df["mixer"], df["seq_len"])) == [(m, L) for m in ("attention", "gated_cnn", "mamba") for L in (8, 16)]
    assert (df["status"] == "ok").all(), df["status"].tolist()
    assert set(COLUMNS) | {"git_commit", "torch_version", "gpu_name"} <= set(df.columns)
    assert df.set_index("mixer").loc["attention", "backend"].tolist() == ["sdpa-flash-cpu"] * 2
    assert json.loads(df["mixer_kwargs"][0]) == {"causal": True, "n_heads": 2}
    assert json.loads(df["mixer_kwargs"][2]) == {"causal": True, "conv_dims": 1}  # n_heads not taken
    flops = df.set_index(["mixer", "seq_len"])["flops_fwd"]
    assert flops["gated_cnn", 16] == 2 * flops["gated_cnn", 8]  # linear in L
    assert (df["latency_ms_p50"] > 0).all()


def test_bench_failure_is_a_row(tiny_cfg):
    df = bench_mixers(["attention"], [8], d_model=8, batch_size=1, device="cpu", dtype="fp32", cfg=tiny_cfg,
                      per_mixer={"attention": {"window": 4, "causal": True}})
    assert df["status"][0].startswith("error: ValueError")
