"""bench_mixers runs whole mixers across lengths on CPU: one row per (mixer, L), result-row columns,
failures as rows."""

from __future__ import annotations

import json

import pytest
import torch

from harness.measure import COLUMNS
from harness.benchmarks.bench import bench_mixers


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


@pytest.mark.parametrize("args", [["--lengths", "0"], ["--lengths", "-5"], ["--lengths", ","], ["--mixers", ""],
                                  ["--d-model", "0"], ["--batch-size", "0"], ["--dtype", "int8"], ["--out", "afile"]])
def test_bench_bad_flags_exit_2_and_write_nothing(tmp_path, monkeypatch, args):
    from typer.testing import CliRunner

    from harness import cli

    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("harness.benchmarks.bench.bench_mixers", lambda *a, **k: pytest.fail("bench ran"))
    result = CliRunner().invoke(cli.app, ["bench", "--device", "cpu", "--mixers", "gated_cnn", "--lengths", "8",
                                          "--out", "rb", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
