"""Terminal tables for ``harness run`` / ``harness show``: one line per task x variant (x sweep point)."""

from __future__ import annotations

import json
import math

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# (column, header) — shown as the mean over the finished runs
COSTS = [("params", "params"), ("flops_fwd", "FLOPs fwd"), ("latency_ms_p50", "fwd ms p50"), ("peak_mem_mb_train", "train MB")]


def si(value: float) -> str:
    """Compact engineering notation: 2.83k, 1.2M, 4.5G."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _quality(ok: pd.DataFrame) -> str:
    """'metric mean ± std' of the group's primary metric (the family's, recorded per row)."""
    names = ok["primary_metric"].dropna().unique() if "primary_metric" in ok else []
    if len(names) == 0 or not names[0] or names[0] not in ok:
        return "-"
    vals = ok[names[0]].dropna()
    if vals.empty:
        return "-"
    return f"{names[0]} {vals.mean():.4g}" + (f" ± {vals.std():.2g}" if len(vals) > 1 else "")


def _sweep_label(sweep: str) -> str:
    point = json.loads(sweep) if isinstance(sweep, str) and sweep else {}
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())


def print_summary(console: Console, df: pd.DataFrame) -> None:
    if df.empty:
        console.print("no results")
        return
    has_sweep = "sweep" in df and (df["sweep"] != "{}").any()
    table = Table(title=f"{df['suite'].iloc[0]}: mean ± std over seeds (finished runs)", header_style="bold")
    headers = ["task", *(["sweep"] if has_sweep else []), "variant", "status", "quality (primary metric)", *(h for _, h in COSTS), "backend"]
    for header in headers:
        table.add_column(header, no_wrap=header in ("task", "variant"))
    for (task, sweep, variant), g in df.groupby(["task", "sweep", "variant"], sort=False):
        ok = g[g["status"] == "ok"]
        cells = [task, *([_sweep_label(sweep)] if has_sweep else []), variant]
        cells.append(" ".join(f"{s}×{n}" for s, n in g["status"].value_counts().items()))
        cells.append(_quality(ok))
        for column, _ in COSTS:
            vals = ok[column].dropna() if column in ok else pd.Series(dtype=float)
            cells.append(si(float(vals.mean())) if len(vals) else "-")
        cells.append(str(ok["backend"].iloc[0]) if len(ok) and "backend" in ok else "-")
        table.add_row(*map(escape, cells))  # names and backends are data, not markup
    console.print(table)


def print_runs(console: Console, df: pd.DataFrame) -> None:
    metrics = [m for m in df.get("primary_metric", pd.Series(dtype=str)).dropna().unique() if m in df.columns]
    cols = [c for c in ["task", "variant", "seed", "sweep", "status", *metrics, "params", "latency_ms_p50", "backend", "error"] if c in df.columns]
    console.print(df[cols].to_string(index=False), highlight=False, markup=False)  # errors hold [brackets]


# What to do about runs that ended in a failing status (``harness run`` prints it and exits 1).
FAILURE_HINTS = {
    "error": "the error column (harness show DIR --runs) and logs/<config_hash>.log say why; once the cause is fixed, "
             "rerun with --retry-failed (a plain rerun keeps stored rows)",
    "oom": "rerun with --retry-failed on a larger device or with a smaller batch",
    "diverged": "they are results (a plain rerun keeps them); --no-resume --only TASK/VARIANT reruns them",
}


def failure_lines(rows: pd.DataFrame, statuses: tuple[str, ...], resumed: set[str]) -> list[str]:
    """One line per status in ``statuses`` that some of ``rows`` (a suite run's rows) ended with: how many,
    how many of them were resumed from an earlier ``harness run`` rather than run now, and what to do."""
    lines = []
    for status in statuses:
        hit = rows[rows["status"] == status] if "status" in rows else rows.iloc[:0]
        if hit.empty:
            continue
        kept = int(hit["config_hash"].isin(resumed).sum())
        note = f" ({kept} of them resumed: stored by an earlier run and not rerun)" if kept else ""
        lines.append(f"{len(hit)} run{'s' if len(hit) > 1 else ''} ended {status}{note}: {FAILURE_HINTS[status]}")
    return lines
