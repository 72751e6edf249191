"""One run in its own process(es): a fresh worker process, or torchrun's ranks for a ``distributed:`` task.

One model per process (timm's lesson: allocator state and cuDNN algorithm choices must not leak from one
run into the next). Worker processes fork from a forkserver that has imported torch, timm and the harness
once (``worker.PRELOAD``), so a run does not pay seconds of imports. Both launchers start every run here.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.execute import worker
from harness.execute.launcher import death_reason, failure_row, plugin_note
from harness.execute.torchrun import run_torchrun
from harness.plan.planner import RunSpec
from harness.store.store import ResultStore


@functools.lru_cache(maxsize=1)
def process_context() -> multiprocessing.context.ForkServerContext:
    """A forkserver that imports torch/timm/harness once; each run is a fresh process forked from it."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(worker.PRELOAD)
    return ctx


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
        return run_torchrun(spec, log, cache_dir, timeout)
    if stop is not None and stop.is_set():
        return None
    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        result_path = Path(tmp) / "result.json"
        proc = process_context().Process(
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
                    return failure_row(spec, f"timed out after {timeout:g} s{plugin_note(spec)} (log: {log})")
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
        return failure_row(spec, f"run process {death_reason(proc.exitcode, log)}")
