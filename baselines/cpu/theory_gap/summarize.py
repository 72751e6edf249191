"""Gap vs T per s_A from theory results, as markdown tables.

    python baselines/cpu/theory_gap/summarize.py RESULTS [RESULTS ...]   # a results folder, .parquet or .csv
    python baselines/cpu/theory_gap/summarize.py --compact RESULTS [RESULTS ...]

One row per (s_A, T): mean ± sd over the finished seeds of gen_gap (train - test accuracy), train and
test accuracy, and how many seeds finished ok / diverged. Then, per s_A, the OLS slope of gen_gap
against log2 T over the finished runs (the change of the gap per doubling of T) with its 95% CI.
``--compact``: one row per (results, s_A), the mean gap at each T ("div": every seed diverged), and the
slope; the results are named by their file or folder name, so several stages read as one table.
Written by hand because the report groups by variant and reads the primary metric, while this table
reads gen_gap against two sweep keys at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def _mean_sd(values: pd.Series, sign: str = "") -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():{sign}.3f} ± {sd:.3f}"


def load(path: str) -> pd.DataFrame:
    p = Path(path)
    df = pd.read_csv(p) if p.suffix == ".csv" else pd.read_parquet(p / "results.parquet" if p.is_dir() else p)
    df = df.rename(columns={"sweep.model.s_A": "s_A_sweep", "sweep.data.seq_len": "T"})
    if "s_A_sweep" not in df:  # a task that fixes s_A instead of sweeping it
        df["s_A_sweep"] = df["s_A_init"]
    return df


def table(df: pd.DataFrame) -> str:
    lines = ["| s_A | T | gap (train - test) | train acc | test acc | ok | diverged |", "|---|---|---|---|---|---|---|"]
    for (s_A, T), g in df.groupby(["s_A_sweep", "T"], sort=True):
        ok = g[g.status == "ok"]
        lines.append(
            f"| {s_A:+.2f} | {int(T)} | {_mean_sd(ok.gen_gap, '+')} | {_mean_sd(ok.train_acc)} | {_mean_sd(ok.test_acc)} "
            f"| {len(ok)} | {int((g.status == 'diverged').sum())} |"
        )
    return "\n".join(lines)


def slopes(df: pd.DataFrame) -> str:
    lines = ["| s_A | gap slope per doubling of T (95% CI) | finished runs | diverged / all |", "|---|---|---|---|"]
    for s_A, g in df.groupby("s_A_sweep", sort=True):
        ok = g[g.status == "ok"]
        diverged = f"{int((g.status == 'diverged').sum())} / {len(g)}"
        lines.append(f"| {s_A:+.2f} | {_slope(ok)} | {len(ok)} | {diverged} |")
    return "\n".join(lines)


def _slope(ok: pd.DataFrame) -> str:
    if ok["T"].nunique() < 2 or len(ok) < 3:
        return "-"
    fit = stats.linregress(np.log2(ok["T"].astype(float)), ok.gen_gap)
    half = stats.t.ppf(0.975, len(ok) - 2) * fit.stderr
    return f"{fit.slope:+.4f} [{fit.slope - half:+.4f}, {fit.slope + half:+.4f}]"


def compact(frames: dict[str, pd.DataFrame]) -> str:
    Ts = sorted({int(t) for df in frames.values() for t in df["T"].dropna()})
    head = "| results | s_A | " + " | ".join(f"T={t}" for t in Ts) + " | slope per doubling (95% CI) | diverged / all |"
    lines = [head, "|" + "---|" * (len(Ts) + 4)]
    for name, df in frames.items():
        for s_A, g in df.groupby("s_A_sweep", sort=True):
            ok = g[g.status == "ok"]
            cells = []
            for t in Ts:
                at = g[g["T"] == t]
                cells.append("" if at.empty else "div" if ok[ok["T"] == t].empty else f"{ok[ok['T'] == t].gen_gap.mean():+.3f}")
            diverged = f"{int((g.status == 'diverged').sum())} / {len(g)}"
            lines.append(f"| {name} | {s_A:+.2f} | " + " | ".join(cells) + f" | {_slope(ok)} | {diverged} |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--compact":
        print(compact({Path(p).stem: load(p) for p in args[1:]}))
    else:
        frame = pd.concat([load(p) for p in args], ignore_index=True)
        print(table(frame), "", slopes(frame), sep="\n")
