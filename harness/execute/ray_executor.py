"""The Ray executor: every planned run is a Ray task with its resource request; Ray places them.

``harness run SUITE --executor ray [--address auto|HOST:PORT] [--gpus-per-run 1]``. Without
``--address`` a local Ray instance is started (127.0.0.1 only, no dashboard) and stopped at the end.

- Scheduling is Ray's own: each run asks for ``num_cpus`` (``--cpus-per-run``, default the suite's
  ``measure.cpu_threads`` or 1), ``num_gpus`` (``--gpus-per-run``, default 1 on ``--device cuda`` else 0)
  and optionally ``memory`` (``--memory-per-run`` GiB), each times ``nproc_per_node`` for a torchrun
  (DDP) run; Ray queues what does not fit and spreads the rest over GPUs and nodes. Ray sets
  ``CUDA_VISIBLE_DEVICES`` for the task, and the run process inherits it.
- Inside the task the run executes exactly as with the local executor, through
  ``harness.execute.local.run_one``: a fresh process per run (or torchrun for a DDP task), never
  ``execute_run`` in the Ray worker itself, because Ray reuses worker processes and one model per process
  is the harness's rule (allocator and cuDNN state must not leak between runs); ``max_calls=1`` also
  gives every run a fresh Ray worker, so no state (a forkserver started with another task's
  ``CUDA_VISIBLE_DEVICES``) carries over from one run to the next.
- Workers never write the results folder (it may not even be on their node): the row and the run's log
  come back to the driver as the task's return value; the driver writes them through the same
  ``ResultStore`` (atomic run files, merged tables under a lock) as the local executor, and resume is
  the same (``pending``: runs already stored are not submitted).
- A worker that dies mid-run (killed process, lost node) is a system failure: Ray resubmits the task up
  to ``--max-retries`` times (default 2); after that the run is recorded as ``error`` with Ray's reason
  and the sweep goes on. A run that fails by itself (error, OOM, divergence, timeout) is a row, not an
  exception, and is not retried.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console

from harness.execute.local import ExecutionSummary, Recorder, _failure_row, pending
from harness.plan.planner import RunSpec
from harness.store.store import ResultStore, atomic_write_text

INSTALL_HINT = 'the Ray executor needs Ray: pip install -e ".[ray]"'
DEFAULT_MAX_RETRIES = 2


def available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def resources(spec: RunSpec, *, cpus_per_run: float | None = None, gpus_per_run: float | None = None, memory_per_run_gb: float | None = None) -> dict[str, Any]:
    """The Ray resource request of one run (per process, times the DDP processes on the node)."""
    c = spec.config
    procs = int(c["distributed"]["nproc_per_node"]) if c.get("distributed") else 1
    cpus = cpus_per_run if cpus_per_run is not None else (c["measure"].get("cpu_threads") or 1)
    gpus = gpus_per_run if gpus_per_run is not None else (1 if c["device"] == "cuda" else 0)
    request: dict[str, Any] = {"num_cpus": cpus * procs, "num_gpus": gpus * procs}
    if memory_per_run_gb:
        request["memory"] = int(memory_per_run_gb * 2**30 * procs)
    return request


def _run_remote(run_id: str, config: dict[str, Any], cache_dir: str, timeout: float | None, cwd: str) -> dict[str, Any]:
    """The Ray task body: one run in its own process, through the local executor's ``run_one``."""
    import socket

    from harness.execute.local import run_one

    if cwd and os.path.isdir(cwd):  # relative paths in a config resolve as they do for the driver
        os.chdir(cwd)
    with tempfile.TemporaryDirectory(prefix="harness-ray-") as tmp:
        scratch = ResultStore(tmp).create()  # the log lands here, on the worker, and travels back
        row = run_one(RunSpec(run_id=run_id, config=config), scratch, Path(cache_dir), timeout)
        log_path = scratch.log_path(run_id)
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
    return {"row": row, "log": log, "host": socket.gethostname(), "pid": os.getpid()}


def connect(address: str | None) -> bool:
    """Connect to the cluster at ``address`` or start a local instance; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        return False
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, _node_ip_address="127.0.0.1")
    return True


def execute(
    specs: Iterable[RunSpec],
    store: ResultStore,
    cache_dir: Path,
    *,
    resume: bool = True,
    retry: frozenset[str] = frozenset(),
    console: Console | None = None,
    timeout: float | None = None,
    address: str | None = None,
    cpus_per_run: float | None = None,
    gpus_per_run: float | None = None,
    memory_per_run_gb: float | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> ExecutionSummary:
    """Submit every pending run as a Ray task; store rows in the order they finish."""
    import ray

    todo, summary = pending(specs, store, resume=resume, retry=retry)
    console = console or Console(stderr=True)
    if not todo:
        return summary
    started_here = connect(address)
    try:
        remote = ray.remote(max_calls=1)(_run_remote)
        cwd = os.getcwd()
        submitted: dict[Any, RunSpec] = {}
        for spec in todo:
            options = resources(spec, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, memory_per_run_gb=memory_per_run_gb)
            ref = remote.options(
                **options, max_retries=max_retries, retry_exceptions=False, name=f"harness:{spec.label}"
            ).remote(spec.run_id, spec.config, str(Path(cache_dir).resolve()), timeout, cwd)
            submitted[ref] = spec
        waiting = list(submitted)
        with Recorder(store, summary, console, total=len(todo)) as recorder:
            recorder.describe(f"[bold]{len(todo)} runs on ray")
            try:
                while waiting:
                    ready, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
                    for ref in ready:
                        spec = submitted[ref]
                        recorder.record(spec, _collect(ref, spec, store, max_retries))
                        recorder.describe(f"[bold]{spec.label}[/bold] done, {len(waiting)} queued or running")
            except KeyboardInterrupt:
                summary.interrupted = True
                for ref in waiting:
                    ray.cancel(ref, force=True)
                console.print("[yellow]interrupted; finished runs are stored, rerun to resume")
    finally:
        if started_here:
            ray.shutdown()
    return summary


def _collect(ref: Any, spec: RunSpec, store: ResultStore, max_retries: int) -> dict[str, Any]:
    """The row of a finished task (its log written beside it), or an ``error`` row with Ray's reason."""
    import ray

    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as exc:  # the worker or node died on every attempt, or Ray gave up
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = f"ray: {type(exc).__name__} after {max_retries + 1} attempt(s) (max_retries={max_retries}): {reason}"
        atomic_write_text(store.log_path(spec.run_id), f"{message}\n\n{exc}\n")
        return _failure_row(spec, message[:2000])
    header = f"# ray task on {result['host']} (worker pid {result['pid']})\n"
    atomic_write_text(store.log_path(spec.run_id), header + result["log"])
    return result["row"]
