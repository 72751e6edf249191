"""The launcher base (optimum-benchmark's ``launchers/base.py``): what every launcher shares.

A launcher moves planned run specs to where they run and their rows back to the store; it never trains.
``harness.execute.LAUNCHERS`` holds them by ``--executor`` name: ``local`` (a process per run on this
machine, ``--jobs`` side by side) and ``ray`` (a Ray task per run, placed by Ray). Inside either, one run
starts as one worker process, or as a torchrun job for a ``distributed:`` task (``process.run_one``).

Shared here: which runs are pending (resume, results versions), the progress bar and store writes
(``Recorder``, the driver being the only writer), the row of a run that left no result
(``failure_row``), what each launcher refuses before anything runs (``check``), the ``harness run``
options each one takes (``options``) and each run's timeout (``run_timeout``: ``--timeout`` for every run,
else ``--plugin-timeout`` for runs that execute plugin code, so a plugin that hangs is stopped and recorded).
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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


#: seconds after which a run that executes plugin code is stopped (recorded as ``error``, "timed out")
#: when ``--timeout`` sets none: an hour holds a CPU- or GPU-sized run; a hang does not stall the suite
PLUGIN_TIMEOUT_S = 3600.0


class Launcher(ABC):
    """Runs the pending specs of a suite somewhere and records each row as it comes back."""

    #: the ``harness run`` options this launcher takes, with their defaults (the CLI refuses the others')
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, store: ResultStore, cache_dir: Path, *, timeout: float | None = None,
                 plugin_timeout: float | None = PLUGIN_TIMEOUT_S, console: Console | None = None, **options: Any):
        self.store, self.cache_dir, self.timeout, self.plugin_timeout = store, Path(cache_dir), timeout, plugin_timeout
        self.console = console or Console(stderr=True)
        self.settings = {**self.options, **options}

    def run_timeout(self, spec: RunSpec) -> float | None:
        """``--timeout`` when given, else ``--plugin-timeout`` for a run that executes plugin code, else none."""
        if self.timeout is not None:
            return self.timeout
        return self.plugin_timeout if spec.plugin_code else None

    @classmethod
    def check(cls, specs: list[RunSpec], **options: Any) -> None:
        """Raise ``HarnessError`` for specs this launcher cannot run with these options, before anything
        is written (default: it runs them all)."""

    def execute(self, specs: Iterable[RunSpec], *, resume: bool = True, retry: frozenset[str] = frozenset(),
                accept_stale: bool = False) -> ExecutionSummary:
        """Run what is pending; every finished run is stored before this returns (or is interrupted)."""
        todo, summary = pending(specs, self.store, resume=resume, retry=retry, accept_stale=accept_stale)
        if todo:
            self.launch(todo, summary)
        return summary

    @abstractmethod
    def launch(self, todo: list[RunSpec], summary: ExecutionSummary) -> None:
        """Run ``todo``, recording each row through a ``Recorder``; on Ctrl-C stop, keep what finished and set
        ``summary.interrupted``."""


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
    chosen = {s.run_id for s in todo}
    return todo, ExecutionSummary(skipped=[s.run_id for s in specs if s.run_id not in chosen], stale=stale,
                                  accepted_stale=list(kept))


def failure_row(spec: RunSpec, message: str) -> dict[str, Any]:
    """A row for a run whose process died without a result (killed, segfault, OOM-killer, timeout...)."""
    import torch

    from harness.measure.env import environment
    from harness.run.runner import spec_columns

    return {**spec_columns(spec.run, spec.run_id), "status": "error", "error": message,
            **environment(torch.device(spec.run.device))}


def plugin_note(spec: RunSpec) -> str:
    """'' or ' (plugin code: my_pkg.mixers)': a timed-out run says whose code it ran."""
    return f" (plugin code: {', '.join(spec.plugin_code)})" if spec.plugin_code else ""


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
