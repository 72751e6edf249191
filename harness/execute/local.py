"""The local executor: runs planned specs, each in its own subprocess, with a progress bar.

``jobs`` runs go side by side (default one at a time). Small models leave a GPU idle most of the time,
so several runs can train on it at once; they share the device through ``harness.measure.exclusive``:
every latency measurement and every run's first training step happen while no other run touches the
device, and each run gets ``cpu_count // jobs`` CPU threads. Rows record ``concurrent_runs``.

Resume: runs whose id is already in the store are skipped (``resume=False`` reruns them; ``retry``
reruns stored runs whose status is in the given set). Interrupts: Ctrl-C stops the running processes and
returns; what finished is already stored. A kill -9 of this process takes its children with it
(``PR_SET_PDEATHSIG``, set in the run process), and the half-done runs leave nothing behind.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.execute import worker
from harness.measure import exclusive
from harness.plan.planner import RunSpec
from harness.store.store import ResultStore


@dataclass
class ExecutionSummary:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    stale: list[str] = field(default_factory=list)  # stored under another results version: rerun
    accepted_stale: list[str] = field(default_factory=list)  # stored under another results version: kept (--accept-stale)


@functools.lru_cache(maxsize=1)
def _process_context() -> multiprocessing.context.ForkServerContext:
    """A forkserver that imports torch/timm/harness once; each run is a fresh process forked from it."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(worker.PRELOAD)
    return ctx


def _failure_row(spec: RunSpec, message: str) -> dict[str, Any]:
    """A row for a run whose process died without a result (killed, segfault, OOM-killer...)."""
    from harness.measure.env import environment
    from harness.run.runner import spec_columns
    import torch

    return {**spec_columns(spec.run, spec.run_id), "status": "error", "error": message,
            **environment(torch.device(spec.run.device))}


def death_reason(code: int | None, log: Path) -> str:
    """Why a process left no result: its exit code or signal, and the tail of its log."""
    if code is not None and code < 0:
        why = f"killed by signal {signal.Signals(-code).name}"
        if code == -signal.SIGKILL:
            why += " (possibly the out-of-memory killer)"
    else:
        why = f"exited with code {code}"
    tail = log.read_text()[-1500:] if log.exists() else ""
    return f"{why}; log tail: {tail.strip()[-800:]}"


def _kill(proc: multiprocessing.process.BaseProcess) -> None:
    proc.kill()
    proc.join()


def run_one(spec: RunSpec, store: ResultStore, cache_dir: Path, timeout: float | None = None, *,
            env: dict[str, str] | None = None, threads: int | None = None,
            stop: threading.Event | None = None) -> dict[str, Any] | None:
    """Run one spec in its own process; returns its row (a failure row if the process died), or None
    when ``stop`` was set before it finished (the run is dropped and reruns next time)."""
    log = store.log_path(spec.run_id)
    if spec.run.distributed is not None:  # a DDP run: torchrun launches its ranks instead of one process
        from harness.execute.torchrun import run_torchrun

        return run_torchrun(spec, log, cache_dir, timeout)
    if stop is not None and stop.is_set():
        return None
    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        result_path = Path(tmp) / "result.json"
        proc = _process_context().Process(
            target=worker.run_child,
            args=({"run_id": spec.run_id, "config": spec.config}, str(result_path), str(cache_dir), str(log), env, threads),
            name=f"harness-run-{spec.run_id}",
        )
        proc.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while proc.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    _kill(proc)
                    return _failure_row(spec, f"timed out after {timeout:g} s (log: {log})")
                if stop is not None and stop.is_set():
                    _kill(proc)
                    return None
                proc.join(0.2 if left is None else min(0.2, left))
        except BaseException:
            _kill(proc)
            raise
        if result_path.exists():
            return json.loads(result_path.read_text())
        if stop is not None and stop.is_set():
            return None  # died with the interrupt (Ctrl-C reaches the whole process group)
        return _failure_row(spec, f"run process {death_reason(proc.exitcode, log)}")


def execute(
    specs: Iterable[RunSpec],
    store: ResultStore,
    cache_dir: Path,
    *,
    resume: bool = True,
    retry: frozenset[str] = frozenset(),
    accept_stale: bool = False,
    console: Console | None = None,
    timeout: float | None = None,
    jobs: int = 1,
) -> ExecutionSummary:
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    todo, summary = pending(specs, store, resume=resume, retry=retry, accept_stale=accept_stale)
    console = console or Console(stderr=True)
    _process_context()  # created once, here, not raced by the pool's threads
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    stop = threading.Event()
    running: dict[str, str] = {}
    running_lock = threading.Lock()

    def labels() -> str:
        with running_lock:
            return ", ".join(running.values())

    with tempfile.TemporaryDirectory(prefix="harness-device-") as lock_dir, \
            Recorder(store, summary, console, total=len(todo)) as recorder, ThreadPoolExecutor(jobs) as pool:
        env = {exclusive.ENV: lock_dir} if jobs > 1 else {}

        def one(spec: RunSpec) -> dict[str, Any] | None:
            with running_lock:
                running[spec.run_id] = spec.label
            recorder.describe(f"[bold]{escape(labels())}")
            try:
                return run_one(spec, store, cache_dir, timeout, env=env, threads=threads, stop=stop)
            finally:
                with running_lock:
                    running.pop(spec.run_id, None)

        futures = {pool.submit(one, spec): spec for spec in todo}
        try:
            for future in as_completed(futures):
                row = future.result()
                if row is not None:
                    recorder.record(futures[future], {**row, "concurrent_runs": jobs})
        except KeyboardInterrupt:
            what = labels() or "the last run"
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            summary.interrupted = True
            console.print(f"[yellow]interrupted during {escape(what)}; "
                          "finished runs are stored, rerun to resume")
    return summary


# Shared by every executor (local, ray): which runs to do, and the progress bar + store writes + summary.


def pending(specs: Iterable[RunSpec], store: ResultStore, *, resume: bool, retry: frozenset[str],
            accept_stale: bool = False) -> tuple[list[RunSpec], ExecutionSummary]:
    """The specs still to run, and a summary that lists the others as skipped.

    With resume, a stored run is redone when its status is in ``retry``, or when it was produced by
    another results version of the code (``harness.versions``): its numbers may not be what this code
    would produce. ``accept_stale`` keeps those instead, and marks their rows."""
    specs = list(specs)
    store.create()
    done = store.finished() if resume else {}
    todo, stale, kept = [], [], {}
    for spec in specs:
        stored = done.get(spec.run_id)
        if stored is None or stored.status in retry:
            todo.append(spec)
        elif stored.results_version != spec.results_version:
            if accept_stale:
                kept[spec.run_id] = spec.results_version
            else:
                todo.append(spec)
                stale.append(spec.run_id)
    store.accept_stale(kept)
    return todo, ExecutionSummary(skipped=[s.run_id for s in specs if s not in todo], stale=stale, accepted_stale=list(kept))


class Recorder:
    """The progress bar; ``record`` stores a finished run's row (the driver is the only writer), notes
    it in the summary, prints failures and advances the bar. Without a terminal (logs, pipes) there is
    no bar, whose one final render would only repeat stale labels: a line per finished run instead."""

    def __init__(self, store: ResultStore, summary: ExecutionSummary, console: Console, total: int):
        self.store, self.summary, self.console, self.total = store, summary, console, total
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        self.progress = Progress(*columns, console=console, transient=False, disable=not total or not console.is_terminal)
        self.bar = self.progress.add_task("runs", total=total)

    def __enter__(self) -> "Recorder":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.describe(f"{len(self.summary.ran)} runs finished")  # not the labels that were running
        self.progress.__exit__(*exc)

    def describe(self, text: str) -> None:
        self.progress.update(self.bar, description=text)

    def record(self, spec: RunSpec, row: dict[str, Any]) -> None:
        self.store.write_run(row, spec.config)
        self.summary.ran.append(spec.run_id)
        self.summary.statuses[spec.run_id] = row["status"]
        done = escape(f"{len(self.summary.ran)}/{self.total} {spec.label}")  # labels and messages hold [brackets]
        if row["status"] != "ok":
            self.console.print(f"[red]{done}: {row['status']}[/red] {escape(row.get('error', '')[:200])}", highlight=False)
        elif not self.console.is_terminal:  # logs and pipes see no live bar: a line per finished run
            self.console.print(f"{done}: ok in {row.get('duration_s', 0):.1f} s", highlight=False)
        self.progress.advance(self.bar)
