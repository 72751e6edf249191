"""Studied factors (``factors:``) stay apart as variants; they are never best-of-grid'd like tuning keys."""

from __future__ import annotations

import json

import pandas as pd

from harness.report.load import normalize, parse_suite


def test_factor_values_become_variant_labels_not_a_tuning_grid():
    rows = [
        {"task": "t", "variant": "ssm", "seed": seed, "status": "ok", "test_acc": 0.9,
         "sweep": json.dumps({"data.seq_len": length, "model.s_A": s_a, "train.lr": lr})}
        for seed in (0, 1) for length in (25, 50) for s_a in (-0.1, 0.1) for lr in (1e-3, 3e-3)
    ]
    suite = parse_suite({"suite": "s", "tasks": {"t": {"sweep_keys": ["data.seq_len", "model.s_A", "train.lr"], "factor_keys": ["model.s_A"]}}})
    df = normalize(pd.DataFrame(rows), suite)
    assert set(df["variant"]) == {"ssm[s_A=-0.1]", "ssm[s_A=0.1]"}
    assert suite.task("t").hp_keys == ["train.lr"]
    assert set(df["hp_point"]) == {json.dumps({"train.lr": 1e-3}), json.dumps({"train.lr": 3e-3})}
    assert set(df["size"]) == {25.0, 50.0}
