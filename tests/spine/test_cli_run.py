"""End to end through the CLI: a real suite runs, resumes, survives kill -9, and records failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

SUITE = """suite: tiny
seeds: [0]
train: {steps: %(steps)d, batch_size: 8, eval_batch_size: 32, warmup_steps: 1}
measure: {batch_size: 2, warmup_iters: 1, warmup_s: 0.0, min_iters: 2, min_time_s: 0.0, max_iters: 3, cpu_threads: 1}
variants:
  - mamba
  - attention
  - gated_cnn
%(extra)s
tasks:
  - name: recall
    family: sequence
    dataset: mqar
    data: {seq_len: 16, num_kv: 2, key_vocab: 8, value_vocab: 8, n_eval: 16}
    model: {d_model: 16, n_layers: 1, d_state: 4, n_heads: 2}
"""
HUGE = "  - {name: huge, use: attention, model: {d_model: 1048576}}"

REQUIRED = """suite task family variant mixer seed sweep status error params flops_fwd flops_train_step
latency_ms_p50 latency_ms_p10 latency_ms_p90 peak_mem_mb_infer peak_mem_mb_train throughput seq_len d_model
train_steps train_time_s accuracy backend device gpu_name torch_version cuda_version git_commit
harness_version config_hash started_at""".split()


def harness(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_CACHE": str(cwd / "cache"), "COLUMNS": "200"}
    return subprocess.run([str(Path(sys.executable).with_name("harness")), *args], cwd=cwd, capture_output=True, text=True, env=env, **kw)


def write_suite(tmp_path: Path, steps: int = 3, extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE % {"steps": steps, "extra": extra})
    return path


def test_run_resume_and_failure_rows(tmp_path: Path) -> None:
    write_suite(tmp_path, extra=HUGE)
    first = harness("run", "tiny.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    df = pd.read_parquet(tmp_path / "results" / "tiny" / "results.parquet")
    assert sorted(df["variant"]) == ["attention", "gated_cnn", "huge", "mamba"]
    assert set(REQUIRED) <= set(df.columns), set(REQUIRED) - set(df.columns)
    status = dict(zip(df["variant"], df["status"]))
    assert status["huge"] == "oom", df.loc[df["variant"] == "huge", "error"].iloc[0]
    assert {status[v] for v in ("mamba", "attention", "gated_cnn")} == {"ok"}
    for variant in ("mamba", "attention", "gated_cnn"):
        assert variant in first.stdout
    assert (tmp_path / "results" / "tiny" / "results.csv").exists()

    again = harness("run", "tiny.yaml", cwd=tmp_path)
    assert again.returncode == 0 and "0 ran, 4 resumed" in again.stdout
    pd.testing.assert_frame_equal(df, pd.read_parquet(tmp_path / "results" / "tiny" / "results.parquet"))

    shown = harness("show", "results/tiny", cwd=tmp_path)
    assert shown.returncode == 0 and "gated_cnn" in shown.stdout


def test_kill_9_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    write_suite(tmp_path, steps=40)
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("harness")), "run", "tiny.yaml"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "results" / "tiny" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(runs.glob("*.json"))) < 1:
        time.sleep(0.2)
    assert list(runs.glob("*.json")), "no run finished in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    done_after_kill = {p.name for p in runs.glob("*.json")}
    time.sleep(2.0)
    assert {p.name for p in runs.glob("*.json")} == done_after_kill, "an orphaned run kept writing after kill -9"
    rerun = harness("run", "tiny.yaml", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    df = pd.read_parquet(tmp_path / "results" / "tiny" / "results.parquet")
    assert len(df) == 3 and df["config_hash"].is_unique
    assert f"{len(done_after_kill)} resumed" in rerun.stdout


@pytest.mark.parametrize("args", [["--dry-run"], ["--only", "recall/attention", "--dry-run"]])
def test_dry_run_writes_nothing(tmp_path: Path, args: list[str]) -> None:
    write_suite(tmp_path)
    out = harness("run", "tiny.yaml", *args, cwd=tmp_path)
    assert out.returncode == 0 and "dry run" in out.stdout
    assert not (tmp_path / "results").exists()
