"""Compare two results folders run by run: what got slower, heavier or worse?

Runs are matched by ``config_hash`` (each pair compares exactly the two rows of that run, however many
configs of one task/variant/seed a folder holds); runs without a hash match (or without a partner by
hash) fall back to ``task + variant + seed + sweep + ablation``. Each matched run is checked on:

* latency (``latency_ms_p50``): a **regression** when the new p50 exceeds the old p90 by more than
  ``latency_margin`` (5 %): the recorded p10/p90 spread is the noise band. Without a recorded p90 the
  new p50 must exceed the old p50 by ``rel_margin`` (10 %). ``train_step_ms_p50`` uses ``rel_margin``.
* memory (``peak_mem_mb_*``): new peak above old peak by more than ``memory_margin`` (5 %) and 1 MB.
* quality (the suite's metrics): worse, in the metric's direction, by more than the task's practical
  threshold (relative thresholds scaled by |old|; 1 % of |old| when the suite gives none).
* status: ``ok`` before, anything else now.

A pair measured under different conditions (``CONDITION_COLUMNS``: device, GPU, kernels that ran,
protocol, precision, measured batches, library versions, the results version of the harness code) still
gets its checks, but every row of it says
in ``conditions`` what differed, and the printout counts such pairs: a cost change there is not like for
like.

Improvements are flagged the mirror way (``improved``). Runs found on one side only are listed with
``kind == "missing"`` and are not regressions.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.load import ResultsSuite, load_results

LATENCY_COLS = ["latency_ms_p50"]
TIME_COLS = ["train_step_ms_p50"]
MEMORY_COLS = ["peak_mem_mb_infer", "peak_mem_mb_train"]

COMPARE_COLUMNS = ["pair", "task", "variant", "seed", "sweep", "ablation", "config_hash", "matched_on", "kind", "metric",
                   "old", "new", "delta", "rel_delta", "limit", "regression", "improved", "note", "conditions"]
#: what a run was measured under; rows that differ here are compared, but not like for like.
CONDITION_COLUMNS = ["device", "gpu_name", "backend", "latency_protocol", "measure_dtype", "train_precision",
                     "measure_batch", "train_step_batch", "torch_version", "cuda_version", "mamba_ssm_version",
                     "triton_version", "results_version"]


def _text(v) -> str:
    """A cell as text; missing (None, NaN) is empty."""
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _conditions(ra, rb) -> str:
    """``"col: old -> new"`` for each condition recorded on both sides with different values."""
    def value(row, col):
        v = row.get(col)
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # a batch stored as 8.0 on the side with missing values is still 8
        return _text(v) or None

    diffs = [(c, value(ra, c), value(rb, c)) for c in CONDITION_COLUMNS]
    return "; ".join(f"{c}: {a} -> {b}" for c, a, b in diffs if a is not None and b is not None and a != b)


def _key(row) -> str:
    sweep = json.dumps(row["sweep_dict"], sort_keys=True, default=str)
    return f"{row['task']}|{row['variant']}|{row['seed']}|{sweep}|{row['ablation']}"


def _dedupe(df: pd.DataFrame, col: str) -> pd.DataFrame:
    if "started_at" in df.columns:
        df = df.sort_values("started_at", kind="mergesort")
    return df.drop_duplicates(col, keep="last")


def _match(a: pd.DataFrame, b: pd.DataFrame):
    """``(how, old row, new row)`` pairs, and the rows found on one side only.

    Rows with one config_hash are one run: each such pair compares exactly those two rows (a folder may
    hold several configs of one task/variant/seed, e.g. a rerun with other train.steps). Keys touched by
    a hash pair are done; the other rows pair by key, the latest run of each key on each side.
    """
    a = a.copy()
    b = b.copy()
    a["_key"] = [_key(r) for _, r in a.iterrows()]
    b["_key"] = [_key(r) for _, r in b.iterrows()]
    has_a = a["config_hash"].notna() & (a["config_hash"].astype(str) != "")
    has_b = b["config_hash"].notna() & (b["config_hash"].astype(str) != "")
    ah = _dedupe(a[has_a], "config_hash").set_index("config_hash", drop=False)
    bh = _dedupe(b[has_b], "config_hash").set_index("config_hash", drop=False)
    hashes = [h for h in ah.index if h in bh.index]
    pairs = [("config_hash", ah.loc[h], bh.loc[h]) for h in hashes]
    used_a, used_b = set(ah.loc[hashes, "_key"]), set(bh.loc[hashes, "_key"])
    ra = _dedupe(a[~a["_key"].isin(used_a)], "_key").set_index("_key")
    rb = _dedupe(b[~b["_key"].isin(used_b)], "_key").set_index("_key")
    common = sorted(set(ra.index) & set(rb.index))
    pairs += [("task+variant+seed+sweep", ra.loc[k], rb.loc[k]) for k in common]
    only_a = [ra.loc[k] for k in sorted(set(ra.index) - set(common))]
    only_b = [rb.loc[k] for k in sorted(set(rb.index) - set(common))]
    return pairs, only_a, only_b


def _num(row, col) -> float:
    try:
        v = float(row.get(col, np.nan))
    except (TypeError, ValueError):
        return np.nan
    return v


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, suite: ResultsSuite, metrics: list[str] | None = None,
                   latency_margin: float = 0.05, memory_margin: float = 0.05, rel_margin: float = 0.10
                   ) -> pd.DataFrame:
    """:func:`compare_dirs` on normalised frames (``a`` = old/baseline, ``b`` = new)."""
    pairs, only_a, only_b = _match(a, b)
    out = []

    def add_row(ra, how, kind, metric, old, new, limit, reg, imp, note="", conditions="", pair=-1):
        delta = new - old if np.isfinite(old) and np.isfinite(new) else np.nan
        rel = delta / abs(old) if np.isfinite(delta) and old != 0 else np.nan
        out.append(dict(pair=pair, task=ra["task"], variant=ra["variant"], seed=ra["seed"], sweep=ra["sweep"],
                        ablation=ra["ablation"], config_hash=_text(ra.get("config_hash")), matched_on=how,
                        kind=kind, metric=metric, old=old, new=new,
                        delta=delta, rel_delta=rel, limit=limit, regression=bool(reg), improved=bool(imp),
                        note=note, conditions=conditions))

    def want(m):
        return metrics is None or m in metrics

    for pair, (how, ra, rb) in enumerate(pairs):
        add = functools.partial(add_row, conditions=_conditions(ra, rb), pair=pair)
        if want("status") and ra["status"] == "ok" and rb["status"] != "ok":
            add(ra, how, "status", "status", np.nan, np.nan, np.nan, True, False,
                f"ok -> {rb['status']}: {str(rb.get('error', '') or '')[:120]}")
            continue
        if ra["status"] != "ok" and rb["status"] == "ok" and want("status"):
            add(ra, how, "status", "status", np.nan, np.nan, np.nan, False, True, f"{ra['status']} -> ok")
        if ra["status"] != "ok" or rb["status"] != "ok":
            continue
        for c in LATENCY_COLS:
            if not want(c):
                continue
            old, new = _num(ra, c), _num(rb, c)
            if not (np.isfinite(old) and np.isfinite(new)):
                continue
            p90, p10 = _num(ra, c.replace("p50", "p90")), _num(ra, c.replace("p50", "p10"))
            if np.isfinite(p90):
                limit, note = p90 * (1 + latency_margin), f"old p90 {p90:.4g} ms + {latency_margin:.0%}"
            else:
                limit, note = old * (1 + rel_margin), f"old p50 + {rel_margin:.0%} (no p90 recorded)"
            low = p10 * (1 - latency_margin) if np.isfinite(p10) else old * (1 - rel_margin)
            add(ra, how, "latency", c, old, new, limit, new > limit, new < low, note)
        for c in TIME_COLS:
            if want(c):
                old, new = _num(ra, c), _num(rb, c)
                if np.isfinite(old) and np.isfinite(new):
                    add(ra, how, "latency", c, old, new, old * (1 + rel_margin), new > old * (1 + rel_margin),
                        new < old * (1 - rel_margin), f"old + {rel_margin:.0%}")
        for c in MEMORY_COLS:
            if want(c):
                old, new = _num(ra, c), _num(rb, c)
                if np.isfinite(old) and np.isfinite(new):
                    limit = max(old * (1 + memory_margin), old + 1.0)
                    add(ra, how, "memory", c, old, new, limit, new > limit,
                        new < min(old * (1 - memory_margin), old - 1.0), f"old + {memory_margin:.0%}")
        t = suite.task(str(ra["task"]))
        qmetrics = list(t.metrics) or ([t.primary_metric] if t.primary_metric else [])
        if metrics is not None:
            qmetrics = [m for m in metrics if m not in LATENCY_COLS + TIME_COLS + MEMORY_COLS + ["status"]]
        for m in qmetrics:
            old, new = _num(ra, m), _num(rb, m)
            if not (np.isfinite(old) and np.isfinite(new)):
                continue
            thr = t.threshold(m, old)
            if not thr > 0:
                thr = 0.01 * abs(old)
            hib = t.metric(m).higher_is_better
            worse = (old - new) if hib else (new - old)
            limit = old - thr if hib else old + thr
            add(ra, how, "quality", m, old, new, limit, worse > thr, worse < -thr,
                f"threshold {thr:.4g} ({'higher' if hib else 'lower'} is better)")
    for r in only_a:
        add_row(r, "", "missing", "", np.nan, np.nan, np.nan, False, False, "only in A (baseline)")
    for r in only_b:
        add_row(r, "", "missing", "", np.nan, np.nan, np.nan, False, False, "only in B (new)")
    return pd.DataFrame(out, columns=COMPARE_COLUMNS)


def compare_dirs(a: str | Path, b: str | Path, metrics: list[str] | None = None, **margins) -> pd.DataFrame:
    """Compare results folder ``b`` (new) against ``a`` (baseline); one row per run x checked metric.

    ``metrics`` restricts the checks (names of columns, or ``"status"``); default: latency, train step
    time, peak memory, status, and every quality metric the suite declares. See the module docstring
    for the noise rules. Columns: ``COMPARE_COLUMNS`` (``regression`` and ``improved`` are booleans;
    ``pair`` numbers the matched runs, -1 on rows found on one side only).
    """
    da, sa = load_results(a, latest_only=False)  # every stored config: pairs are made by config_hash
    db, sb = load_results(b, latest_only=False)
    for name, t in sa.tasks.items():
        if name not in sb.tasks or not sb.tasks[name].metrics:
            sb.tasks[name] = t
    return compare_frames(da, db, sb, metrics=metrics, **margins)


def print_comparison(res: pd.DataFrame, console=None, show_all: bool = False) -> int:
    """Print a rich table of regressions (and improvements); returns the number of regressions."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    n_reg = int(res["regression"].sum()) if len(res) else 0
    n_imp = int(res["improved"].sum()) if len(res) else 0
    n_runs = res.loc[res["kind"] != "missing", "pair"].nunique()
    shown = res if show_all else res[res["regression"] | res["improved"]]
    # two configs of one task/variant/seed/sweep (a rerun with other settings) are told apart by hash
    keys = res.loc[res["kind"] != "missing", ["task", "variant", "seed", "sweep", "ablation"]].drop_duplicates()
    by_config = n_runs > len(keys)
    if len(shown):
        tab = Table(title="compare: regressions and improvements", show_lines=False)
        for c in ["task", "variant", "seed", "sweep"] + ["config"] * by_config + ["metric", "old", "new", "change",
                                                                                    "limit", "verdict"]:
            tab.add_column(c, overflow="fold")
        shown = shown.sort_values(["regression", "task", "variant"], ascending=[False, True, True])
        for r in shown.itertuples():
            change = f"{r.rel_delta:+.1%}" if np.isfinite(r.rel_delta) else r.note
            verdict = "[red]REGRESSION[/red]" if r.regression else ("[green]improved[/green]" if r.improved else "")
            tab.add_row(str(r.task), str(r.variant), str(r.seed), str(r.sweep if r.sweep != "{}" else ""),
                        *[r.config_hash[:8]] * by_config, str(r.metric), _f(r.old), _f(r.new), change, _f(r.limit), verdict)
        console.print(tab)
    unlike = res.loc[res["conditions"].astype(bool) & (res["kind"] != "missing"), "pair"].nunique()
    if unlike:
        what = sorted({part.split(":")[0] for text in res["conditions"] if text for part in text.split("; ")})
        console.print(f"[yellow]{unlike} matched runs were measured under different conditions "
                      f"({', '.join(what)}): their changes are not like for like (column 'conditions')[/yellow]")
    missing = res[res["kind"] == "missing"]
    console.print(f"{n_runs} matched runs, [red]{n_reg} regressions[/red], [green]{n_imp} improvements[/green]"
                  + (f", {len(missing)} runs on one side only" if len(missing) else ""))
    return n_reg


def _f(x) -> str:
    try:
        return "" if not np.isfinite(x) else f"{x:.4g}"
    except TypeError:
        return str(x)
