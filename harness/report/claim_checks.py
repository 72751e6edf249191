"""Each check kind of a claim (``expect:``) as two p-values: that the claim holds, and that it fails.

Every check returns a :class:`CheckResult` with ``p_repro`` (small when the data show the claim holds) and
``p_contra`` (small when they show it fails), made from the same tests as the verdict
(:mod:`harness.report.sequential`: one-sided signed-rank tests per seed, adjusted for the looks of
``--until-decided``), so the two outcomes carry the same error control. :mod:`harness.report.claims`
Holm-corrects each over the report's claims.

Which runs: the claim's variant label (a factor-labelled variant such as ``ssm[s_A=0.1]`` answers to
``ssm``; an ablation's base run in another task is found through the ablation rows), the sweep points its
``where:`` names, finished runs for metrics (every status but ``error`` for ``status``). What is left
splits into *cells*: one per size point and studied-factor value the claim does not pin (the swept key
``over`` aside). Hyper-parameter keys it does not pin are tuned as in the verdict: each variant (and each
point of ``over``) at its best grid point by the task's primary metric. A claim must hold in every cell:
``p_repro`` is the largest over the cells (intersection-union) and ``p_contra`` the smallest times the
number of cells (Bonferroni: it fails if it fails anywhere).

* ``compare``: per seed, ``a = better - worse`` oriented by the metric's direction; ``p_repro`` of
  ``mean a > margin``, ``p_contra`` of ``mean a < margin`` (``better`` is not ahead by the margin).
* ``trend``: per seed, the least-squares slope of the metric over ``log2(over)`` (``scale: log2``, the
  default: per doubling) or ``over`` (``linear``). ``increasing``: slope above ``+tolerance`` (fails: below
  it); ``decreasing``: below ``-tolerance`` (fails: above it); ``flat``: within ``±tolerance`` by two
  one-sided tests, the larger p (fails: outside, the smaller one-sided p times 2).
* ``scaling``: per seed, the slope of ``log metric`` on ``log over``; within ``[LO, HI]`` as ``flat``.
  When only one seed measured the metric (``measure.latency_seeds``), the slope of that one series over
  its points, tested with the regression's t (``OLS t``: assumes independent normal residuals).
* ``status``: a seed shows the status when every run of it in the cell does. ``fraction: 1``: reproduced
  when every seed shows it and so many do that "more than half" passes the exact binomial test (2^-n);
  contradicted by any seed that does not (certain for "every seed"). ``fraction: f < 1``: exact binomial
  tests of "more than f of seeds" on both sides.
* ``verdict``: the verdict rule applied to the task's runs alone (at ``at:`` when given), its comparisons
  Holm-corrected among themselves only; ``p_repro`` is the smallest level at which that verdict is the
  claimed one, ``p_contra`` the smallest at which it is the other.
* ``any_of``: reproduced when some alternative is (the smallest ``p_repro`` times the number of
  alternatives), contradicted when every one is (the largest ``p_contra``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from harness.config.claims import Check, same_value
from harness.report.ablations import base_rows
from harness.report.load import ResultsSuite, TaskInfo
from harness.report.paired import paired_threshold_test, per_seed, size_label
from harness.report.sequential import (SequentialDesign, proportion_advice, proportion_test, seeds_advice,
                                       threshold_test)
from harness.report.stats import ALPHA, ols_fit, ols_slope, ols_slope_pvalues, per_seed_slopes
from harness.report.verdict import NEEDED, NOT_NEEDED, gather_evidence, open_items, task_verdicts


@dataclass
class CheckResult:
    """One check's evidence. ``estimate`` is in the check's units (an advantage, a slope, an exponent, a share
    of seeds); ``ci_*`` its descriptive 95 % interval; ``advice`` what would decide it; ``open`` the
    ``(size_point, variant labels)`` that more seeds would go to (empty when seeds will not help)."""

    p_repro: float
    p_contra: float
    estimate: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    test: str = ""
    n: int = 0
    evidence: str = ""
    advice: str = ""
    seeds_needed: int | None = None
    open: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self):
        self.p_repro = 1.0 if not np.isfinite(self.p_repro) else float(self.p_repro)
        self.p_contra = 1.0 if not np.isfinite(self.p_contra) else float(self.p_contra)


@dataclass
class Context:
    """What every check reads: the normalised results, the suite, the task and the claim's metric directions."""

    df: pd.DataFrame
    suite: ResultsSuite
    task: TaskInfo
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # suite.json: how each named metric reads
    design: SequentialDesign | None = None
    level: float = ALPHA  # the level advice is computed for (the claims' first Holm step)

    def metric(self, name: str | None) -> str | None:
        return name or self.task.primary_metric

    def higher_is_better(self, name: str) -> bool:
        stored = self.metrics.get(name, {})
        return bool(stored["higher_is_better"]) if "higher_is_better" in stored else self.task.metric(name).higher_is_better


def _plus(x: float) -> str:
    """A signed number to 3 digits (n/a when missing)."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.3g}"


def variant_rows(ctx: Context, label: str, statuses: tuple[str, ...] | None = ("ok",)) -> pd.DataFrame:
    """The task's runs of ``label`` (any factor value) with these statuses (None: every status); an
    ablation's base kept in another task (``include_base: false``) is found through the ablation rows."""
    df = ctx.df
    tdf = df[df["task"] == ctx.task.name]
    rows = tdf[tdf["variant"].str.partition("[")[0] == label]
    if rows.empty and "ablation_base" in tdf.columns:
        abl = tdf[tdf["ablation_base"].astype(str) == label]
        if len(abl):
            rows = base_rows(df, ctx.task.name, abl)[0]
    return rows if statuses is None else rows[rows["status"].isin(statuses)]


def _where(rows: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    keep = rows["sweep_dict"].map(lambda sd: all(k in sd and same_value(sd[k], v) for k, v in where.items()))
    return rows[keep.astype(bool)]


def _keys(rows: pd.DataFrame, t: TaskInfo, over: str | None) -> pd.DataFrame:
    """Add ``_cell`` (size and factor keys but ``over``), ``_hp`` (the other keys but ``over``), ``_x`` (over)."""
    cell, hp, x = [], [], []
    for sd in rows["sweep_dict"]:
        fixed = {k: v for k, v in sd.items() if k != over}
        studied = {k for k in fixed if t.is_size_key(k) or k in t.factor_keys}
        cell.append(json.dumps({k: fixed[k] for k in sorted(studied)}, sort_keys=True, default=str))
        hp.append(json.dumps({k: fixed[k] for k in sorted(set(fixed) - studied)}, sort_keys=True, default=str))
        x.append(sd.get(over, np.nan) if over else np.nan)
    return rows.assign(_cell=cell, _hp=hp, _x=pd.to_numeric(pd.Series(x, index=rows.index), errors="coerce"))


def _best_grid(rows: pd.DataFrame, ctx: Context, metric: str, by: list[str]) -> pd.DataFrame:
    """Within each ``by`` group, the rows of the best hyper-parameter point by the task's primary metric (the
    claim's metric when the rows lack it): the verdict's equal-budget rule."""
    pm = ctx.task.primary_metric
    rank = pm if pm and pm in rows.columns and rows[pm].notna().any() else metric
    hib = ctx.higher_is_better(rank)
    keep = []
    for _, g in rows.groupby(by, sort=False):
        means = g.groupby("_hp")[rank].mean().dropna()
        keep.append(g if g["_hp"].nunique() <= 1 or means.empty else
                    g[g["_hp"] == (means.idxmax() if hib else means.idxmin())])
    return pd.concat(keep) if keep else rows


def _cell_name(cell: str) -> str:
    label = size_label(cell)
    return f" at {label}" if label else ""


def _open(rows: pd.DataFrame) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Where more seeds would go: each size point of ``rows`` with the variant labels run there."""
    return tuple((sp, tuple(sorted(g["variant"].unique()))) for sp, g in rows.groupby("size_point", sort=True))


def _no_runs(what: str) -> CheckResult:
    return CheckResult(np.nan, np.nan, evidence=f"no finished runs of {what}", advice=f"no runs of {what}: run the suite")


# ------------------------------------------------------------------------------------------- combining
def all_cells(results: list[CheckResult], level: float) -> CheckResult:
    """The claim holds in every cell: the largest ``p_repro``; it fails in some: the smallest ``p_contra`` times
    the number of cells. The evidence shown is the deciding cell's (the weakest, or the failing one); the
    advice gathers the cells neither outcome reaches at ``level``."""
    if len(results) == 1:
        return results[0]
    k = len(results)
    p_repro = max(r.p_repro for r in results)
    p_contra = min(1.0, k * min(r.p_contra for r in results))
    failing = min(results, key=lambda r: r.p_contra)
    shown = failing if p_contra < p_repro else max(results, key=lambda r: r.p_repro)
    undecided = [r for r in results if min(r.p_repro, r.p_contra) >= level]
    seeds = [r.seeds_needed for r in undecided]
    return replace(shown, p_repro=p_repro, p_contra=p_contra,
                   evidence=f"{shown.evidence} (the {'failing' if shown is failing and p_contra < p_repro else 'weakest'} "
                            f"of {k} cells)",
                   advice="; ".join(dict.fromkeys(r.advice for r in undecided if r.advice)) or shown.advice,
                   seeds_needed=None if not seeds or None in seeds else max(seeds),
                   open=tuple(o for r in undecided for o in r.open))


def any_of(results: list[CheckResult]) -> CheckResult:
    """Some alternative holds: the smallest ``p_repro`` times their number; every one fails: the largest
    ``p_contra``. The evidence shown is the most promising alternative's (or the least failing one's)."""
    k = len(results)
    p_repro = min(1.0, k * min(r.p_repro for r in results))
    p_contra = max(r.p_contra for r in results)
    best = min(range(k), key=lambda i: results[i].p_repro)
    if p_contra < p_repro:
        best = max(range(k), key=lambda i: results[i].p_contra)
    r = results[best]
    return replace(r, p_repro=p_repro, p_contra=p_contra, evidence=f"alternative {best + 1} of {k}: {r.evidence}")


# ------------------------------------------------------------------------------------------- the kinds
def check_compare(ctx: Context, c) -> CheckResult:
    metric = ctx.metric(c.metric)
    if metric is None:
        return _no_runs(f"{c.better} with a primary metric")
    rows = pd.concat([variant_rows(ctx, c.better).assign(_arm="better"), variant_rows(ctx, c.worse).assign(_arm="worse")])
    rows = _where(rows, c.where)
    rows = rows[rows[metric].notna()] if metric in rows.columns else rows.iloc[0:0]
    if rows.empty or rows["_arm"].nunique() < 2:
        return _no_runs(f"{c.better} and {c.worse} with {metric}")
    rows = _best_grid(_keys(rows, ctx.task, None), ctx, metric, ["_cell", "_arm"])
    sign = 1.0 if ctx.higher_is_better(metric) else -1.0
    out = []
    for cell, g in rows.groupby("_cell", sort=True):
        values, looks = per_seed(g, metric, by="_arm")
        if not {"better", "worse"} <= set(values.columns):
            out.append(_no_runs(f"both {c.better} and {c.worse}{_cell_name(cell)}"))
            continue
        t, _ = paired_threshold_test(values, looks, "better", "worse", sign, c.margin, ctx.design, ctx.level)
        need, advice = seeds_advice(t, ctx.level)
        direction = "higher" if sign > 0 else "lower"
        out.append(CheckResult(
            t.p_above, t.p_below, t.mean, t.ci_low, t.ci_high, t.test, t.n,
            f"{c.better} ahead of {c.worse} by {_plus(t.mean)} {metric} ({direction} is better; margin {c.margin:g})"
            f"{_cell_name(cell)}", advice, need, _open(g) if need else ()))
    return all_cells(out, ctx.level)


class _Slopes:
    """Slopes of one cell: per seed (tested with :func:`threshold_test`), or one series' points (OLS t)."""

    def __init__(self, rows: pd.DataFrame, metric: str, log: bool, ctx: Context, scale: str):
        self.ctx = ctx
        x = np.log2(rows["_x"]) if scale == "log2" and not log else rows["_x"]
        data = rows.assign(_xs=x)
        self.slopes = per_seed_slopes(data, "_xs", metric, log=log)
        look = pd.to_numeric(data["look"], errors="coerce").fillna(0) if "look" in data.columns else pd.Series(0, index=data.index)
        self.looks = look.groupby(data["seed"]).max().reindex(self.slopes.index).fillna(0).astype(int).to_numpy()
        self.series = None
        if len(self.slopes) == 1:  # one seed measured it (e.g. latency_seeds: [0]): regress over its points
            g = data[data["seed"] == self.slopes.index[0]]
            self.series = (g["_xs"].to_numpy(float), pd.to_numeric(g[metric], errors="coerce").to_numpy(float))
            self.fit = ols_fit(*self.series, log=log)
            self.slope, self.lo, self.hi, self.n = ols_slope(*self.series, log=log)
            self.test = f"OLS t (one seed, {self.n} points)"
        else:
            t = threshold_test(self.slopes.to_numpy(), 0.0, self.looks, ctx.design, ctx.level)
            self.slope, self.lo, self.hi, self.n, self.test = t.mean, t.ci_low, t.ci_high, t.n, t.test

    def pvalues(self, margin: float) -> tuple[float, float]:
        """``(p_above, p_below)`` of the slope's centre against ``margin``."""
        if self.series is not None:
            return ols_slope_pvalues(self.fit[0], self.fit[1], self.fit[2], margin)
        t = threshold_test(self.slopes.to_numpy(), margin, self.looks, self.ctx.design, self.ctx.level)
        return t.p_above, t.p_below

    def advice(self, margin: float, over: str) -> tuple[int | None, str]:
        """What would decide the slope against ``margin``: seeds, or a wider (denser) sweep of ``over``."""
        if self.series is not None or len(self.slopes) == 0:
            pts = self.n if self.series is not None else 0
            return None, (f"one series of {pts} points of {over}: a wider or denser sweep of {over} (or the metric "
                          "measured on more seeds, e.g. measure.latency_seeds) would narrow it")
        return seeds_advice(threshold_test(self.slopes.to_numpy(), margin, self.looks, self.ctx.design, self.ctx.level),
                            self.ctx.level)


def _slope_rows(ctx: Context, variant: str, metric: str, over: str, where: dict[str, Any]) -> pd.DataFrame:
    rows = _where(variant_rows(ctx, variant), where)
    rows = rows[rows[metric].notna()] if metric in rows.columns else rows.iloc[0:0]
    rows = _keys(rows, ctx.task, over)
    return _best_grid(rows[rows["_x"].notna()], ctx, metric, ["_cell", "_x"]) if len(rows) else rows


def _band(s: _Slopes, lo: float, hi: float) -> tuple[float, float]:
    """Within [lo, hi] by two one-sided tests (the larger p); outside (the smaller one-sided p, times 2)."""
    above_lo, below_lo = s.pvalues(lo)
    above_hi, below_hi = s.pvalues(hi)
    return max(above_lo, below_hi), min(1.0, 2 * min(below_lo, above_hi))


def _slope_check(ctx: Context, variant: str, metric: str | None, over: str, where: dict[str, Any], log: bool,
                 scale: str, decide) -> CheckResult:
    metric = ctx.metric(metric)
    rows = _slope_rows(ctx, variant, metric, over, where) if metric else None
    if rows is None or rows.empty:
        return _no_runs(f"{variant} with {metric}")
    out = []
    for cell, g in rows.groupby("_cell", sort=True):
        s = _Slopes(g, metric, log, ctx, scale)
        if not np.isfinite(s.slope):
            out.append(CheckResult(np.nan, np.nan, n=s.n, test=s.test,
                                   evidence=f"no slope of {metric} over {over}{_cell_name(cell)} (fewer than two points per seed)",
                                   advice=f"a wider sweep: at least two points of {over} per seed"))
            continue
        p_repro, p_contra, margins, what = decide(s)
        nearest = min(margins, key=lambda m: abs(s.slope - m))
        need, advice = s.advice(nearest, over)
        out.append(CheckResult(p_repro, p_contra, s.slope, s.lo, s.hi, s.test, s.n, f"{what}{_cell_name(cell)}",
                               advice, need, _open(g) if need else ()))
    return all_cells(out, ctx.level)


def check_trend(ctx: Context, c) -> CheckResult:
    per = "per doubling of" if c.scale == "log2" else "per unit of"
    tol = c.tolerance

    def decide(s: _Slopes):
        what = f"slope of {ctx.metric(c.metric)} {per} {c.over}: {_plus(s.slope)} ({c.shape}, tolerance {tol:g})"
        if c.shape == "increasing":
            above, below = s.pvalues(tol)
            return above, below, (tol,), what
        if c.shape == "decreasing":
            above, below = s.pvalues(-tol)
            return below, above, (-tol,), what
        return (*_band(s, -tol, tol), (-tol, tol), what)

    return _slope_check(ctx, c.variant, c.metric, c.over, c.where, False, c.scale, decide)


def check_scaling(ctx: Context, c) -> CheckResult:
    lo, hi = c.exponent

    def decide(s: _Slopes):
        what = f"log-log exponent of {ctx.metric(c.metric)} over {c.over}: {_plus(s.slope)} (claimed [{lo:g}, {hi:g}])"
        return (*_band(s, lo, hi), (lo, hi), what)

    return _slope_check(ctx, c.variant, c.metric, c.over, c.where, True, "linear", decide)


def check_status(ctx: Context, c) -> CheckResult:
    rows = _where(variant_rows(ctx, c.variant, statuses=None), c.where)
    errors = int((rows["status"] == "error").sum())
    rows = _keys(rows[rows["status"] != "error"], ctx.task, None)
    if rows.empty:
        return _no_runs(c.variant + (f" ({errors} ended in error: see the status table)" if errors else ""))
    out = []
    for cell, g in rows.groupby("_cell", sort=True):
        look = pd.to_numeric(g["look"], errors="coerce").fillna(0) if "look" in g.columns else pd.Series(0, index=g.index)
        per = g.assign(_hit=g["status"] == c.is_, _look=look).groupby("seed").agg(hit=("_hit", "all"), look=("_look", "max"))
        hits, looks = per["hit"].to_numpy(), per["look"].astype(int).to_numpy()
        every = c.fraction >= 1
        t = proportion_test(hits, 0.5 if every else c.fraction, looks, ctx.design, ctx.level)
        if every:
            p_repro, p_contra = (t.p_above, 1.0) if t.k == t.n else (1.0, 0.0)
            test = "every seed (binomial vs 1/2)"
        else:
            p_repro, p_contra, test = t.p_above, t.p_below, "exact binomial"
        need, advice = proportion_advice(t, ctx.level)
        if every and t.k == t.n and p_repro >= ctx.level:
            advice = f"every seed so far ({t.n}) shows it; {advice}"
        share = "every seed" if every else f"more than {c.fraction:g} of seeds"
        out.append(CheckResult(p_repro, p_contra, t.share, t.ci_low, t.ci_high, test, t.n,
                               f"{t.k} of {t.n} seeds of {c.variant} ended {c.is_} (claimed: {share}){_cell_name(cell)}"
                               + (f"; {errors} runs ended in error and are left out" if errors else ""),
                               advice, need, _open(g) if need else ()))
    return all_cells(out, ctx.level)


#: the smallest level a verdict claim is tried at (decisions that need no test, e.g. a perfect score, pass there).
LEVEL_FLOOR = 1e-9


def _verdict_at(rows: pd.DataFrame, ctx: Context, alpha: float):
    return task_verdicts(rows, ctx.suite, evidence=gather_evidence(rows, ctx.suite, ctx.design, alpha), alpha=alpha)


def _smallest_level(rows: pd.DataFrame, ctx: Context, target: str, levels: list[float]) -> float:
    """The smallest of ``levels`` at which the verdict rule on ``rows`` says ``target`` (1 if none below 1/2).
    The rule is monotone in its level there (a test that passes at a level passes at every larger one, and
    "better" and "within" cannot both pass below 1/2), so this is a binary search."""
    if _verdict_at(rows, ctx, float(np.nextafter(levels[-1], 1.0)))[0].verdict != target:
        return 1.0  # not even at the largest level: the common case for the outcome the data do not favour
    lo, hi = 0, len(levels) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _verdict_at(rows, ctx, float(np.nextafter(levels[mid], 1.0)))[0].verdict == target:
            hi = mid
        else:
            lo = mid + 1
    return levels[lo]


def check_verdict(ctx: Context, target: str, at: dict[str, Any] | None) -> CheckResult:
    rows = _where(ctx.df[ctx.df["task"] == ctx.task.name], at or {})
    where = _cell_name(json.dumps(at or {}, sort_keys=True))
    if rows.empty or not (rows["status"] == "ok").any():
        return _no_runs(f"task {ctx.task.name}{where}")
    ev = gather_evidence(rows, ctx.suite, ctx.design)
    ps = pd.concat([ev.comparisons["p_better_holm"], ev.comparisons["p_within_holm"], ev.learned["p_holm"]])
    levels = [LEVEL_FLOOR] + sorted({float(p) for p in ps if np.isfinite(p) and LEVEL_FLOOR < p < 0.5})
    other = NOT_NEEDED if target == NEEDED else NEEDED
    p_repro, p_contra = (_smallest_level(rows, ctx, v, levels) for v in (target, other))
    verdict = task_verdicts(rows, ctx.suite, evidence=ev)[0]  # shown at the rule's own level, ALPHA
    reached = f"{target} from level {p_repro:.3g}" if p_repro < 1 else f"never {target} below level 0.5"
    out = CheckResult(p_repro, p_contra, test="verdict rule (the task's comparisons, Holm among themselves)",
                      n=int(rows.loc[rows["status"] == "ok", "seed"].nunique()),
                      evidence=f"the verdict rule on {ctx.task.name}{where} alone: {verdict.verdict} at level {ALPHA:g} "
                               f"({reached})")
    best = {(c.size_point, c.best_ssm) for c in verdict.cells}
    comps = ev.comparisons[[k in best for k in zip(ev.comparisons["size_point"], ev.comparisons["variant_a"])]]
    column = "p_better_holm" if target == NEEDED else "p_within_holm"
    comps = comps[comps[column].notna()]
    if len(comps):  # the comparison that binds: the weakest "better" for needed, the strongest "within" otherwise
        r = comps.loc[comps[column].idxmax() if target == NEEDED else comps[column].idxmin()]
        out = replace(out, estimate=float(r["adv"]), ci_low=float(r["adv_ci_low"]), ci_high=float(r["adv_ci_high"]),
                      n=int(r["n"]), evidence=f"{out.evidence}; {r['variant_a']} ahead of {r['variant_b']} by "
                                              f"{_plus(r['adv'])} {r['metric']}{_cell_name(r['size_point'])} "
                                              f"(threshold {r['threshold']:.3g})")
    items = open_items(_verdict_at(rows, ctx, ctx.level))  # what would decide it at the claims' level
    seeds = [i.seeds_needed for i in items if i.variants]
    return replace(out, advice="; ".join(i.describe() for i in items),
                   seeds_needed=max(seeds) if seeds and None not in seeds else None,
                   open=tuple((i.size_point, i.variants) for i in items if i.variants))


def evaluate_check(ctx: Context, check: Check) -> CheckResult:
    """The :class:`CheckResult` of one check (``any_of`` combines its alternatives)."""
    kind = check.kind
    if kind == "verdict":
        return check_verdict(ctx, check.verdict, check.at)
    if kind == "any_of":
        return any_of([evaluate_check(ctx, alt) for alt in check.any_of])
    return {"compare": check_compare, "trend": check_trend, "status": check_status,
            "scaling": check_scaling}[kind](ctx, check.body)


__all__ = ["CheckResult", "Context", "evaluate_check", "all_cells", "any_of", "variant_rows"]
