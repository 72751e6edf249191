"""The device script (``python -m harness.benchmarks.conformance``) on CPU: every row written with the same
columns, what cannot run here marked unavailable, rows kept when a run is cut short, the deadline, the
layer variants' backends and ratios (through stand-in kernels), and bad flags."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from harness.benchmarks import conformance, layers
from harness.modules.registry import create_mixer


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def quick_layers(monkeypatch, tiny_cfg):
    """The layer rows under a protocol of a few calls (the script's own is the suites' default)."""
    monkeypatch.setattr(layers, "MeasureConfig", lambda: tiny_cfg)


def test_cpu_dry_run_writes_every_row(tmp_path, quick_layers):
    conformance.main(["--device", "cpu", "--lengths", "8,16", "--d-model", "32", "--batch-size", "1",
                      "--out", str(tmp_path / "c.csv"), "--layers-out", str(tmp_path / "l.csv")])
    rows = _read(tmp_path / "l.csv")
    assert [(r["kind"], r["seq_len"], r["layer"]) for r in rows] == [
        (k, str(n), layer) for k in layers.LAYER_CONFIGS for n in (8, 16)
        for layer in (f"mamba_ssm.{layers.THEIRS[k]}", *layers.OURS)]
    theirs = [r for r in rows if r["layer"].startswith("mamba_ssm.")]
    assert all(r["status"].startswith("unavailable: ") and r["latency_ms_p50"] == "" for r in theirs)
    ours = [r for r in rows if r not in theirs]
    assert all(r["status"] == "ok" and r["backend"] == "reference" and float(r["train_step_ms_p50"]) > 0 for r in ours)
    assert all(r["latency_ratio"] == "" for r in rows)
    checks = _read(tmp_path / "c.csv")
    assert [r["check"] for r in checks] == list(conformance.CHECKS)
    assert all(r["error"].startswith("unavailable: needs CUDA") for r in checks)


def test_layer_variants_name_their_kernels_and_compare_to_mamba_ssms_module(standin_kernels, monkeypatch, tiny_cfg):
    """With every kernel available (stand-ins), the three ways of ours run what their labels say, count the
    same FLOPs, and carry our p50 over mamba_ssm's module's (here a stand-in module: our reference mixer)."""
    monkeypatch.setattr(layers, "mamba_ssm_module", lambda kind: (
        lambda d_model, **kw: create_mixer(kind, d_model, **kw, impl="ref"), ""))
    rows = list(layers.layer_rows("cpu", d_model=32, batch_size=1, lengths=(8,), cfg=tiny_cfg))
    by = {(r["kind"], r["layer"]): r for r in rows}
    for kind in ("mamba", "mamba2"):
        theirs = by[kind, f"mamba_ssm.{layers.THEIRS[kind]}"]
        assert theirs["status"] == "ok" and theirs["backend"] == "mamba_ssm" and theirs["flops_fwd"] is None
        assert [by[kind, layer]["backend"] for layer in layers.OURS] == [
            "mamba_ssm-fused", "causal_conv1d-cuda+mamba_ssm-cuda", "mamba_ssm-cuda"]  # a row lists kernels sorted
        ours = by[kind, "ours"]
        assert ours["latency_ratio"] == pytest.approx(ours["latency_ms_p50"] / theirs["latency_ms_p50"])
        assert ours["train_step_ratio"] == pytest.approx(ours["train_step_ms_p50"] / theirs["train_step_ms_p50"])
        assert ours["flops_fwd"] == by[kind, "ours, unfused"]["flops_fwd"]
        assert ours["flops_train_step"] == by[kind, "ours, unfused"]["flops_train_step"]


def test_past_the_deadline_rows_say_skipped(tiny_cfg):
    rows = list(layers.layer_rows("cpu", d_model=32, batch_size=1, lengths=(8,), cfg=tiny_cfg, deadline=0.0))
    assert {r["status"] for r in rows if r["layer"] in layers.OURS} == {"skipped: deadline"}
    checks = list(conformance.check_rows("cpu", deadline=0.0))
    assert all(r["error"].startswith("unavailable") for r in checks)  # what cannot run says so first


def test_a_run_cut_short_keeps_the_rows_it_finished(tmp_path):
    def rows():
        yield {"a": 1}
        yield {"a": 2}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        conformance._collect(rows(), tmp_path / "x.csv")
    assert _read(tmp_path / "x.csv") == [{"a": "1"}, {"a": "2"}]


@pytest.mark.parametrize("args,message", [
    ([], "nothing to do"),
    (["--out", "c.csv", "--device", "cuda"], "CUDA is not available"),
    (["--timer-out", "t.csv", "--device", "cpu"], "needs --device cuda"),
    (["--layers-out", "l.csv", "--device", "cpu", "--lengths", "0"], "positive integers"),
])
def test_bad_flags_exit_2(tmp_path, monkeypatch, capsys, args, message):
    if torch.cuda.is_available() and "CUDA is not available" in message:
        pytest.skip("CUDA is available here")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        conformance.main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
