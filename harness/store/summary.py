"""Terminal tables for ``harness run`` / ``harness show``: one line per task x variant (x sweep point)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

# (column, header, scale, format)
COST_COLUMNS = [
    ("params", "params", 1.0, "{:,.0f}"),
    ("flops_fwd", "GFLOP fwd", 1e-9, "{:.3g}"),
    ("latency_ms_p50", "latency ms p50", 1.0, "{:.3g}"),
    ("peak_mem_mb_train", "train MB", 1.0, "{:.3g}"),
]


def _metric_columns(df: pd.DataFrame) -> list[str]:
    """Family metric columns present in the table (known quality names first)."""
    known = ["accuracy", "top1", "top5", "map", "miou", "psnr", "ssim", "rel_l2", "rel_l2_2x", "nll_bits_per_token", "test_acc", "gen_gap"]
    return [c for c in known if c in df.columns and df[c].notna().any()]


def _mean(frame: pd.DataFrame, column: str, scale: float, pattern: str) -> str:
    vals = frame[column].dropna() if column in frame else pd.Series(dtype=float)
    return "-" if vals.empty else pattern.format(float(vals.mean()) * scale)


def print_summary(console: Console, df: pd.DataFrame) -> None:
    if df.empty:
        console.print("no results")
        return
    metrics = _metric_columns(df)
    keys = ["task", "sweep", "variant"]
    table = Table(title=f"{df['suite'].iloc[0]}: mean over seeds", header_style="bold")
    for col in ["task", "sweep", "variant", "backend", "runs", "status", *metrics, *(header for _, header, _, _ in COST_COLUMNS)]:
        table.add_column(col, overflow="fold")
    for (task, sweep, variant), g in df.groupby(keys, sort=False):
        ok = g[g["status"] == "ok"]
        statuses = ", ".join(f"{s}:{n}" for s, n in g["status"].value_counts().items())
        cells = [task, "" if sweep == "{}" else sweep, variant, str(ok["backend"].iloc[0]) if len(ok) and "backend" in ok else "-", str(len(g)), statuses]
        for m in metrics:
            vals = ok[m].dropna()
            cells.append("-" if vals.empty else f"{vals.mean():.4g}" + (f" ± {vals.std():.2g}" if len(vals) > 1 else ""))
        cells.extend(_mean(ok, col, scale, pattern) for col, _, scale, pattern in COST_COLUMNS)
        table.add_row(*cells)
    console.print(table)


def print_runs(console: Console, df: pd.DataFrame) -> None:
    cols = [c for c in ["task", "variant", "seed", "sweep", "status", *_metric_columns(df), "params", "latency_ms_p50", "backend", "error"] if c in df.columns]
    console.print(df[cols].to_string(index=False), highlight=False)
