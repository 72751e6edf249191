"""The local executor: runs planned specs one at a time, each in its own subprocess, with a progress bar.

Resume: runs whose id is already in the store are skipped (``resume=False`` reruns them; ``retry``
reruns stored runs whose status is in the given set). Interrupts: Ctrl-C stops the current run's
process and returns; what finished is already stored. A kill -9 of this process takes its child with it
(``PR_SET_PDEATHSIG``, set in the run process), and the half-done run leaves nothing behind.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.execute import worker
from harness.plan.planner import RunSpec
from harness.store.store import ResultStore, atomic_write_text


@dataclass
class ExecutionSummary:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


@functools.lru_cache(maxsize=1)
def _process_context() -> multiprocessing.context.ForkServerContext:
    """A forkserver that imports torch/timm/harness once; each run is a fresh process forked from it."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(worker.PRELOAD)
    return ctx


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
    """Run one spec in its own process; always returns a row (a failure row if the process died)."""
    log = store.log_path(spec.run_id)
    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        result_path = Path(tmp) / "result.json"
        proc = _process_context().Process(
            target=worker.run_child,
            args=({"run_id": spec.run_id, "config": spec.config}, str(result_path), str(cache_dir), str(log)),
            name=f"harness-run-{spec.run_id}",
        )
        proc.start()
        try:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()
                return _failure_row(spec, f"timed out after {timeout:.0f} s (log: {log})")
        except BaseException:
            proc.kill()
            proc.join()
            raise
        if result_path.exists():
            return json.loads(result_path.read_text())
        code = proc.exitcode
        tail = log.read_text()[-1500:] if log.exists() else ""
        if code is not None and code < 0:
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
