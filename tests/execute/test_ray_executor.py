"""The Ray executor on a local 2-CPU Ray cluster (loopback only): same rows as the local executor, resume,
and a Ray worker killed mid-run (a real SIGKILL of the worker process) is retried, or recorded as an
error when retries are exhausted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

SUITE = """suite: %(name)s
seeds: [0]
train: {steps: %(steps)d, batch_size: 8, eval_batch_size: 32, warmup_steps: 1}
measure: {batch_size: 2, warmup_iters: 1, warmup_s: 0.0, min_iters: 2, min_time_s: 0.0, max_iters: 3, cpu_threads: 1}
variants: [%(variants)s]
tasks:
  - name: recall
    family: sequence
    dataset: mqar
    data: {seq_len: 16, num_kv: 2, key_vocab: 8, value_vocab: 8, n_eval: 16}
    model: {d_model: 16, n_layers: 1, d_state: 4, n_heads: 2}
"""
# loopback only: Ray would otherwise replace 127.0.0.1 by the machine's address; no auth token on loopback
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def env_for(cwd: Path) -> dict[str, str]:
    return {**os.environ, **RAY_ENV, "HARNESS_CACHE": str(cwd / "cache"), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("harness")), *args], cwd=cwd, capture_output=True, text=True, env=env_for(cwd), timeout=600)


def write_suite(path: Path, name: str, steps: int = 3, variants: str = "mamba, attention") -> Path:
    path.write_text(SUITE % {"name": name, "steps": steps, "variants": variants})
    return path


def _free_port() -> int:
    from harness.execute.torchrun import free_port

    return free_port()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _descendants(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        kids = _children(todo.pop())
        seen += kids
        todo += kids
    return seen


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head`` with 2 CPUs on 127.0.0.1; stopped by signalling our own head process."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--num-cpus=2", f"--port={port}",
           "--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--temp-dir={temp}",
           "--object-store-memory=100000000", "--disable-usage-stats"]
    head = subprocess.Popen(cmd, env={**os.environ, **RAY_ENV, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    lines = []
    while time.time() < deadline:
        line = head.stdout.readline()
        lines.append(line)
        if "Ray runtime started" in line:
            break
        if head.poll() is not None:
            pytest.fail("ray start failed:\n" + "".join(lines))
    else:
        head.kill()
        pytest.fail("ray start did not come up:\n" + "".join(lines))
    yield {"address": f"127.0.0.1:{port}", "pid": head.pid}
    head.send_signal(signal.SIGTERM)  # --block: the head stops the processes it started
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        head.kill()
        head.wait()
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_rows_equal_local_rows_and_resume(tmp_path: Path, cluster) -> None:
    write_suite(tmp_path / "s.yaml", "same")
    local = harness("run", "s.yaml", "--out", "local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    on_ray = harness("run", "s.yaml", "--out", "ray", "--executor", "ray", "--address", cluster["address"], cwd=tmp_path)
    assert on_ray.returncode == 0, on_ray.stderr
    assert "2 ran, 0 resumed" in on_ray.stdout
    a = pd.read_parquet(tmp_path / "local" / "results.parquet").set_index("config_hash").sort_index()
    b = pd.read_parquet(tmp_path / "ray" / "results.parquet").set_index("config_hash").sort_index()
    assert list(a.index) == list(b.index) and len(a) == 2
    assert set(b["status"]) == {"ok"}
    for column in ("variant", "params", "flops_fwd", "final_loss", "accuracy", "eval_loss", "train_steps", "distributed"):
        assert a[column].tolist() == b[column].tolist(), column
    for run_id in b.index:  # the logs came back to the driver's folder
        assert "ray task on" in (tmp_path / "ray" / "logs" / f"{run_id}.log").read_text()

    again = harness("run", "s.yaml", "--out", "ray", "--executor", "ray", "--address", cluster["address"], cwd=tmp_path)
    assert again.returncode == 0 and "0 ran, 2 resumed" in again.stdout, again.stdout + again.stderr


def _kill_worker_mid_run(tmp_path: Path, cluster, *extra: str) -> tuple[subprocess.CompletedProcess, int]:
    """Start a ray sweep, SIGKILL the Ray worker process executing the first run, let the sweep finish."""
    proc = subprocess.Popen([str(Path(sys.executable).with_name("harness")), "run", "s.yaml", "--executor", "ray", "--address", cluster["address"], *extra],
                            cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, deadline = None, time.time() + 180
    while victim is None and time.time() < deadline and proc.poll() is None:
        for pid in _descendants(cluster["pid"]):
            # an executing task's worker is titled ray::<task name>; its child is the run's process
            if _cmdline(pid).startswith("ray::harness:") and _descendants(pid):
                victim = pid
                break
        time.sleep(0.2)
    assert victim is not None, "no Ray worker was seen running the task"
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), victim


def test_killed_worker_is_retried(tmp_path: Path, cluster) -> None:
    write_suite(tmp_path / "s.yaml", "retry", steps=1500, variants="gated_cnn")  # long enough to be caught mid-run
    done, victim = _kill_worker_mid_run(tmp_path, cluster)
    assert done.returncode == 0, done.stderr
    df = pd.read_parquet(tmp_path / "results" / "retry" / "results.parquet")
    assert len(df) == 1 and df["status"].iloc[0] == "ok", df["error"].iloc[0]
    log = (tmp_path / "results" / "retry" / "logs" / f"{df['config_hash'].iloc[0]}.log").read_text()
    assert f"worker pid {victim})" not in log.splitlines()[0], "the row must come from the retried attempt"


def test_killed_worker_without_retries_is_an_error_row(tmp_path: Path, cluster) -> None:
    write_suite(tmp_path / "s.yaml", "noretry", steps=1500, variants="gated_cnn")
    done, _ = _kill_worker_mid_run(tmp_path, cluster, "--max-retries", "0")
    assert done.returncode == 1, done.stderr  # the sweep finishes, every row is written, and the exit code says a run failed
    assert "1 run ended error" in done.stderr and "--retry-failed" in done.stderr, done.stderr
    df = pd.read_parquet(tmp_path / "results" / "noretry" / "results.parquet")
    assert len(df) == 1 and df["status"].iloc[0] == "error"
    assert "ray:" in df["error"].iloc[0] and "max_retries=0" in df["error"].iloc[0], df["error"].iloc[0]
