"""A local, resumable result store keyed by run id (the config hash): the writer of a results folder
(its format: ``harness.store.results_format``).

    runs/<run_id>.json    one finished run: {"row": {...}, "config": {...}}; written atomically
    runs/superseded/<run_id>.v<version>.json   a run's row from an older results version, kept when the
                          run is redone under the current one (``harness.versions``)
    logs/<run_id>.log     the run's subprocess output
    results.parquet/.csv  the merged table, rebuilt from runs/ under a file lock after every run
    suite.json            the suite's record for reports (``write_meta``)

Why this shape: a run file is the unit of truth, written by temp file + rename, so a kill -9 at any
moment leaves either the whole run or nothing. The merged tables are derived, rebuilt under an exclusive
``flock`` from the run files, so two ``harness run`` processes on one folder can neither lose nor
duplicate rows (the same run id written twice is one file, one row).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from harness.errors import HarnessError
from harness.store.results_format import LOGS_DIR, RESULTS_CSV, RESULTS_PARQUET, RUNS_DIR
from harness.versions import stored_version

SORT_KEYS = ["task", "sweep", "seed", "variant"]  # sweep points by value (_sweep_order), not by their JSON text


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; results are meant to be shared
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable_dir(path: Path) -> None:
    """Refuse a folder that cannot be written (a file, under a file, read-only) before any work is done.

    Probes with a temp folder that is removed at once: ``os.access`` cannot tell, as root passes it on
    read-only mounts such as /sys.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HarnessError(f"{path} is a file, not a folder; choose another --out")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise HarnessError(f"{path}: {existing} is a file, not a folder; choose another --out")
    try:
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as exc:
        raise HarnessError(f"{path}: cannot write in {existing} ({exc.strerror}); choose another --out") from None


def _missing(value: Any) -> bool:
    """A value a row lacks: None, or the NaN pandas fills in for a column other rows have."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sweep_order(sweep: Any) -> tuple:
    """Sweep points ordered by value, key by key: numbers as numbers (16, 64, 256; their JSON text would
    give 16, 256, 64), before any other value, which goes by its text."""
    try:
        point = json.loads(sweep)
    except (TypeError, ValueError):
        point = None
    if not isinstance(point, dict):  # not a sweep point: last, by its text
        return (("~", 1, 0, str(sweep)),)
    return tuple((k, 0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (k, 1, 0, json.dumps(v))
                 for k, v in sorted(point.items()))


@dataclass(frozen=True)
class StoredRun:
    """What resume needs of a stored run: how it ended, and the results version of the code that ran it."""

    status: str
    results_version: str


class ResultStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.runs_dir = self.root / RUNS_DIR
        self.logs_dir = self.root / LOGS_DIR

    def create(self) -> "ResultStore":
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return self

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def log_path(self, run_id: str) -> Path:
        return self.logs_dir / f"{run_id}.log"

    def finished(self) -> dict[str, StoredRun]:
        """run_id -> status and results version of every stored run."""
        out = {}
        for path in sorted(self.runs_dir.glob("*.json")):
            try:
                row = json.loads(path.read_text())["row"]
                out[path.stem] = StoredRun(row["status"], stored_version(row.get("results_version")))
            except (json.JSONDecodeError, KeyError, OSError, TypeError):
                continue  # unreadable leftovers never count as done
        return out

    def _read(self, run_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.runs_dir / f"{run_id}.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def write_run(self, row: dict[str, Any], config: dict[str, Any]) -> None:
        """Store one finished run and refresh the merged tables. A stored row of the same run from another
        results version is moved to ``runs/superseded/`` first, not lost."""
        run_id = row["config_hash"]
        old = self._read(run_id)
        if old is not None and isinstance(old.get("row"), dict):
            version = stored_version(old["row"].get("results_version"))
            if version != stored_version(row.get("results_version")):
                atomic_write_text(self.runs_dir / "superseded" / f"{run_id}.v{version}.json", json.dumps(old, indent=1, sort_keys=True, default=str))
        payload = json.dumps({"row": row, "config": config}, indent=1, sort_keys=True, default=str)
        atomic_write_text(self.runs_dir / f"{run_id}.json", payload)
        self.rebuild()

    def accept_stale(self, current: dict[str, str]) -> None:
        """Keep these stored runs of an older results version as they are (run id -> the current version),
        each row saying so in ``accepted_stale`` (the version it was accepted under); one rebuild."""
        changed = False
        for run_id, version in current.items():
            stored = self._read(run_id)
            if stored is None or not isinstance(stored.get("row"), dict) or stored["row"].get("accepted_stale") == version:
                continue
            stored["row"]["accepted_stale"] = version
            atomic_write_text(self.runs_dir / f"{run_id}.json", json.dumps(stored, indent=1, sort_keys=True, default=str))
            changed = True
        if changed:
            self.rebuild()

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for path in sorted(self.runs_dir.glob("*.json")):
            try:
                rows.append(json.loads(path.read_text())["row"])
            except (json.JSONDecodeError, KeyError, OSError):
                continue
        return rows

    def table(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows())
        if df.empty:
            return df
        keys = [k for k in SORT_KEYS if k in df.columns]
        rank = {p: i for i, p in enumerate(sorted(set(df.get("sweep", [])), key=_sweep_order))}
        return df.sort_values(keys, key=lambda s: s.map(rank) if s.name == "sweep" else s, kind="stable").reset_index(drop=True)

    def rebuild(self) -> pd.DataFrame:
        """Re-derive the merged tables from runs/ (under the lock, each file atomically)."""
        with self.locked():
            df = self.table()
            if df.empty:
                return df
            for column in df.columns:
                if df[column].dtype != object:
                    continue
                # a value a row lacks (a failure row has no mem_approx...) is null, never "NaN", and a flag
                # column stays a (nullable) boolean
                values = df[column].map(lambda v: None if _missing(v) else v)
                if values.dropna().map(type).nunique() > 1:  # parquet needs one type per column: mixed objects become strings
                    values = values.map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
                df[column] = values
            tmp = self.root / f".{RESULTS_PARQUET}.tmp"
            df.to_parquet(tmp, index=False)
            os.replace(tmp, self.root / RESULTS_PARQUET)
            atomic_write_text(self.root / RESULTS_CSV, df.to_csv(index=False))
            return df

    def write_meta(self, name: str, meta: dict[str, Any]) -> None:
        atomic_write_text(self.root / name, json.dumps(meta, indent=1, sort_keys=True, default=str))
