"""The local executor: runs planned specs one at a time, each in its own subprocess, with a progress bar.

Resume: runs whose id is already in the store are skipped (``resume=False`` reruns them; ``retry``
reruns stored runs whose status is in the given set). Interrupts: Ctrl-C stops the current run's
process and returns; what finished is already stored. A kill -9 of this process takes its child with it
(``PR_SET_PDEATHSIG``), and the half-done run leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.plan.planner import RunSpec
from harness.store.store import ResultStore, atomic_write_text


@dataclass
class ExecutionSummary:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _failure_row(spec: RunSpec, message: str) -> dict[str, Any]:
    """A row for a run whose process died without a result (killed, segfault, OOM-killer...)."""
    from harness.measure.env import environment
    import torch

    c = spec.config
    return {
        "suite": c["suite"], "task": c["task"], "family": c["family"], "dataset": c["dataset"],
        "variant": c["variant"], "mixer": c["use"], "ablation": c.get("ablation", ""), "seed": c["seed"],
        "sweep": json.dumps(c["sweep"], sort_keys=True), "status": "error", "error": message,
        "config_hash": spec.run_id, **environment(torch.device(c["device"])),
    }


def run_one(spec: RunSpec, store: ResultStore, cache_dir: Path, timeout: float | None = None) -> dict[str, Any]:
    """Run one spec in a subprocess; always returns a row (a failure row if the process died)."""
    log = store.log_path(spec.run_id)
    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        atomic_write_text(spec_path, json.dumps({"run_id": spec.run_id, "config": spec.config}))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log, "w") as log_fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.execute.worker", str(spec_path), str(result_path), str(cache_dir)],
                stdout=log_fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent,
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return _failure_row(spec, f"timed out after {timeout:.0f} s (log: {log})")
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if result_path.exists():
            return json.loads(result_path.read_text())
        tail = log.read_text()[-1500:] if log.exists() else ""
        if code < 0:
            why = f"killed by signal {signal.Signals(-code).name}"
            if code == -signal.SIGKILL:
                why += " (possibly the out-of-memory killer)"
        else:
            why = f"exited with code {code}"
        return _failure_row(spec, f"run process {why}; log tail: {tail.strip()[-800:]}")


def execute(
    specs: Iterable[RunSpec],
    store: ResultStore,
    cache_dir: Path,
    *,
    resume: bool = True,
    retry: frozenset[str] = frozenset(),
    console: Console | None = None,
    timeout: float | None = None,
) -> ExecutionSummary:
    specs = list(specs)
    store.create()
    done = store.finished() if resume else {}
    todo = [s for s in specs if s.run_id not in done or done[s.run_id] in retry]
    summary = ExecutionSummary(skipped=[s.run_id for s in specs if s not in todo])
    console = console or Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not todo) as progress:
        bar = progress.add_task("runs", total=len(todo))
        for spec in todo:
            progress.update(bar, description=f"[bold]{spec.label}")
            try:
                row = run_one(spec, store, cache_dir, timeout)
            except KeyboardInterrupt:
                summary.interrupted = True
                console.print(f"[yellow]interrupted during {spec.label}; finished runs are stored, rerun to resume")
                break
            store.write_run(row, spec.config)
            summary.ran.append(spec.run_id)
            summary.statuses[spec.run_id] = row["status"]
            if row["status"] != "ok":
                console.print(f"[red]{spec.label}: {row['status']}[/red] {row.get('error', '')[:200]}")
            progress.advance(bar)
    return summary
