"""Paired comparisons between variants that share seeds, Holm correction, and the equal-budget rule.

Pairing: two variants of one task are compared at the same *size point* (same sequence length /
resolution), matching runs by ``seed``; only seeds both variants finished (``status == ok``) count. A
seed's look (column ``look``, 0 when absent) is the later of its two runs' looks.

Tests (:func:`harness.report.sequential.threshold_test` on the per-seed advantage ``adv``, oriented so
that positive means A is better): ``p_better`` is the one-sided test of ``mean adv > threshold`` ("A
better beyond the threshold"), ``p_within`` of ``mean adv < threshold`` ("B within the threshold of A, or
better"); one-sided t-tests (sign test for constant differences), adjusted for the looks of a sequential
design. The 95 % CI of the mean difference is descriptive (t-interval for n < 10, bootstrap otherwise).

Holm: in every table returned by :func:`compare_variants`, the ``better`` tests form one family and the
``within`` tests another; ``p_better_holm`` / ``p_within_holm`` are Holm-Bonferroni step-down adjusted over
all rows of the table (i.e. over all comparisons in a report).

Which comparisons: in each cell, every SSM variant against every no-SSM variant (the question the
harness asks); when a task has only one kind, every pair.

Which rows: finished runs that are not ablations (``ablation`` is empty, or ``base``: an ablation
study's base is a full member of the pairing, from the same runs).

Equal-budget rule: when a task sweeps hyper-parameters (sweep keys other than size keys), each variant
is represented by its best grid point (by mean primary metric over seeds) for the comparisons and the
verdict; :func:`equal_budget` also reports the median of the grid and the trial count per variant, and
flags cells where variants got unequal numbers of trials (an unequal tuning budget favours the
better-tuned variant).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd

from harness.report.load import ResultsSuite, ok_rows
from harness.report.sequential import N_TOO_SMALL, SequentialDesign, seeds_advice, threshold_test
from harness.report.stats import ALPHA

#: ``ablation`` values of rows that enter comparisons and verdicts ("base": an ablation study's base).
MAIN_ABLATIONS = ("", "base")


def per_seed(rows: pd.DataFrame, metric: str, by: str = "variant") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(values, looks)``: seeds x ``by`` tables of the mean ``metric`` and of the latest ``look``."""
    look = rows["look"] if "look" in rows.columns else pd.Series(0, index=rows.index)
    g = rows.assign(look=pd.to_numeric(look, errors="coerce").fillna(0).astype(int)).groupby([by, "seed"])
    return g[metric].mean().unstack(by), g["look"].max().unstack(by)


def paired_threshold_test(values: pd.DataFrame, looks: pd.DataFrame, a: str, b: str, sign: float, margin: float,
                          design: SequentialDesign | None, alpha: float = ALPHA):
    """:func:`threshold_test` of ``sign * (a - b)`` over the seeds both finished; returns ``(test, pair)``."""
    pair = values[[a, b]].dropna()
    lk = looks.loc[pair.index, [a, b]].max(axis=1).to_numpy()
    adv = sign * (pair[a] - pair[b]).to_numpy()
    return threshold_test(adv, margin, lk, design, alpha), pair


def decide(better_holm: float, within_holm: float, note: str, alpha: float = ALPHA) -> str:
    """``better`` / ``within`` / ``n too small`` / ``undecided`` from the two Holm-adjusted p-values."""
    if better_holm < alpha:
        return "better"
    if within_holm < alpha:
        return "within"
    return N_TOO_SMALL if note == N_TOO_SMALL else "undecided"


def add_holm_decisions(res: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Holm over the ``p_better`` and ``p_within`` columns (two families), the decision, and for each undecided
    row seeds advice at the level its family's first Holm step demands (alpha / number of tests)."""
    res["p_better_holm"] = holm(res["p_better"].to_numpy())
    res["p_within_holm"] = holm(res["p_within"].to_numpy())
    res["better"] = res["p_better_holm"] < alpha
    res["within"] = res["p_within_holm"] < alpha
    res["decision"] = [decide(b, w, n, alpha) for b, w, n in zip(res["p_better_holm"], res["p_within_holm"],
                                                                 res["note"])]
    m_better, m_within = max(1, res["p_better"].notna().sum()), max(1, res["p_within"].notna().sum())
    needs, advice = [], []
    for r, t in zip(res.itertuples(), res["_test"]):
        if r.decision in ("better", "within"):
            needs.append(np.nan)
            advice.append("")
            continue
        k, text = seeds_advice(t, alpha / (m_better if r.adv > r.threshold else m_within))
        needs.append(np.nan if k is None else k)
        advice.append(text)
    res["seeds_needed"] = needs
    res["advice"] = advice
    return res.drop(columns="_test")


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


def holm_by_cell(table: pd.DataFrame, column: str = "p") -> np.ndarray:
    """:func:`holm` of ``column`` within each task x size point of ``table`` (families that are per cell)."""
    out = np.full(len(table), np.nan)
    for idx in table.groupby(["task", "size_point"], sort=False).indices.values():
        out[idx] = holm(table[column].to_numpy()[idx])
    return out


def main_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that enter comparisons and verdicts: finished, not an ablation (an ablation study's base is)."""
    ok = ok_rows(df)
    return ok[ok["ablation"].isin(MAIN_ABLATIONS)]


def select_configs(df: pd.DataFrame, suite: ResultsSuite) -> pd.DataFrame:
    """Per task x size point x variant, keep only the rows of the best hyper-parameter point.

    Best = best mean primary metric over seeds (direction from suite.json). Without a hyper-parameter
    sweep each variant has one point and nothing is dropped.
    """
    rows = main_rows(df)
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


def equal_budget(df: pd.DataFrame, suite: ResultsSuite) -> pd.DataFrame:
    """Best-of-grid and median-of-grid of the primary metric per task x size point x variant.

    Columns: ``task, size_point, variant, metric, grid_points, trials, best, best_hp, median,
    unequal_trials``. ``trials`` counts all runs tried (any status), so failed trials count as budget.
    Only tasks whose sweep has hyper-parameter keys appear.
    """
    out = []
    alltried = df[df["ablation"].isin(MAIN_ABLATIONS)]
    main = main_rows(df)
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
    "n", "looks", "mean_a", "mean_b", "diff", "diff_ci_low", "diff_ci_high", "adv", "adv_sd", "adv_ci_low",
    "adv_ci_high", "ci_method", "threshold", "higher_is_better", "test", "p_better", "p_within", "note",
    "p_better_holm", "p_within_holm", "better", "within", "decision", "seeds_needed", "advice",
]


def compare_variants(df: pd.DataFrame, suite: ResultsSuite, metrics: dict[str, list[str]] | None = None,
                     alpha: float = ALPHA, selected: pd.DataFrame | None = None,
                     design: SequentialDesign | None = None) -> pd.DataFrame:
    """Paired comparisons for every task x size point (see module docstring), Holm over the whole table.

    ``metrics`` maps task -> metrics to compare (default: the primary metric). ``diff`` is
    ``mean(a - b)``; ``adv`` is the same oriented so that positive means *a is better*
    (``higher_is_better`` from suite.json). ``threshold`` is the practical threshold in metric units
    (relative thresholds scaled by ``|mean_b|``). ``decision``: ``better`` (A better beyond the threshold),
    ``within`` (B within the threshold of A, or better), ``undecided`` or ``n too small``; an undecided
    row carries ``seeds_needed`` and ``advice``. ``design``: the sequential design the seeds were added
    under (:func:`harness.report.sequential.read_design`), None for seeds fixed in advance.
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
                sign = 1.0 if hib else -1.0
                values, looks = per_seed(cdf, metric)
                for a, b in _pairs(variants):
                    thr = t.threshold(metric, float(values[[a, b]].dropna()[b].mean()))
                    r, pair = paired_threshold_test(values, looks, a, b, sign, thr, design, alpha)
                    lo, hi = sign * r.ci_low, sign * r.ci_high  # r is on adv = sign * (a - b)
                    out.append(dict(
                        task=task, size_point=sp, size=size, metric=metric, variant_a=a, variant_b=b,
                        a_is_ssm=bool(ssm_of[a]), b_is_ssm=bool(ssm_of[b]),
                        hp_a=cdf.loc[cdf["variant"] == a, "hp_point"].iloc[0],
                        hp_b=cdf.loc[cdf["variant"] == b, "hp_point"].iloc[0],
                        n=r.n, looks=len(r.looks), mean_a=float(pair[a].mean()) if len(pair) else np.nan,
                        mean_b=float(pair[b].mean()) if len(pair) else np.nan,
                        diff=sign * r.mean, diff_ci_low=min(lo, hi), diff_ci_high=max(lo, hi),
                        adv=r.mean, adv_sd=r.sd, adv_ci_low=r.ci_low, adv_ci_high=r.ci_high,
                        ci_method=r.ci_method, threshold=thr, higher_is_better=hib, test=r.test,
                        p_better=r.p_above, p_within=r.p_below, note=r.note, _test=r))
    res = pd.DataFrame(out, columns=COMPARISON_COLUMNS[:COMPARISON_COLUMNS.index("note") + 1] + ["_test"])
    return add_holm_decisions(res, alpha)[COMPARISON_COLUMNS]


def size_label(size_point: str) -> str:
    """``{"data.seq_len": 2048}`` -> ``seq_len=2048``; ``{}`` -> ``""``."""
    try:
        d = json.loads(size_point)
    except (TypeError, ValueError):
        return str(size_point)
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in d.items())
