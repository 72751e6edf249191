"""The per-run subprocess: ``python -m harness.execute.worker SPEC.json RESULT.json CACHE_DIR``.

One model per process (timm's lesson: allocator state and cuDNN algorithm choices must not leak from
one run into the next). The result is written atomically; a crash leaves no result and the parent
records the run as ``error`` with the tail of its log.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    spec_path, result_path, cache_dir = map(Path, argv)
    spec = json.loads(spec_path.read_text())
    from harness.run.runner import execute_run
    from harness.store.store import atomic_write_text

    row = execute_run(spec["config"], spec["run_id"], cache_dir)
    atomic_write_text(result_path, json.dumps(row, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
