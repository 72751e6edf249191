"""Did a variant learn the task? Each variant's primary metric against the task's trivial baseline.

Rows carry ``baseline``: the value of the run's primary metric that the task's strongest trivial
predictor achieves (chance or the majority class, bicubic or noisy-input PSNR, the unigram NLL, the
better of mean field and identity for PDEs, chance mIoU / mAP), and ``baseline_kind``, its short name.
A variant *learned* in a cell when the mean over seeds of its margin over the baseline (oriented by the
metric's direction) is above 0 with confidence: :func:`harness.report.sequential.threshold_test` at
margin 0, side *above*, Holm-corrected over the variants of the cell (a gate on that cell's decisions,
so its error is counted per cell).

A model that learned nothing gives no evidence on whether an SSM is needed; the verdict uses this table
so that "within the threshold" counts only for a no-SSM variant that learned and "SSM better" only for
an SSM that did. Rows without a ``baseline`` (folders written before the column) are left out here and
the verdict falls back to its older rule (see ``VERDICT_RULE.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.load import MetricInfo, ResultsSuite
from harness.report.paired import holm_by_cell, per_seed
from harness.report.sequential import SequentialDesign, seeds_advice, threshold_test
from harness.report.stats import ALPHA

LEARNED_COLUMNS = ["task", "size_point", "variant", "metric", "n", "mean", "baseline", "baseline_kind", "margin",
                   "sd", "test", "p", "p_holm", "learned", "note", "seeds_needed", "advice"]


def _kind(rows: pd.DataFrame) -> str:
    if "baseline_kind" not in rows.columns:
        return ""
    kinds = sorted({str(k) for k in rows["baseline_kind"].dropna() if str(k)})
    return ", ".join(kinds)


def learned_table(selected: pd.DataFrame, suite: ResultsSuite, design: SequentialDesign | None = None,
                  alpha: float = ALPHA) -> pd.DataFrame:
    """One row per task x size point x variant of ``selected`` whose rows record a ``baseline``.

    ``mean`` and ``baseline`` are in metric units; ``margin`` is the mean oriented margin over the baseline
    (positive = better than trivial); ``learned`` = ``p_holm < alpha``; a variant that did not learn gets
    ``seeds_needed`` / ``advice`` (:func:`harness.report.sequential.seeds_advice`).
    """
    out = []
    if "baseline" in selected.columns and len(selected):
        rows = selected.assign(baseline=pd.to_numeric(selected["baseline"], errors="coerce"))
        rows = rows[rows["baseline"].notna()]
        for (task, sp), cdf in rows.groupby(["task", "size_point"], sort=True):
            t = suite.task(str(task))
            pm = t.primary_metric
            if pm is None or pm not in cdf.columns:
                continue
            sign = 1.0 if t.metric(pm).higher_is_better else -1.0
            values, looks = per_seed(cdf, pm)
            bases, _ = per_seed(cdf, "baseline")
            for v in sorted(values.columns):
                seeds = values[v].dropna().index
                margin = sign * (values.loc[seeds, v] - bases.loc[seeds, v])
                r = threshold_test(margin.to_numpy(), 0.0, looks.loc[seeds, v].to_numpy(), design, alpha)
                out.append(dict(task=task, size_point=sp, variant=v, metric=pm, n=r.n,
                                mean=float(values.loc[seeds, v].mean()), baseline=float(bases.loc[seeds, v].mean()),
                                baseline_kind=_kind(cdf[cdf["variant"] == v]), margin=r.mean, sd=r.sd, test=r.test,
                                p=r.p_above, note=r.note, _test=r))
    res = pd.DataFrame(out, columns=LEARNED_COLUMNS[:LEARNED_COLUMNS.index("p")] + ["p", "note", "_test"])
    res["p_holm"] = holm_by_cell(res)
    res["learned"] = res["p_holm"] < alpha
    m = res.groupby(["task", "size_point"])["p"].transform(lambda p: max(1, int(p.notna().sum())))
    advice = [(np.nan, "") if ok else seeds_advice(t, alpha / k) for ok, t, k in zip(res["learned"], res["_test"], m)]
    res["seeds_needed"] = [np.nan if k is None else k for k, _ in advice]
    res["advice"] = [a for _, a in advice]
    return res[LEARNED_COLUMNS]


def perfect_score(value: float, metric: MetricInfo) -> bool:
    """Whether ``value`` is the best a score can be: 1 (fraction) or 100 (%) higher-is-better, 0 lower-is-better."""
    if not metric.higher_is_better:
        return value == 0.0
    return (metric.unit == "fraction" and value == 1.0) or (metric.unit == "%" and value == 100.0)


def learned_lookup(table: pd.DataFrame, task: str, size_point: str) -> dict[str, pd.Series]:
    """``variant -> row`` of :func:`learned_table` for one cell (variants without a baseline are absent)."""
    cell = table[(table["task"] == task) & (table["size_point"] == size_point)]
    return {str(r["variant"]): r for _, r in cell.iterrows()}


__all__ = ["learned_table", "learned_lookup", "perfect_score", "LEARNED_COLUMNS"]
