"""The per-run process: one model per process (timm's lesson: allocator state and cuDNN algorithm
choices must not leak from one run into the next).

Two entry points run the same thing:
- ``run_child``, the target ``harness.execute.process`` starts from a forkserver that has already imported torch,
  timm and the harness (a fresh process per run without paying seconds of imports per run);
- ``python -m harness.execute.worker SPEC.json RESULT.json CACHE_DIR`` for launchers that need a command
  line (torchrun, remote workers).
The result is written atomically; a crash leaves no result and the parent records the run as ``error``
with the tail of its log.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path

# imported by the forkserver once, before any run is forked (no CUDA initialisation happens on import)
PRELOAD = ["torch", "timm", "harness.run.runner", "harness.measure"]


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (a kill -9 of the suite takes its run)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run(spec: dict, result_path: Path, cache_dir: Path, threads: int | None = None) -> None:
    """Execute the run ``{"run_id", "config": its JSON}`` (parsed here, once) and write its row;
    ``threads``: torch CPU threads (several runs side by side)."""
    import torch

    from harness.config.run_config import RunConfig
    from harness.measure import exclusive
    from harness.run.runner import execute_run
    from harness.store.store import atomic_write_text

    if threads:
        torch.set_num_threads(threads)  # the suite's measure.cpu_threads, when set, still wins
    exclusive.hold()  # when runs share the device (--jobs): all of this run's device work, until it exits
    row = execute_run(RunConfig.from_json(spec["config"]), spec["run_id"], cache_dir)
    atomic_write_text(result_path, json.dumps(row, default=str))


def run_child(spec: dict, result_path: str, cache_dir: str, log_path: str, env: dict[str, str] | None = None,
              threads: int | None = None) -> None:
    """Forkserver target: stdout/stderr go to the run's log file; ``env`` is set first (the forkserver
    keeps the environment it started with, so per-run settings travel here)."""
    die_with_parent()
    os.environ.update(env or {})
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    run(spec, Path(result_path), Path(cache_dir), threads)


def main(argv: list[str]) -> int:
    spec_path, result_path, cache_dir = map(Path, argv)
    run(json.loads(spec_path.read_text()), result_path, cache_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
