"""Which variant to use in a cell: the cheapest one whose quality is adequate, the SSM included.

*Adequate*: among the cell's variants that learned the task (see :mod:`harness.report.baseline`; every
variant when the rows record no baseline), the best one ``B`` (best mean primary metric) is adequate,
whether or not it is an SSM; another variant ``V`` is adequate when ``B``'s advantage over ``V``, paired
by seed, is below the task's threshold with confidence - :func:`harness.report.sequential.threshold_test`
of the per-seed advantage at the threshold (relative thresholds scaled by |mean of B|), side *below*,
Holm-corrected over the cell's candidates (the *adequate* family) - or when ``V`` scored the best
possible value on every seed (nothing can beat it). The recommendation is made per cell, so the Holm
family is the cell's candidates: the chance that an inadequate variant is called adequate is at most
alpha per cell.

*Cheapest*: the adequate variants ordered by latency p50, then forward FLOPs, then parameters (each
column used when every adequate variant measured it; FLOPs only when no count skipped an op); the first is recommended and the reason names the
cost ratio that ranked it, against the best variant (or, when the best is also the cheapest, against the
next cheapest adequate one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.baseline import learned_lookup, perfect_score
from harness.report.load import COST_COLUMNS, ResultsSuite, incomplete_flops
from harness.report.paired import holm_by_cell, paired_threshold_test, per_seed, size_label
from harness.report.sequential import SequentialDesign
from harness.report.stats import ALPHA

#: order in which cost decides the recommended variant among adequate ones.
COST_ORDER = ["latency_ms_p50", "flops_fwd", "params"]
ADEQUACY_COLUMNS = ["task", "size_point", "best", "variant", "n", "adv", "threshold", "test", "p", "p_holm",
                    "adequate", "note"]


def candidates(cdf: pd.DataFrame, pm: str, learned: dict[str, pd.Series]) -> list[str]:
    """Variants of the cell with a primary metric that learned (or record no baseline to tell)."""
    scored = sorted(cdf.loc[cdf[pm].notna(), "variant"].unique()) if pm in cdf.columns else []
    return [v for v in scored if v not in learned or bool(learned[v]["learned"])]


def best_variant(cdf: pd.DataFrame, pm: str, variants: list[str], higher_is_better: bool) -> str | None:
    means = cdf[cdf["variant"].isin(variants)].groupby("variant")[pm].mean().dropna()
    if means.empty:
        return None
    return str(means.idxmax() if higher_is_better else means.idxmin())


def adequacy_table(selected: pd.DataFrame, suite: ResultsSuite, learned: pd.DataFrame,
                   design: SequentialDesign | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per cell x candidate other than the cell's best (see the module docstring)."""
    out = []
    for (task, sp), cdf in selected.groupby(["task", "size_point"], sort=True):
        t = suite.task(str(task))
        pm = t.primary_metric
        if pm is None or pm not in cdf.columns:
            continue
        mi = t.metric(pm)
        cands = candidates(cdf, pm, learned_lookup(learned, str(task), str(sp)))
        best = best_variant(cdf, pm, cands, mi.higher_is_better)
        if best is None:
            continue
        values, looks = per_seed(cdf, pm)
        thr = t.threshold(pm, float(values[best].mean()))
        for v in cands:
            if v == best:
                continue
            r, _ = paired_threshold_test(values, looks, best, v, 1.0 if mi.higher_is_better else -1.0, thr, design,
                                         alpha)
            perfect = bool(values[v].notna().any() and all(perfect_score(x, mi) for x in values[v].dropna()))
            out.append(dict(task=task, size_point=sp, best=best, variant=v, n=r.n, adv=r.mean, threshold=thr,
                            test="best possible score" if perfect else r.test, p=0.0 if perfect else r.p_below,
                            note=r.note))
    res = pd.DataFrame(out, columns=[c for c in ADEQUACY_COLUMNS if c not in ("p_holm", "adequate")])
    res["p_holm"] = holm_by_cell(res)
    res["adequate"] = res["p_holm"] < alpha
    return res[ADEQUACY_COLUMNS]


def cost_ranking(cdf: pd.DataFrame, variants: list[str]) -> tuple[list[str], str | None]:
    """``variants`` from cheapest to dearest by :data:`COST_ORDER` (each column used when all measured it),
    and the column that ranked the first two (None when no cost was measured for all)."""
    costs = cdf[cdf["variant"].isin(variants)].groupby("variant")[[c for c in COST_ORDER if c in cdf.columns]].mean()
    partial = set(incomplete_flops(cdf)) & set(variants)  # a FLOP count with skipped ops ranks nothing
    cols = [c for c in costs.columns if costs[c].reindex(variants).notna().all() and not (c == "flops_fwd" and partial)]
    if not cols:
        return sorted(variants), None
    ranked = costs.reindex(variants).sort_values(cols, kind="mergesort")
    first = cols[0]
    if len(ranked) > 1:
        first = next((c for c in cols if ranked[c].iloc[0] != ranked[c].iloc[1]), cols[0])
    return [str(v) for v in ranked.index], first


def recommend(cdf: pd.DataFrame, adequate: list[str], best: str) -> tuple[str, str]:
    """``(variant, why)``: the cheapest adequate variant and the cost ratio that makes it so."""
    ranked, col = cost_ranking(cdf, adequate)
    rec = ranked[0]
    where = size_label(cdf["size_point"].iloc[0])
    at = f" at {where}" if where else ""
    if len(ranked) == 1:
        return rec, f"{rec} (the only adequate variant: the best in quality, none other shown within the threshold of it)"
    if col is None:
        return rec, f"{rec} (no cost measured for every adequate variant: {', '.join(ranked)})"
    other = best if rec != best else ranked[1]
    a = cdf.loc[cdf["variant"] == rec, col].mean()
    b = cdf.loc[cdf["variant"] == other, col].mean()
    ratio = f"{a / b:.2g}x" if np.isfinite(a) and np.isfinite(b) and b > 0 else "n/a"
    if rec == best:
        return rec, f"{rec} (the best in quality, and {COST_COLUMNS[col][0]} {ratio} that of {other}, the next cheapest adequate variant{at})"
    return rec, f"{rec} ({COST_COLUMNS[col][0]} {ratio} that of {other}, the best in quality{at})"
