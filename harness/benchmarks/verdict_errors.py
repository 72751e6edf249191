"""Error rates, power and seeds used of the verdict's threshold decisions under sequential seeds, by simulation.

    python -m harness.benchmarks.verdict_errors [--sims 20000] [--out baselines/cpu/verdict_errors]

One simulated *cell* has m no-SSM variants (m = 1, 2, 3 comparisons under Holm's correction). Each
comparison's per-seed differences (SSM advantage) are i.i.d. with mean ``mu`` and unit SD, normal or
bimodal (two modes at +-0.95, SD 0.31 each); comparisons are independent (positively dependent ones,
as a shared SSM side makes them, give Holm a lower family-wise error). The threshold is 0.5 SD.
The cell runs as ``harness run --until-decided`` does: the planned n0 = 3 seeds, then ``seed_batch``
more seeds for every undecided comparison per look, up to ``max_seeds``, stopping when the cell is
decided (every comparison "better", or any "within"). Decisions are those of
:mod:`harness.report.sequential`: one-sided signed-rank tests at the threshold, sequential p-values over
the design's looks, Holm per family ("better", "within"). Two contrasts: ``method = naive`` tests the
last look as if its n had been fixed (what adding seeds until it looks decided does without the
correction); ``method = t`` uses one-sided t-tests with the same sequential construction (its null
simulated under normal differences), which the bimodal rows show is not enough.

Truths: ``mu = 0`` (no advantage: any "better" is wrong), ``mu = thr`` (exactly at the threshold: any
"better" and any "within" is wrong), planted ``mu = thr + 1`` ("SSM needed" is right: power) and planted
``mu = thr - 1`` ("SSM not needed" is right: power). For the planted effects the table also gives the
smallest fixed number of seeds whose power (same tests, one look) reaches the sequential design's.

Writes ``verdict_errors.csv`` and ``README.md`` (summary, command, wall time) into ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.report.sequential import SequentialDesign, look_pvalues, sequential_p
from harness.report.stats import ALPHA

THR = 0.5
N0 = 3
DESIGNS = [(1, 6), (2, 10), (4, 20)]          # (seed_batch, max_seeds), after n0 = 3 planned seeds
TRUTHS = {"no advantage": 0.0, "at threshold": THR, "planted: SSM better": THR + 1.0,
          "planted: within": THR - 1.0}
BIMODAL_MODE = 0.95
SEED = 20250611


def draw(dist: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-variance, mean-0 seed noise: ``normal`` or ``bimodal`` (an equal mix of N(+-0.95, 0.31^2))."""
    z = rng.standard_normal(shape)
    if dist == "normal":
        return z
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return sign * BIMODAL_MODE + np.sqrt(1 - BIMODAL_MODE ** 2) * z


def t_pvalues(d: np.ndarray, schedule: tuple[int, ...], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided t p-values ``(above, below)`` at each look: the contrast method (valid for normal differences)."""
    looks = np.asarray(schedule)
    x = d[..., : looks[-1]] - margin
    s1 = np.cumsum(x, axis=-1)[..., looks - 1]
    s2 = np.cumsum(x * x, axis=-1)[..., looks - 1]
    mean = s1 / looks
    sd = np.sqrt(np.maximum(s2 - looks * mean ** 2, 0.0) / (looks - 1))
    t = mean / (sd / np.sqrt(looks))
    return sps.t.sf(t, looks - 1), sps.t.cdf(t, looks - 1)


@functools.lru_cache(maxsize=None)
def t_null(schedule: tuple[int, ...]) -> np.ndarray:
    """Sorted min-over-looks one-sided t p-values under normal differences at the margin (the contrast's null)."""
    z = np.random.default_rng(SEED).standard_normal((100_000, schedule[-1]))
    return np.sort(t_pvalues(z, schedule, 0.0)[0].min(axis=-1))


def holm_rows(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis (vectorised :func:`harness.report.paired.holm`)."""
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="mergesort")
    ps = np.take_along_axis(p, order, axis=-1)
    adj = np.minimum(1.0, np.maximum.accumulate(ps * (m - np.arange(m)), axis=-1))
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return out


def run_cell(d: np.ndarray, schedule: tuple[int, ...], method: str, alpha: float = ALPHA) -> dict[str, np.ndarray]:
    """Run simulated cells ``d`` (sims x m x max_seeds) through the looks of ``schedule`` with the loop's
    stopping rule; returns per-sim, per-comparison ``better``, ``within`` and ``n`` (seeds used).

    ``method``: ``sequential`` (what the report does), ``naive`` (its per-look p at the last look, as if
    n had been fixed) or ``t`` (one-sided t-tests with the same sequential construction under normality)."""
    sims, m, _ = d.shape
    pa, pb = t_pvalues(d, schedule, THR) if method == "t" else look_pvalues(d, schedule, THR)
    null = t_null(schedule) if method == "t" and len(schedule) > 1 else None
    active = np.ones((sims, m), dtype=bool)
    min_a, min_b = np.ones((sims, m)), np.ones((sims, m))
    n = np.full((sims, m), schedule[0])
    better = within = np.zeros((sims, m), dtype=bool)
    for k, look in enumerate(schedule):
        if method == "naive":
            min_a, min_b = np.where(active, pa[..., k], min_a), np.where(active, pb[..., k], min_b)
            seq_a, seq_b = min_a, min_b
        else:
            min_a = np.where(active, np.minimum(min_a, pa[..., k]), min_a)
            min_b = np.where(active, np.minimum(min_b, pb[..., k]), min_b)
            if null is not None:
                seq_a, seq_b = [(1 + np.searchsorted(null, x, side="right")) / (1 + len(null)) for x in (min_a, min_b)]
            else:
                seq_a, seq_b = sequential_p(min_a, schedule), sequential_p(min_b, schedule)
        n = np.where(active, look, n)
        better, within = holm_rows(seq_a) < alpha, holm_rows(seq_b) < alpha
        cell_decided = better.all(axis=1) | within.any(axis=1)
        active = active & ~(better | within) & ~cell_decided[:, None]
        if not active.any():
            break
    return {"better": better, "within": within, "n": n}


def _rate(x: np.ndarray) -> tuple[float, float]:
    p = float(x.mean())
    return p, float(np.sqrt(p * (1 - p) / len(x)))


def fixed_power(dist: str, m: int, mu: float, want: float, sims: int, rng: np.random.Generator,
                n_max: int = 60) -> tuple[int | None, float]:
    """Smallest fixed n (one look) whose power reaches ``want``, and that power (None past ``n_max``)."""
    right = "better" if mu > THR else "within"
    for n in range(2, n_max + 1):
        res = run_cell(mu + draw(dist, (sims, m, n), rng), (n,), "sequential")
        power = float((res["better"].all(axis=1) if right == "better" else res["within"].any(axis=1)).mean())
        if power >= want:
            return n, power
    return None, np.nan


def simulate(sims: int, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for batch, max_seeds in DESIGNS:
        schedule = SequentialDesign(max_seeds, batch).schedule((N0,))
        for dist in ("normal", "bimodal"):
            for m in (1, 2, 3):
                for truth, mu in TRUTHS.items():
                    d = mu + draw(dist, (sims, m, max_seeds), rng)
                    for method in ("sequential", "naive", "t"):
                        if method != "sequential" and truth.startswith("planted"):
                            continue
                        res = run_cell(d, schedule, method)
                        wb, wb_se = _rate(res["better"].any(axis=1)) if mu <= THR else (np.nan, np.nan)
                        ww, ww_se = _rate(res["within"].any(axis=1)) if mu >= THR else (np.nan, np.nan)
                        row = dict(seed_batch=batch, max_seeds=max_seeds, looks=len(schedule), dist=dist, m=m,
                                   truth=truth, mu=mu, threshold=THR, method=method, sims=sims,
                                   wrong_better=wb, wrong_better_se=wb_se, wrong_within=ww, wrong_within_se=ww_se,
                                   mean_seeds=float(res["n"].mean()))
                        for k in ("better", "within"):
                            se = row[f"wrong_{k}_se"]
                            row[f"wrong_{k}_ok"] = bool(row[f"wrong_{k}"] <= ALPHA + 2 * se) if np.isfinite(se) else None
                        if truth.startswith("planted"):
                            ok = res["better"].all(axis=1) if mu > THR else res["within"].any(axis=1)
                            row["power"], row["power_se"] = _rate(ok)
                            row["fixed_n_same_power"], row["fixed_power"] = fixed_power(
                                dist, m, mu, row["power"], sims, rng)
                        rows.append(row)
    return pd.DataFrame(rows)


def _pm(x: float, se: float) -> str:
    return f"{x:.4f} ± {se:.4f}" if np.isfinite(x) else ""


def summary_markdown(df: pd.DataFrame, command: str, wall_s: float) -> str:
    seq = df[df["method"] == "sequential"]
    errors = seq[~seq["truth"].str.startswith("planted")]
    largest = errors[errors["max_seeds"] == errors["max_seeds"].max()]
    over = errors[(errors["wrong_better_ok"] == False) | (errors["wrong_within_ok"] == False)]  # noqa: E712
    over_largest = over[over["max_seeds"] == largest["max_seeds"].iloc[0]]
    worst_b = errors.loc[errors["wrong_better"].idxmax()]
    worst_w = errors.loc[errors["wrong_within"].idxmax()]
    other = {m: df[df["method"] == m] for m in ("naive", "t")}
    lines = [
        "# Verdict decisions: error rates under sequential seeds (simulation)",
        "",
        f"Command: `{command}` — wall time {wall_s:.0f} s on 2 CPU cores; {int(df['sims'].iloc[0])} simulated "
        f"cells per setting; n0 = {N0} planned seeds, threshold {THR} SD, alpha 0.05. The model is in the "
        "docstring of `harness/benchmarks/verdict_errors.py`; `verdict_errors.csv` holds every number.",
        "",
        "## Wrong decisions (bound: 0.05 + 2 Monte-Carlo SE)",
        "",
        f"- Worst rate of wrongly declaring **better**: {_pm(worst_b['wrong_better'], worst_b['wrong_better_se'])} "
        f"({worst_b['dist']}, m={worst_b['m']}, {worst_b['truth']}, max_seeds={worst_b['max_seeds']}).",
        f"- Worst rate of wrongly declaring **within**: {_pm(worst_w['wrong_within'], worst_w['wrong_within_se'])} "
        f"({worst_w['dist']}, m={worst_w['m']}, max_seeds={worst_w['max_seeds']}).",
        f"- Settings over the bound: {len(over)} of {len(errors)}; at the largest max_seeds "
        f"({int(largest['max_seeds'].iloc[0])}): {len(over_largest)} of {len(largest)}.",
        f"- naive (the last look tested as if n had been fixed): up to "
        f"{np.nanmax(other['naive'][['wrong_better', 'wrong_within']].to_numpy()):.4f}.",
        f"- t (one-sided t-tests, same sequential construction, valid for normal differences): up to "
        f"{np.nanmax(other['t'][other['t']['dist'] == 'normal'][['wrong_better', 'wrong_within']].to_numpy()):.4f} "
        f"with normal, {np.nanmax(other['t'][other['t']['dist'] == 'bimodal'][['wrong_better', 'wrong_within']].to_numpy()):.4f} "
        "with bimodal differences (why the report uses the signed-rank test).",
        "",
        "| max_seeds | dist | m | truth | wrong better | wrong within | naive: better | naive: within | t: better | t: within | mean seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in errors.itertuples():
        cells = []
        for m in ("naive", "t"):
            o = other[m]
            o = o[(o["max_seeds"] == r.max_seeds) & (o["dist"] == r.dist) & (o["m"] == r.m) & (o["truth"] == r.truth)].iloc[0]
            cells += [_pm(o["wrong_better"], o["wrong_better_se"]), _pm(o["wrong_within"], o["wrong_within_se"])]
        lines.append(f"| {r.max_seeds} | {r.dist} | {r.m} | {r.truth} | {_pm(r.wrong_better, r.wrong_better_se)} | "
                     f"{_pm(r.wrong_within, r.wrong_within_se)} | {' | '.join(cells)} | {r.mean_seeds:.2f} |")
    lines += ["", "## Planted effects: power and seeds used against a fixed number of seeds", "",
              "Effect 1 SD beyond the threshold (better: mu = thr + 1, right answer \"SSM needed\" = every "
              "comparison better; within: mu = thr - 1, right answer \"SSM not needed\"). `fixed n` is the "
              "smallest fixed seed count whose power (same tests, one look) reaches the sequential design's.", "",
              "| max_seeds | dist | m | truth | power | mean seeds used | fixed n, same power | its power |",
              "|---|---|---|---|---|---|---|---|"]
    for r in seq[seq["truth"].str.startswith("planted")].itertuples():
        fixed = "" if pd.isna(r.fixed_n_same_power) else f"{int(r.fixed_n_same_power)}"
        lines.append(f"| {r.max_seeds} | {r.dist} | {r.m} | {r.truth} | {r.power:.3f} ± {r.power_se:.3f} | "
                     f"{r.mean_seeds:.2f} | {fixed} | {r.fixed_power:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=20_000, help="simulated cells per setting (>= 10000 for the baseline)")
    ap.add_argument("--out", type=Path, default=Path("baselines/cpu/verdict_errors"))
    args = ap.parse_args(argv)
    start = time.perf_counter()
    df = simulate(args.sims)
    wall = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "verdict_errors.csv", index=False, float_format="%.5g")
    command = f"python -m harness.benchmarks.verdict_errors --sims {args.sims}"
    (args.out / "README.md").write_text(summary_markdown(df, command, wall))
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
