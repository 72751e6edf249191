"""Each ablation against its base, paired by seed: the quality effect with its error rate, and the cost.

Which rows: an ablation's runs carry ``ablation`` = its name. Its base's runs are the task's rows with
``ablation == "base"``; when the ablation rows name their base with ``ablation_base`` (the base variant's
label) the base's runs are that variant's non-ablation rows (``ablation`` empty or ``base``), in the task
``ablation_base_task`` when given (``include_base: false``: the base runs belong to another task).

Pairing: per size point, the base at its best hyper-parameter point (as in the verdict) and the ablation
at that same point (one factor at a time; when they share no point, each at its best, and the note says
so), matched by seed.

Decisions on the per-seed effect ``e`` = ablation - base, oriented so that positive means the ablation
scores better, against the task's threshold ``thr`` (relative ones scaled by |mean of the base|), with
:func:`harness.report.sequential.threshold_test`; three families, each Holm-corrected over every
ablation of the report:

* **worse**: ``e < -thr`` - the ablated component matters for quality;
* **better**: ``e > thr`` - the ablation improves quality;
* **within**: ``-thr < e < thr`` - two one-sided tests (TOST, p = the larger of the two): the component is
  not needed for quality.

Costs: the ratio ablation / base of the mean params, forward FLOPs, latency p50 and inference peak memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.load import COST_COLUMNS, ResultsSuite, ok_rows
from harness.report.paired import MAIN_ABLATIONS, decide, holm, per_seed, size_label
from harness.report.sequential import N_TOO_SMALL, SequentialDesign, seeds_advice, threshold_test
from harness.report.stats import ALPHA

RATIO_COSTS = ["params", "flops_fwd", "latency_ms_p50", "peak_mem_mb_infer"]
ABLATION_COLUMNS = [
    "task", "size_point", "ablation", "base", "hp_point", "metric", "n", "mean_base", "mean_ablation", "diff",
    "diff_ci_low", "diff_ci_high", "effect", "threshold", "higher_is_better", "test", "p_worse", "p_better",
    "p_within", "p_worse_holm", "p_better_holm", "p_within_holm", "decision", "note", "seeds_needed", "advice",
    *[f"{c}_ratio" for c in RATIO_COSTS], "summary",
]


def _first(rows: pd.DataFrame, col: str) -> str:
    if col not in rows.columns:
        return ""
    vals = [str(v) for v in rows[col].dropna() if str(v) not in ("", "nan")]
    return vals[0] if vals else ""


def base_rows(ok: pd.DataFrame, task: str, abl: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The finished runs of the base of ablation rows ``abl`` (see the module docstring), and its label."""
    label = _first(abl, "ablation_base")
    where = ok[ok["task"] == (_first(abl, "ablation_base_task") or task)]
    if label:
        return where[(where["variant"] == label) & where["ablation"].isin(MAIN_ABLATIONS)], label
    ref = where[where["ablation"] == "base"]
    return ref, (str(ref["variant"].iloc[0]) if len(ref) else "base")


def _best_hp(rows: pd.DataFrame, pm: str, hib: bool, among) -> str | None:
    means = rows[rows["hp_point"].isin(among)].groupby("hp_point")[pm].mean().dropna()
    if means.empty:
        return None
    return str(means.idxmax() if hib else means.idxmin())


def _pair(base: pd.DataFrame, abl: pd.DataFrame, pm: str, hib: bool) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """``(base, ablation)`` rows at one hyper-parameter point (shared when possible), that point, and a note."""
    shared = set(base["hp_point"]) & set(abl["hp_point"])
    if shared:
        hp = _best_hp(base, pm, hib, shared) or sorted(shared)[0]
        return base[base["hp_point"] == hp], abl[abl["hp_point"] == hp], hp, ""
    hb = _best_hp(base, pm, hib, set(base["hp_point"])) or ""
    ha = _best_hp(abl, pm, hib, set(abl["hp_point"])) or ""
    note = f"no shared hyper-parameter point: base at {size_label(hb)}, ablation at {size_label(ha)}"
    return base[base["hp_point"] == hb], abl[abl["hp_point"] == ha], ha, note


def ablation_table(df: pd.DataFrame, suite: ResultsSuite, design: SequentialDesign | None = None,
                   alpha: float = ALPHA) -> pd.DataFrame:
    """One row per task x size point x ablation with a base (columns :data:`ABLATION_COLUMNS`)."""
    ok = ok_rows(df)
    out = []
    for (task, name), abl_all in ok[~ok["ablation"].isin(MAIN_ABLATIONS)].groupby(["task", "ablation"], sort=True):
        t = suite.task(str(task))
        pm = t.primary_metric
        if pm is None or pm not in abl_all.columns:
            continue
        mi = t.metric(pm)
        sign = 1.0 if mi.higher_is_better else -1.0
        base_all, label = base_rows(ok, str(task), abl_all)
        for sp, abl_sp in abl_all.groupby("size_point", sort=True):
            base_sp = base_all[base_all["size_point"] == sp]
            if base_sp.empty:
                continue
            base, abl, hp, hp_note = _pair(base_sp, abl_sp, pm, mi.higher_is_better)
            both = pd.concat([base.assign(arm="base"), abl.assign(arm="ablation")])
            values, looks = per_seed(both, pm, by="arm")
            pair = values[["base", "ablation"]].dropna()
            lk = looks.loc[pair.index, ["base", "ablation"]].max(axis=1).to_numpy()
            e = sign * (pair["ablation"] - pair["base"]).to_numpy()
            thr = t.threshold(pm, float(pair["base"].mean()) if len(pair) else np.nan)
            hi = threshold_test(e, thr, lk, design, alpha)   # p_above: better; p_below: within (upper side)
            lo = threshold_test(e, -thr, lk, design, alpha)  # p_below: worse; p_above: within (lower side)
            d_lo, d_hi = sorted((sign * hi.ci_low, sign * hi.ci_high))
            row = dict(task=task, size_point=sp, ablation=name, base=label, hp_point=hp, metric=pm, n=hi.n,
                       mean_base=float(pair["base"].mean()), mean_ablation=float(pair["ablation"].mean()),
                       diff=sign * hi.mean, diff_ci_low=d_lo, diff_ci_high=d_hi, effect=hi.mean, threshold=thr,
                       higher_is_better=mi.higher_is_better, test=hi.test, p_worse=lo.p_below, p_better=hi.p_above,
                       p_within=max(hi.p_below, lo.p_above) if thr > 0 else np.nan,
                       note="; ".join(x for x in (hi.note, hp_note) if x), _tests=(lo, hi))
            for c in RATIO_COSTS:
                a, b = (abl[c].mean(), base[c].mean()) if c in both.columns else (np.nan, np.nan)
                row[f"{c}_ratio"] = a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else np.nan
            out.append(row)
    res = pd.DataFrame(out, columns=[c for c in ABLATION_COLUMNS if not c.endswith("_holm")
                                     and c not in ("decision", "seeds_needed", "advice", "summary")] + ["_tests"])
    return _decide(res, suite, alpha)[ABLATION_COLUMNS]


def _decide(res: pd.DataFrame, suite: ResultsSuite, alpha: float) -> pd.DataFrame:
    for fam in ("worse", "better", "within"):
        res[f"p_{fam}_holm"] = holm(res[f"p_{fam}"].to_numpy())
    m = {fam: max(1, int(res[f"p_{fam}"].notna().sum())) for fam in ("worse", "better", "within")}
    decisions, needs, advice = [], [], []
    for r, (lo, hi) in zip(res.itertuples(), res["_tests"]):
        if r.p_worse_holm < alpha:
            d = "worse"
        elif r.p_better_holm < alpha:
            d = "better"
        else:
            d = decide(np.nan, r.p_within_holm, hi.note, alpha)
        decisions.append(d)
        if d in ("worse", "better", "within"):
            needs.append(np.nan)
            advice.append("")
            continue
        toward, t = (("better", hi) if r.effect > r.threshold else ("worse", lo) if r.effect < -r.threshold
                     else ("within", hi if r.effect >= 0 else lo))
        k, text = seeds_advice(t, alpha / m[toward])
        needs.append(np.nan if k is None else k)
        advice.append(text)
    res["decision"], res["seeds_needed"], res["advice"] = decisions, needs, advice
    res["summary"] = [ablation_summary(r, suite) for _, r in res.iterrows()]
    return res.drop(columns="_tests")


def _x(v: float) -> str:
    return f"{v:.3g}" if np.isfinite(v) else "n/a"


def ablation_summary(r: pd.Series, suite: ResultsSuite) -> str:
    """One line: what removing or changing the component did to quality, with its error control, and the cost."""
    unit = suite.task(str(r["task"])).metric(str(r["metric"])).unit
    u = f" {unit}" if unit else ""
    where = size_label(str(r["size_point"]))
    head = f"{r['ablation']} vs {r['base']}{' at ' + where if where else ''}"
    size = f"{abs(r['diff']):.3g}{u} {'better' if r['effect'] > 0 else 'worse'} than {r['base']}"
    ci = f" [{_x(r['diff_ci_low'])}, {_x(r['diff_ci_high'])}]" if np.isfinite(r["diff_ci_low"]) else ""
    ev = f"n={int(r['n'])}, {r['test']}"
    d = r["decision"]
    if d == "worse":
        what = (f"{size}{ci}, beyond the threshold {_x(r['threshold'])}{u} (Holm p={_x(r['p_worse_holm'])}, {ev}): "
                "the component matters for quality")
    elif d == "better":
        what = (f"{size}{ci}, beyond the threshold {_x(r['threshold'])}{u} (Holm p={_x(r['p_better_holm'])}, {ev}): "
                "the ablation improves quality")
    elif d == "within":
        what = (f"within ±{_x(r['threshold'])}{u} of {r['base']} ({size}{ci}; TOST Holm p={_x(r['p_within_holm'])}, "
                f"{ev}): the component is not needed for quality")
    elif d == N_TOO_SMALL:
        what = f"{size}{ci} ({ev}): {r['advice']}"
    else:
        what = f"undecided ({size}{ci}, {ev}): {r['advice']}"
    costs = [f"{COST_COLUMNS[c][0]} {r[f'{c}_ratio']:.2f}x" for c in RATIO_COSTS if np.isfinite(r[f"{c}_ratio"])]
    cost = f"; cost vs {r['base']}: " + ", ".join(costs) if costs else ""
    note = f" ({r['note']})" if r["note"] and r["note"] != N_TOO_SMALL else ""
    return f"{head}: {what}{cost}.{note}"
