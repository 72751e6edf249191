"""The result store: one JSON file per finished run (atomic), merged into results.parquet / results.csv."""

from harness.store.store import ResultStore

__all__ = ["ResultStore"]
