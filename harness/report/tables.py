"""The report's tables: one function a table, each a DataFrame of display strings for one task or section."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report import figures as F
from harness.report.ablations import RATIO_COSTS, base_rows
from harness.report.analysis import Analysis
from harness.report.claims import UNDECIDED, ClaimResult
from harness.report.format import fmt_mean_ci, fmt_num
from harness.report.load import COST_COLUMNS, RUN_KEY, metric_columns
from harness.report.paired import MAIN_ABLATIONS, select_configs, size_label
from harness.report.papers import refs_for_task
from harness.report.stats import mean_ci

TABLE_COSTS = ["params", "flops_fwd", "latency_ms_p50", "train_step_ms_p50", "peak_mem_mb_infer",
               "peak_mem_mb_train"]


def results_table(an: Analysis, task: str) -> pd.DataFrame:
    """Mean ± CI half-width per variant x size point (selected hyper-parameters, no ablations)."""
    t = an.suite.task(task)
    s = an.summary[(an.summary["task"] == task) & an.summary["ablation"].isin(MAIN_ABLATIONS)]
    sel = select_configs(an.df[an.df["task"] == task], an.suite)
    chosen = set(zip(sel["variant"], sel["size_point"], sel["hp_point"]))
    s = s[[k in chosen for k in zip(s["variant"], s["size_point"], s["hp_point"])]]
    if s.empty:
        return pd.DataFrame()
    mcols = [m for m in metric_columns(an.df[an.df["task"] == task], t) if m in set(s["column"])]
    ccols = [c for c in TABLE_COSTS if c in set(s["column"])]
    rows = []
    for (var, sp, hp), g in s.groupby(["variant", "size_point", "hp_point"], sort=False):
        gi = g.set_index("column")
        row = {"variant": var, "SSM": "yes" if bool(g["is_ssm"].iloc[0]) else "no"}
        if (s["size_point"] != "{}").any():
            row["size"] = size_label(sp)
        if (s["hp_point"] != "{}").any():
            row["hyper-parameters (best)"] = size_label(hp)
        row["n seeds"] = int(gi["n"].max())
        for c in mcols + ccols:
            if c in gi.index:
                r = gi.loc[c]
                unit = t.metric(c).unit if c in mcols else COST_COLUMNS[c][1]
                name = (c + (" ↑" if t.metric(c).higher_is_better else " ↓")) if c in mcols else COST_COLUMNS[c][0]
                row[f"{name} ({unit})" if unit else name] = fmt_mean_ci(r["mean"], r["ci_low"], r["ci_high"])
        row["CI"] = ",".join(sorted(set(g["ci_method"])))
        rows.append((g["size"].iloc[0], var, row))
    rows.sort(key=lambda x: (np.nan_to_num(x[0], nan=-1), x[1]))
    return pd.DataFrame([r for _, _, r in rows]).fillna("")


def comparison_table(an: Analysis, task: str) -> pd.DataFrame:
    c = an.comparisons[an.comparisons["task"] == task]
    c = c.sort_values(["size", "variant_a", "variant_b"], kind="mergesort")
    if c.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "size": [size_label(s) for s in c["size_point"]],
        "A": c["variant_a"], "B": c["variant_b"], "metric": c["metric"], "n pairs": c["n"],
        "A − B (mean)": [fmt_num(x) for x in c["diff"]],
        "95% CI": [f"[{fmt_num(lo)}, {fmt_num(hi)}]" if np.isfinite(lo) else "" for lo, hi in
                   zip(c["diff_ci_low"], c["diff_ci_high"])],
        "A better by": [fmt_num(x) for x in c["adv"]],
        "threshold": [fmt_num(x) for x in c["threshold"]],
        "test": c["test"] + np.where(c["looks"] > 1, [f", {k} looks" for k in c["looks"]], ""),
        "p A better beyond (Holm)": [fmt_num(x) for x in c["p_better_holm"]],
        "p B within (Holm)": [fmt_num(x) for x in c["p_within_holm"]],
        "decision": c["decision"], "what would decide it": c["advice"],
    })
    if (out["size"] == "").all():
        out = out.drop(columns="size")
    return out


def claims_table(claims: list[ClaimResult]) -> pd.DataFrame:
    """One row per claim: the finding, its outcome, the evidence (estimate, CI, test, n) and what would decide it."""
    rows = []
    for r in claims:
        c = r.check
        ci = f" [{fmt_num(c.ci_low)}, {fmt_num(c.ci_high)}]" if np.isfinite(c.ci_low) else ""
        rows.append({"id": r.id, "task": r.task, "source": r.source, "claim": r.claim, "outcome": r.outcome,
                     "evidence": f"{fmt_num(c.estimate) or 'n/a'}{ci}; {c.test or 'no test'}, n={c.n}; Holm p reproduced "
                                 f"{fmt_num(r.p_repro_holm)}, contradicted {fmt_num(r.p_contra_holm)}. {c.evidence}",
                     "what would decide it": c.advice if r.outcome == UNDECIDED else ""})
    return pd.DataFrame(rows)


def ablation_rows(an: Analysis, task: str, ab: pd.DataFrame) -> pd.DataFrame:
    """The runs the ablation table compared (each ablation and its base), at the largest size, for the figure."""
    ok = an.df[an.df["status"] == "ok"]
    parts = []
    for r in ab.itertuples():
        abl = ok[(ok["task"] == task) & (ok["ablation"] == r.ablation) & (ok["size_point"] == r.size_point)]
        base, _ = base_rows(ok, task, abl)
        parts.append(abl[abl["hp_point"] == r.hp_point])
        parts.append(base[(base["size_point"] == r.size_point) & (base["hp_point"] == r.hp_point)].assign(ablation="base"))
    data = pd.concat(parts).drop_duplicates(subset=RUN_KEY)
    return data[data["size"] == data["size"].max()] if data["size"].notna().any() else data


def learned_table(an: Analysis, task: str) -> pd.DataFrame:
    lt = an.evidence.learned[an.evidence.learned["task"] == task]
    if lt.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "size": [size_label(s) for s in lt["size_point"]], "variant": lt["variant"], "n": lt["n"],
        lt["metric"].iloc[0]: [fmt_num(x) for x in lt["mean"]], "trivial baseline": [fmt_num(x) for x in lt["baseline"]],
        "baseline kind": lt["baseline_kind"], "test": lt["test"], "p (Holm)": [fmt_num(x) for x in lt["p_holm"]],
        "learned": ["yes" if x else "no" for x in lt["learned"]], "what would decide it": lt["advice"],
    })
    return out.drop(columns="size") if (out["size"] == "").all() else out


def ablations_table(ab: pd.DataFrame, unit: str) -> pd.DataFrame:
    u = f" ({unit})" if unit else ""
    out = pd.DataFrame({
        "size": [size_label(s) for s in ab["size_point"]], "ablation": ab["ablation"], "base": ab["base"],
        "n pairs": ab["n"], f"ablation − base{u}": [fmt_num(x) for x in ab["diff"]],
        "95% CI": [f"[{fmt_num(lo)}, {fmt_num(hi)}]" if np.isfinite(lo) else "" for lo, hi in
                   zip(ab["diff_ci_low"], ab["diff_ci_high"])],
        "threshold": [fmt_num(x) for x in ab["threshold"]], "test": ab["test"],
        "p worse (Holm)": [fmt_num(x) for x in ab["p_worse_holm"]], "p better (Holm)": [fmt_num(x) for x in ab["p_better_holm"]],
        "p within (Holm)": [fmt_num(x) for x in ab["p_within_holm"]], "decision": ab["decision"],
        **{f"{COST_COLUMNS[c][0]} ratio": [f"{x:.2f}x" if np.isfinite(x) else "" for x in ab[f"{c}_ratio"]]
           for c in RATIO_COSTS},
    })
    return out.drop(columns="size") if (out["size"] == "").all() else out


def budget_table(an: Analysis, task: str) -> pd.DataFrame:
    b = an.budget[an.budget["task"] == task]
    if b.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "size": [size_label(s) for s in b["size_point"]], "variant": b["variant"], "metric": b["metric"],
        "grid points": b["grid_points"], "trials": b["trials"], "best of grid": [fmt_num(x) for x in b["best"]],
        "best at": [size_label(h) for h in b["best_hp"]], "median of grid": [fmt_num(x) for x in b["median"]],
        "unequal trials": ["YES" if u else "no" for u in b["unequal_trials"]],
    })
    return out.drop(columns="size") if (out["size"] == "").all() else out


def crossover_table(an: Analysis, task: str) -> pd.DataFrame:
    c = an.scaling.crossovers
    c = c[c["task"] == task] if len(c) else c
    if c.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "cost": [F.axis_label(m) for m in c["metric"]], "A": c["variant_a"], "B": c["variant_b"],
        "result": c["status"], "crossover": [fmt_num(x) for x in c["crossover"]],
        "95% CI": [f"{fmt_num(lo)} – {fmt_num(hi)}" if np.isfinite(lo) else "" for lo, hi in zip(c["ci_low"], c["ci_high"])],
        "summary": c["summary"], "fit A": c["fit_a"], "fit B": c["fit_b"],
    })


def papers_table(an: Analysis, task: str) -> pd.DataFrame:
    t = an.suite.task(task)
    refs = refs_for_task(an.refs, task, t.family)
    if refs.empty:
        return pd.DataFrame()
    selected = select_configs(an.df[an.df["task"] == task], an.suite)
    ours = []
    for r in refs.itertuples():
        sel = selected
        if r.variant:
            sel = sel[(sel["variant"] == r.variant) | (sel["mixer"] == r.variant)]
        if r.size is not None and not pd.isna(r.size):
            sel = sel[np.isclose(sel["size"].astype(float), float(r.size))]
        elif len(sel) and sel["size"].notna().any():
            sel = sel[sel["size"] == sel["size"].max()]
        if r.metric in COST_COLUMNS and not (r.variant and r.size is not None and not pd.isna(r.size)):
            ours.append("not comparable (a cost needs the entry's variant and size)")
        elif r.metric in sel.columns and sel[r.metric].notna().any():
            means = sel.groupby("variant")[r.metric].mean().dropna()
            hib = t.metric(r.metric).higher_is_better
            best = means.idxmax() if hib else means.idxmin()
            ours.append(f"{fmt_num(means[best])} ({best})")
        else:
            ours.append("not measured")
    return pd.DataFrame({"paper": refs["paper"], "arXiv": refs["arxiv"], "table": refs["table"],
                         "model": refs["model"], "metric": refs["metric"],
                         "paper value": [f"{fmt_num(v)} {u}".strip() for v, u in zip(refs["value"], refs["unit"])],
                         "ours (best variant)": ours, "hardware": refs["hardware"], "note": refs["note"]})


def status_table(df: pd.DataFrame) -> pd.DataFrame:
    bad = df[df["status"] != "ok"]
    if bad.empty:
        return pd.DataFrame()
    return pd.DataFrame({"task": bad["task"], "variant": bad["variant"], "seed": bad["seed"],
                         "sweep": [size_label(s) if s != "{}" else "" for s in bad["sweep"]],
                         "ablation": bad["ablation"], "status": bad["status"].str.upper(),
                         "error": [str(e)[:160] if isinstance(e, str) else "" for e in bad.get("error", "")]})


def status_counts(df: pd.DataFrame) -> pd.DataFrame:
    c = df.groupby(["task", "variant", "status"]).size().unstack("status", fill_value=0)
    return c.reset_index()


def provenance_table(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["git_commit", "harness_version", "torch_version", "cuda_version", "mamba_ssm_version", "triton_version",
            "gpu_name", "device", "train_precision", "measure_dtype", "backend"]
    rows = []
    for c in cols:
        if c in df.columns:
            vals = sorted({str(v) for v in df[c].dropna().unique() if str(v) not in ("", "nan")})
            if vals:
                rows.append({"field": c, "values": ", ".join(vals[:8]) + (" ..." if len(vals) > 8 else "")})
    if "started_at" in df.columns and df["started_at"].notna().any():
        s = df["started_at"].dropna().astype(str)
        rows.append({"field": "started_at", "values": f"{s.min()} … {s.max()}"})
    return pd.DataFrame(rows)



def pareto_points(an: Analysis, task: str) -> pd.DataFrame:
    t = an.suite.task(task)
    pm = t.primary_metric
    sel = select_configs(an.df[an.df["task"] == task], an.suite)
    if sel.empty or pm not in sel.columns:
        return pd.DataFrame()
    if sel["size"].notna().any():
        sel = sel[sel["size"] == sel["size"].max()]
    rows = []
    for var, g in sel.groupby("variant"):
        m, _, lo, hi, _ = mean_ci(g[pm])
        row = dict(variant=var, is_ssm=bool(g["is_ssm"].iloc[0]), y=m, y_lo=lo, y_hi=hi)
        for c in ("flops_fwd", "latency_ms_p50"):
            row[c] = g[c].mean() if c in g.columns else np.nan
        rows.append(row)
    return pd.DataFrame(rows)

