"""The local launcher: runs planned specs on this machine, each in its own process, with a progress bar.

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

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, ClassVar

from rich.markup import escape

from harness.errors import HarnessError
from harness.execute.launcher import ExecutionSummary, Launcher, Recorder
from harness.execute.process import process_context, run_one
from harness.measure import exclusive
from harness.plan.planner import RunSpec


class LocalLauncher(Launcher):
    options: ClassVar[dict[str, Any]] = {"jobs": 1}

    @classmethod
    def check(cls, specs: list[RunSpec], *, jobs: int = 1, **_: Any) -> None:
        if jobs < 1:
            raise HarnessError(f"--jobs must be at least 1, got {jobs}")
        if jobs > 1 and any(s.run.distributed for s in specs):
            raise HarnessError("--jobs > 1 cannot run distributed tasks (torchrun uses every device); run them with --jobs 1")
        multinode = {s.run.task: s.run.distributed.nnodes for s in specs if s.run.distributed and s.run.distributed.nnodes > 1}
        if multinode:  # one torchrun per node: only Ray places them
            raise HarnessError(
                f"task(s) {', '.join(sorted(multinode))}: distributed.nnodes > 1 runs on several machines, which the local "
                f"executor cannot reach; use --executor ray --address HOST:PORT (a Ray cluster with at least "
                f"{max(multinode.values())} nodes)")

    def launch(self, todo: list[RunSpec], summary: ExecutionSummary) -> None:
        jobs = self.settings["jobs"]
        process_context()  # created once, here, not raced by the pool's threads
        threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
        stop = threading.Event()
        running: dict[str, str] = {}
        running_lock = threading.Lock()

        def labels() -> str:
            with running_lock:
                return ", ".join(running.values())

        with tempfile.TemporaryDirectory(prefix="harness-device-") as lock_dir, \
                Recorder(self.store, summary, self.console, total=len(todo)) as recorder, ThreadPoolExecutor(jobs) as pool:
            env = {exclusive.ENV: lock_dir} if jobs > 1 else {}

            def one(spec: RunSpec) -> dict[str, Any] | None:
                with running_lock:
                    running[spec.run_id] = spec.label
                recorder.describe(f"[bold]{escape(labels())}")
                try:
                    return run_one(spec, self.store, self.cache_dir, self.run_timeout(spec), env=env, threads=threads, stop=stop)
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
                self.console.print(f"[yellow]interrupted during {escape(what)}; "
                                   "finished runs are stored, rerun to resume")
