"""Paired comparisons between variants that share seeds, Holm correction, and the equal-budget rule.

Pairing: two variants of one task are compared at the same *size point* (same sequence length /
resolution), matching runs by ``seed``; only seeds both variants finished (``status == ok``) count.

Test (stated in the ``test`` column): paired t-test on the per-seed differences when n < 6 pairs,
Wilcoxon signed-rank test when n >= 6. The 95 % CI of the mean difference uses the same rule as
:mod:`harness.report.stats` (t-interval for n < 10, percentile bootstrap otherwise).

Holm: every comparison table returned by :func:`compare_variants` is one family; ``p_holm`` is the
Holm-Bonferroni step-down adjusted p-value over all its rows (i.e. over all comparisons in a report).

Which comparisons: in each cell, every SSM variant against every no-SSM variant (the question the
harness asks); when a task has only one kind, every pair.

Equal-budget rule: when a task sweeps hyper-parameters (sweep keys other than size keys), each variant
is represented by its best grid point (by mean primary metric over seeds) for the comparisons and the
verdict; :func:`equal_budget` also reports the median of the grid and the trial count per variant, and
flags cells where variants got unequal numbers of trials (an unequal tuning budget favours the
better-tuned variant).
"""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.report.load import Suite, ok_rows
from harness.report.stats import ALPHA, mean_ci

WILCOXON_MIN_N = 6


def paired_test(a, b, alpha: float = ALPHA) -> dict:
    """Compare paired samples ``a`` and ``b`` (same seeds, same order). Difference is ``a - b``.

    Returns ``n, mean_diff, ci_low, ci_high, ci_method, test, statistic, p``.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = len(d)
    m, _, lo, hi, how = mean_ci(d, alpha=alpha)
    out = dict(n=n, mean_diff=m, ci_low=lo, ci_high=hi, ci_method=how, test="none", statistic=np.nan,
               p=np.nan)
    if n < 2:
        return out
    if np.allclose(d, 0.0):
        out.update(test="wilcoxon" if n >= WILCOXON_MIN_N else "paired t", statistic=0.0, p=1.0)
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n >= WILCOXON_MIN_N:
            r = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
            out.update(test="wilcoxon", statistic=float(r.statistic), p=float(r.pvalue))
        else:
            if np.std(d, ddof=1) == 0:  # constant non-zero difference: t is infinite
                out.update(test="paired t", statistic=np.inf, p=0.0)
            else:
                r = sps.ttest_rel(a[keep], b[keep])
                out.update(test="paired t", statistic=float(r.statistic), p=float(r.pvalue))
    return out


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (NaNs stay NaN and do not count)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.where(np.isfinite(p))[0]
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="mergesort")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def _main_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that enter comparisons and verdicts: finished, not part of an ablation."""
    ok = ok_rows(df)
    return ok[ok["ablation"] == ""]


def select_configs(df: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """Per task x size point x variant, keep only the rows of the best hyper-parameter point.

    Best = best mean primary metric over seeds (direction from suite.json). Without a hyper-parameter
    sweep each variant has one point and nothing is dropped.
    """
    rows = _main_rows(df)
    keep = []
    for (task, _sp, _var), g in rows.groupby(["task", "size_point", "variant"], sort=False):
        hp = g["hp_point"].unique()
        if len(hp) <= 1:
            keep.append(g)
            continue
        t = suite.task(str(task))
        pm = t.primary_metric
        if pm is None or pm not in g.columns:
            keep.append(g[g["hp_point"] == sorted(hp)[0]])
            continue
        means = g.groupby("hp_point")[pm].mean().dropna()
        if means.empty:
            keep.append(g[g["hp_point"] == sorted(hp)[0]])
            continue
        best = means.idxmax() if t.metric(pm).higher_is_better else means.idxmin()
        keep.append(g[g["hp_point"] == best])
    return pd.concat(keep) if keep else rows.iloc[0:0]


def equal_budget(df: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """Best-of-grid and median-of-grid of the primary metric per task x size point x variant.

    Columns: ``task, size_point, variant, metric, grid_points, trials, best, best_hp, median,
    unequal_trials``. ``trials`` counts all runs tried (any status), so failed trials count as budget.
    Only tasks whose sweep has hyper-parameter keys appear.
    """
    out = []
    alltried = df[df["ablation"] == ""]
    main = _main_rows(df)
    for task, tdf in alltried.groupby("task", sort=True):
        if (tdf["hp_point"] == "{}").all():
            continue
        t = suite.task(str(task))
        pm = t.primary_metric
        hib = t.metric(pm).higher_is_better if pm else True
        for sp, cdf in tdf.groupby("size_point", sort=True):
            rows = []
            for var, g in cdf.groupby("variant", sort=True):
                okg = main[(main["task"] == task) & (main["size_point"] == sp) & (main["variant"] == var)]
                means = okg.groupby("hp_point")[pm].mean().dropna() if pm in okg.columns else pd.Series()
                best_hp = (means.idxmax() if hib else means.idxmin()) if len(means) else ""
                rows.append(dict(task=task, size_point=sp, variant=var, metric=pm,
                                 grid_points=int(g["hp_point"].nunique()), trials=int(len(g)),
                                 best=float(means.max() if hib else means.min()) if len(means) else np.nan,
                                 best_hp=best_hp,
                                 median=float(means.median()) if len(means) else np.nan))
            unequal = len({r["trials"] for r in rows}) > 1
            for r in rows:
                r["unequal_trials"] = unequal
            out.extend(rows)
    cols = ["task", "size_point", "variant", "metric", "grid_points", "trials", "best", "best_hp", "median",
            "unequal_trials"]
    return pd.DataFrame(out, columns=cols)


def _pairs(variants: pd.DataFrame) -> list[tuple[str, str]]:
    ssm = sorted(variants.loc[variants["is_ssm"], "variant"].unique())
    non = sorted(variants.loc[~variants["is_ssm"], "variant"].unique())
    if ssm and non:
        return [(a, b) for a in ssm for b in non]
    return list(itertools.combinations(sorted(variants["variant"].unique()), 2))


COMPARISON_COLUMNS = [
    "task", "size_point", "size", "metric", "variant_a", "variant_b", "a_is_ssm", "b_is_ssm", "hp_a", "hp_b",
    "n", "mean_a", "mean_b", "diff", "diff_ci_low", "diff_ci_high", "adv", "adv_ci_low", "adv_ci_high",
    "ci_method", "threshold", "higher_is_better", "test", "p", "p_holm", "significant",
]


def compare_variants(df: pd.DataFrame, suite: Suite, metrics: dict[str, list[str]] | None = None,
                     alpha: float = ALPHA, selected: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paired comparisons for every task x size point (see module docstring), Holm over the whole table.

    ``metrics`` maps task -> metrics to compare (default: the primary metric). ``diff`` is
    ``mean(a - b)``; ``adv`` is the same oriented so that positive means *a is better*
    (``higher_is_better`` from suite.json). ``threshold`` is the practical threshold in metric units
    (relative thresholds scaled by ``|mean_b|``). ``significant`` = ``p_holm < alpha``.
    """
    sel = select_configs(df, suite) if selected is None else selected
    out = []
    for task, tdf in sel.groupby("task", sort=True):
        t = suite.task(str(task))
        mlist = (metrics or {}).get(task) or ([t.primary_metric] if t.primary_metric else [])
        for sp, cdf in sorted(tdf.groupby("size_point"), key=lambda kv: (kv[1]["size"].iloc[0], kv[0])):
            size = cdf["size"].iloc[0]
            variants = cdf[["variant", "is_ssm"]].drop_duplicates("variant")
            ssm_of = dict(zip(variants["variant"], variants["is_ssm"]))
            for metric in mlist:
                if metric not in cdf.columns:
                    continue
                hib = t.metric(metric).higher_is_better
                per_seed = cdf.groupby(["variant", "seed"])[metric].mean().unstack("variant")
                for a, b in _pairs(variants):
                    pair = per_seed[[a, b]].dropna()
                    r = paired_test(pair[a].to_numpy(), pair[b].to_numpy(), alpha=alpha)
                    mb = float(pair[b].mean()) if len(pair) else np.nan
                    sign = 1.0 if hib else -1.0
                    lo, hi = sign * r["ci_low"], sign * r["ci_high"]
                    out.append(dict(
                        task=task, size_point=sp, size=size, metric=metric, variant_a=a, variant_b=b,
                        a_is_ssm=bool(ssm_of[a]), b_is_ssm=bool(ssm_of[b]),
                        hp_a=cdf.loc[cdf["variant"] == a, "hp_point"].iloc[0],
                        hp_b=cdf.loc[cdf["variant"] == b, "hp_point"].iloc[0],
                        n=r["n"], mean_a=float(pair[a].mean()) if len(pair) else np.nan, mean_b=mb,
                        diff=r["mean_diff"], diff_ci_low=r["ci_low"], diff_ci_high=r["ci_high"],
                        adv=sign * r["mean_diff"], adv_ci_low=min(lo, hi), adv_ci_high=max(lo, hi),
                        ci_method=r["ci_method"], threshold=t.threshold(metric, mb), higher_is_better=hib,
                        test=r["test"], p=r["p"]))
    res = pd.DataFrame(out, columns=COMPARISON_COLUMNS)
    if len(res):
        res["p_holm"] = holm(res["p"].to_numpy())
        res["significant"] = res["p_holm"] < alpha
    return res


def size_label(size_point: str) -> str:
    """``{"data.seq_len": 2048}`` -> ``seq_len=2048``; ``{}`` -> ``""``."""
    try:
        d = json.loads(size_point)
    except (TypeError, ValueError):
        return str(size_point)
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in d.items())
