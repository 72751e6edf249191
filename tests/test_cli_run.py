"""End to end through the CLI: a real suite runs, resumes, survives kill -9, and records failures."""

from __future__ import annotations

import os
import re
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
train_steps train_time_s train_precision measure_dtype accuracy backend device gpu_name torch_version cuda_version
mamba_ssm_version triton_version git_commit harness_version config_hash started_at measure_batch train_step_batch""".split()


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
    ok = df[df["status"] == "ok"]
    assert set(ok["train_precision"]) == set(ok["measure_dtype"]) == {"fp32"}  # auto on CPU, resolved
    assert set(ok["measure_batch"]) == {2} and set(ok["train_step_batch"]) == {8}  # measure vs train batch
    assert (ok["l_over_6d"] == ok["seq_len"] / (6 * ok["d_model"])).all()  # MambaOut's L/(6D), sequence too
    for variant in ("mamba", "attention", "gated_cnn"):
        assert variant in first.stdout
    # not a terminal, so no live bar: stderr has one line per finished run, in the order they finished
    done = [line for line in first.stderr.splitlines() if re.match(r"\d/4 recall/", line)]
    assert [line.split()[0] for line in done] == ["1/4", "2/4", "3/4", "4/4"], first.stderr
    assert sum(": ok in " in line for line in done) == 3 and any("recall/huge/seed0: oom" in line for line in done)
    assert "ETA" not in first.stderr, first.stderr  # and no final render of a bar nobody saw live
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


def test_jobs_side_by_side_give_the_same_rows(tmp_path: Path) -> None:
    """--jobs 3 trains the three variants at once: same metrics and counts as one at a time (each run has
    one CPU thread either way), rows say how many ran together and that timing had the device alone."""
    write_suite(tmp_path, steps=20)
    for jobs in ("1", "3"):
        done = harness("run", "tiny.yaml", "--jobs", jobs, "--out", f"jobs{jobs}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    one, three = (pd.read_parquet(tmp_path / f"jobs{j}" / "results.parquet").sort_values("variant").reset_index(drop=True)
                  for j in (1, 3))
    assert list(three["status"]) == ["ok"] * 3
    for column in ("config_hash", "accuracy", "final_loss", "params", "flops_fwd", "flops_train_step"):
        pd.testing.assert_series_equal(one[column], three[column])
    assert set(one["concurrent_runs"]) == {1} and set(three["concurrent_runs"]) == {3}
    assert not one["latency_protocol"].str.contains("device-shared").any()
    assert three["latency_protocol"].str.contains("device-shared,timed-exclusively").all()


def test_jobs_interrupted_keep_only_finished_runs(tmp_path: Path) -> None:
    write_suite(tmp_path, steps=2000)  # long enough that an idle fast machine is still training at the signal
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache")}
    # the user's shell delivers Ctrl-C with SIGINT at its default; a child inherits an ignored SIGINT from the
    # test process (then Python installs no KeyboardInterrupt handler), so restore the default in the child
    proc = subprocess.Popen([str(Path(sys.executable).with_name("harness")), "run", "tiny.yaml", "--jobs", "2"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    logs = tmp_path / "results" / "tiny" / "logs"
    deadline = time.time() + 240
    while time.time() < deadline and sum("step" in p.read_text() for p in logs.glob("*.log")) < 2:
        time.sleep(0.2)  # two runs are training
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted during" in out, out
    runs = tmp_path / "results" / "tiny" / "runs"
    assert len(list(runs.glob("*.json"))) < 3
    sizes = {p.name: p.stat().st_size for p in logs.glob("*.log")}
    time.sleep(3.0)
    assert {p.name: p.stat().st_size for p in logs.glob("*.log")} == sizes, "a stopped run kept training"
    rerun = harness("run", "tiny.yaml", "--jobs", "2", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    df = pd.read_parquet(tmp_path / "results" / "tiny" / "results.parquet")
    assert len(df) == 3 and df["config_hash"].is_unique and set(df["status"]) == {"ok"}


def cli_run(tmp_path: Path, monkeypatch, *args: str):
    """``harness run tiny.yaml ARGS`` in-process (bad input is refused before any run starts)."""
    from typer.testing import CliRunner

    from harness import cli

    write_suite(tmp_path)
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(cli.app, ["run", "tiny.yaml", *args])


@pytest.mark.parametrize("out", ["afile", "afile/x", "/sys/harness-test"])
def test_unwritable_out_exits_2_and_writes_nothing(tmp_path: Path, monkeypatch, out: str) -> None:
    if out.startswith("/sys") and not Path("/sys").is_dir():
        pytest.skip("no /sys")
    (tmp_path / "afile").write_text("x")
    result = cli_run(tmp_path, monkeypatch, "--out", out)
    assert result.exit_code == 2 and f"error: {out}" in result.output and "choose another --out" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "tiny.yaml"]


def test_out_holding_another_suite_exits_2(tmp_path: Path, monkeypatch) -> None:
    from harness.store.store import ResultStore

    ResultStore(tmp_path / "other").write_meta("suite.json", {"suite": "t1", "tasks": {}})
    before = (tmp_path / "other" / "suite.json").read_text()
    result = cli_run(tmp_path, monkeypatch, "--out", "other")
    assert result.exit_code == 2 and "other holds suite 't1' results" in result.output and "choose another --out" in result.output
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["suite.json"]
    assert (tmp_path / "other" / "suite.json").read_text() == before


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
def test_timeout_must_be_positive_and_finite(tmp_path: Path, monkeypatch, timeout: str) -> None:
    result = cli_run(tmp_path, monkeypatch, "--timeout", timeout)
    assert result.exit_code == 2 and "--timeout must be a positive number of seconds" in result.output, result.output
    assert not (tmp_path / "results").exists()


def test_a_suite_that_plans_no_runs_says_so_without_only(tmp_path: Path, monkeypatch) -> None:
    import harness.plan.planner

    monkeypatch.setattr(harness.plan.planner, "plan", lambda *a, **k: [])
    result = cli_run(tmp_path, monkeypatch)
    assert result.exit_code == 2 and "suite 'tiny' plans no runs" in result.output and "--only" not in result.output, result.output
    result = cli_run(tmp_path, monkeypatch, "--only", "nothing")
    assert result.exit_code == 2 and "--only 'nothing' matches no run of suite 'tiny'" in result.output


@pytest.mark.parametrize(("seeds", "message"), [("0,1,0", "--seeds: seed 0 appears more than once"),
                                                ("-1", "--seeds: seed -1 is out of range"),
                                                ("4294967296", "--seeds: seed 4294967296 is out of range")])
def test_seeds_must_be_distinct_and_in_range(tmp_path: Path, monkeypatch, seeds: str, message: str) -> None:
    result = cli_run(tmp_path, monkeypatch, "--seeds", seeds)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "results").exists()


def test_error_messages_print_paths_with_brackets_verbatim(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from harness import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["show", "runs[/v2]"])  # rich markup would read [/v2] as a closing tag
    assert result.exit_code == 2 and "runs[/v2]: no results.parquet here" in result.output, result.output


def test_run_ends_with_the_verdicts_and_claims_it_ran(tmp_path: Path) -> None:
    claim = """    expect:
      - {id: mamba-ahead, claim: the SSM is ahead, source: test, compare: {better: mamba, worse: gated_cnn}}
"""
    path = write_suite(tmp_path)
    path.write_text(path.read_text() + claim)
    first = harness("run", "tiny.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Does this task need an SSM?" in first.stdout and "inconclusive" in first.stdout  # 1 seed: n too small
    assert "mamba-ahead" in first.stdout and "undecided" in first.stdout
    quiet = harness("run", "tiny.yaml", "--no-answer", cwd=tmp_path)
    assert quiet.returncode == 0 and "0 ran, 3 resumed" in quiet.stdout
    assert "Does this task need an SSM?" not in quiet.stdout and "mamba-ahead" not in quiet.stdout


def test_exit_code_says_when_runs_failed_and_how_to_retry(tmp_path: Path) -> None:
    """Every row is written, then the exit code is 1 when a run ended error (run now or resumed: a rerun
    that keeps a stale error row says so), and for oom only under --fail-on oom."""
    write_suite(tmp_path, extra=HUGE)
    oom = harness("run", "tiny.yaml", "--only", "recall/huge", cwd=tmp_path)
    assert oom.returncode == 0, oom.stderr  # an OOM is a result
    again = harness("run", "tiny.yaml", "--only", "recall/huge", "--fail-on", "oom", cwd=tmp_path)
    assert again.returncode == 1 and "1 run ended oom (1 of them resumed" in again.stderr, again.stderr

    timed_out = harness("run", "tiny.yaml", "--only", "recall/mamba", "--timeout", "0.01", cwd=tmp_path)
    assert timed_out.returncode == 1, timed_out.stderr
    assert "1 run ended error:" in timed_out.stderr and "--retry-failed" in timed_out.stderr, timed_out.stderr
    assert "resumed: stored by an earlier run" not in timed_out.stderr
    df = pd.read_parquet(tmp_path / "results" / "tiny" / "results.parquet")
    assert sorted(df["status"]) == ["error", "oom"]  # written before the exit

    stale = harness("run", "tiny.yaml", "--only", "recall/mamba", cwd=tmp_path)  # the cause is gone, the row stays
    assert stale.returncode == 1 and "0 ran, 1 resumed" in stale.stdout, stale.stdout
    assert "1 run ended error (1 of them resumed: stored by an earlier run and not rerun)" in stale.stderr, stale.stderr
    retried = harness("run", "tiny.yaml", "--only", "recall/mamba", "--retry-failed", cwd=tmp_path)
    assert retried.returncode == 0 and "1 ran, 0 resumed" in retried.stdout, retried.stderr
