"""Read a results folder into tidy tables for the report: its rows, normalised, and its suite record.

This module (like all of ``harness.report``) reads stored results only; it never imports models,
kernels or families. The folder's format (files, columns, ``suite.json``, size / factor /
hyper-parameter keys) is ``harness.store.results_format``'s. A *cell* is one task at one size point; a
*config* is one hyper-parameter point inside a cell.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.store.results_format import (  # noqa: F401  (COST_COLUMNS, TaskInfo: the report's modules read them here)
    COST_COLUMNS, DESCRIPTIVE_NUMERIC, ID_COLUMNS, KNOWN_METRICS, MetricInfo, SuiteInfo, TaskInfo, read_table,
)
from harness.versions import stored_version, version_key


@dataclass
class ResultsSuite(SuiteInfo):
    """A results folder's suite record as the report reads it: ``suite.json`` plus what loading left out."""

    superseded: int = 0  # rows left out because a later config of the same run replaced them
    version_notes: list[str] = field(default_factory=list)  # rows left out (or kept stale) by results version


def parse_suite(data: dict[str, Any]) -> ResultsSuite:
    """The report's record of a ``suite.json`` already read."""
    return ResultsSuite.from_json(data)


def _parse_sweep(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return {}
    try:
        out = json.loads(value)
        return out if isinstance(out, dict) else {}
    except (TypeError, ValueError):
        return {}


def _canon(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, default=str)


def _to_bool(s: pd.Series) -> pd.Series:
    def conv(v: Any) -> Any:
        if isinstance(v, str):
            return v.strip().lower() in ("true", "1", "yes")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return bool(v)
    return s.map(conv).astype(bool)


def normalize(df: pd.DataFrame, suite: ResultsSuite) -> pd.DataFrame:
    """Fill missing columns, parse ``sweep`` and add the helper columns the report uses.

    Added columns: ``sweep_dict`` (dict), ``size_point`` (canonical JSON of the size keys),
    ``hp_point`` (canonical JSON of the hyper-parameter keys), ``size`` (float: the first size key's
    value, NaN if none), ``size_key`` (its name). A task's *factor* keys (``factors:`` in the suite, e.g.
    the spectral abscissa s_A of the theory study) are studied, not tuned: their values become part of
    the variant label (``ssm[s_A=0.1]``), so every table, paired test and line plot keeps them apart.
    """
    df = df.copy()
    for col, default in (("suite", suite.name), ("family", ""), ("mixer", ""), ("is_ssm", False),
                         ("seed", 0), ("sweep", "{}"), ("status", "ok"), ("error", ""), ("ablation", ""),
                         ("config_hash", None), ("causal", None), ("results_version", None)):
        if col not in df.columns:
            df[col] = default
    if "variant" not in df.columns:
        df["variant"] = df["mixer"]
    df["variant"] = df["variant"].astype(str)
    df["mixer"] = df["mixer"].astype(object).fillna("").astype(str)
    df["is_ssm"] = _to_bool(df["is_ssm"])
    df["status"] = df["status"].astype(object).fillna("ok").astype(str)
    df["ablation"] = df["ablation"].astype(object).fillna("").astype(str)
    df["sweep"] = df["sweep"].astype(object).fillna("{}").astype(str)
    df["results_version"] = df["results_version"].map(stored_version)  # rows older than the column read as 0.0
    dicts = [_parse_sweep(v) for v in df["sweep"]]
    size_pts, hp_pts, sizes, size_keys, labels = [], [], [], [], []
    for (_, row), sd in zip(df.iterrows(), dicts):
        t = suite.task(str(row["task"]))
        skeys = sorted(k for k in sd if t.is_size_key(k))
        fkeys = [k for k in t.factor_keys if k in sd and k not in skeys]
        hkeys = sorted(k for k in sd if k not in skeys and k not in fkeys)
        factors = ",".join(f"{k.split('.')[-1]}={sd[k]}" for k in fkeys)
        labels.append(f"{row['variant']}[{factors}]" if factors else row["variant"])
        size_pts.append(_canon({k: sd[k] for k in skeys}))
        hp_pts.append(_canon({k: sd[k] for k in hkeys}))
        if skeys:
            k0 = next((k for k in t.size_keys if k in skeys), skeys[0])
            try:
                sizes.append(float(sd[k0]))
            except (TypeError, ValueError):
                sizes.append(np.nan)
            size_keys.append(k0)
        else:
            sizes.append(np.nan)
            size_keys.append("")
    df["variant"] = labels
    df["sweep_dict"] = dicts
    df["size_point"] = size_pts
    df["hp_point"] = hp_pts
    df["size"] = sizes
    df["size_key"] = size_keys
    for c in list(COST_COLUMNS) + ["l_over_6d", "seq_len", "d_model", "budget_mismatch"]:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


RUN_KEY = ["task", "variant", "seed", "sweep", "ablation"]


def drop_superseded(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows of each run's latest config, and how many older ones were left out.

    A suite edited and rerun into the same folder (say, more steps) keeps the old configs' run files, as
    resume never deletes; pooled, the old and new rows of one seed would read as extra seeds. A run is its
    task x variant x seed x sweep point x ablation; its latest config is the one that started last."""
    if df.empty or not {"config_hash", "started_at", *RUN_KEY} <= set(df.columns):
        return df, 0
    started = pd.to_datetime(df["started_at"], errors="coerce", utc=True)
    config_started = started.groupby(df["config_hash"].astype(str), dropna=False).transform("max")
    keys = [df[k].astype(object).fillna("").astype(str) for k in RUN_KEY]  # a CSV reads "" back as NaN
    keep = (config_started == config_started.groupby(keys, dropna=False).transform("max")) | config_started.isna()
    return df[keep], int((~keep).sum())


def keep_one_version(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per task, the rows of its newest results version (``harness.versions``), and what was left out.

    Rows of one task made by different versions of the code are never pooled into one statistic: the
    older ones are left out, and each note says how many, of which version, and how to bring them in.
    Rows kept although stale (``--accept-stale``) are noted too."""
    if df.empty or "task" not in df.columns:
        return df, []
    versions = df["results_version"].map(stored_version) if "results_version" in df.columns else pd.Series("0.0", index=df.index)
    keep = pd.Series(True, index=df.index)
    notes = []
    for task, idx in df.groupby("task", sort=True).groups.items():
        vs = versions[idx]
        newest = max(vs.unique(), key=version_key)
        old = vs[vs != newest]
        if len(old):
            keep[old.index] = False
            counts = ", ".join(f"{n} of version {v}" for v, n in sorted(old.value_counts().items(), key=lambda kv: version_key(kv[0])))
            notes.append(f"task {task}: {len(old)} rows left out ({counts}), its other rows are of results version {newest}; "
                         "rows of different code versions are not pooled: rerun the suite to redo them (harness run reruns "
                         "runs of another version unless given --accept-stale)")
        if "accepted_stale" in df.columns:
            stale = df.loc[idx][keep[idx]]["accepted_stale"].map(lambda v: "" if _is_missing(v) else str(v))
            stale = stale[stale != ""]
            if len(stale):
                notes.append(f"task {task}: {len(stale)} rows of results version {newest} were kept with --accept-stale "
                             f"under version {', '.join(sorted(stale.unique()))}: they are not what the current code produces")
    return df[keep], notes


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def load_results(results_dir: str | Path, latest_only: bool = True) -> tuple[pd.DataFrame, ResultsSuite]:
    """Read and normalise a results folder: each run's latest config of one results version per task
    only (see ``drop_superseded`` and ``keep_one_version``), or every stored row (``compare`` pairs them
    by config hash). Raises :class:`HarnessError` when it is not a results folder."""
    suite = ResultsSuite.read(results_dir)
    table = read_table(results_dir)
    if latest_only:
        table, suite.superseded = drop_superseded(table)
        table, suite.version_notes = keep_one_version(table)
    df = normalize(table, suite)
    for task in df["task"].astype(str).unique():
        suite.task(task)  # every task gets an entry, even when suite.json lacks it
    for tname, t in suite.tasks.items():
        filled = df.loc[df["task"] == tname, "primary_metric"].dropna().unique() if "primary_metric" in df else []
        if len(filled) == 1 and filled[0] in t.metrics:  # what the runs filled wins over a family-wide guess
            t.primary_metric = str(filled[0])  # (suite.json said map for segmentation tasks before task_metrics)
        if not t.primary_metric:  # no suite.json entry: first known quality metric, final_loss last
            cands = sorted(metric_columns(df[df["task"] == tname], t), key=lambda m: m == "final_loss")
            t.primary_metric = cands[0] if cands else None
        if not t.family:
            fam = df.loc[df["task"] == tname, "family"]
            t.family = str(fam.iloc[0]) if len(fam) else ""
    return df, suite


def metric_columns(df: pd.DataFrame, task: TaskInfo) -> list[str]:
    """Quality metric columns present (suite-declared first, then known names, then other numerics)."""
    out = [m for m in task.metrics if m in df.columns]
    skip = set(ID_COLUMNS) | set(COST_COLUMNS) | DESCRIPTIVE_NUMERIC | {
        "size", "sweep_dict", "size_point", "hp_point", "size_key"}
    for c in df.columns:
        if c in out or c in skip:
            continue
        if c in KNOWN_METRICS and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any():
            out.append(c)
    return out


def cost_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in COST_COLUMNS if c in df.columns and df[c].notna().any()]


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def incomplete_flops(df: pd.DataFrame) -> dict[str, list[str]]:
    """Variant -> the ops its runs ran without a FLOP formula (``flops_skipped`` entries of the counter
    behind ``flops_fwd`` / ``flops_train_step``): those counts are lower bounds, and the report says so."""
    if "flops_skipped" not in df.columns:
        return {}
    out: dict[str, set[str]] = {}
    for variant, skipped in zip(df["variant"], df["flops_skipped"]):
        ops = [s.split(":", 1)[1] for s in str(skipped or "").split(",") if s.startswith("flop_counter:")]
        if ops:
            out.setdefault(str(variant), set()).update(ops)
    return {v: sorted(ops) for v, ops in sorted(out.items())}
