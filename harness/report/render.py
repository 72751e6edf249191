"""Build the comparison report: one self-contained HTML file, or Markdown with PNG figures beside it.

``build_report(results_dir, fmt="html" | "md", baseline=None, out=None) -> Path``

The report is first assembled as a list of blocks (headings, paragraphs, lists, tables, figures) and
then written by one of two small renderers, so HTML and Markdown always carry the same content.
The HTML embeds figures as base64 PNG and its CSS inline: it loads no external asset.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.report import figures as F
from harness.report.compare import compare_dirs
from harness.report.crossover import DEFAULT_COSTS, N_BOOT, ScalingResult, analyze_scaling
from harness.report.load import COST_COLUMNS, RUN_KEY, Suite, incomplete_flops, load_results, metric_columns
from harness.report.ablations import RATIO_COSTS, ablation_table, base_rows
from harness.report.claims import REPRODUCED, UNDECIDED, ClaimResult, evaluate_claims
from harness.report.paired import MAIN_ABLATIONS, equal_budget, select_configs, size_label
from harness.report.papers import load_paper_refs, refs_for_task
from harness.report.sequential import SequentialDesign, read_design
from harness.report.stats import summarize
from harness.report.verdict import (COST_ONLY, INCONCLUSIVE, NEEDED, NOT_NEEDED, Evidence, TaskVerdict,
                                    gather_evidence, open_items, task_verdicts, verdict_rule_markdown,
                                    verdict_table)

TABLE_COSTS = ["params", "flops_fwd", "latency_ms_p50", "train_step_ms_p50", "peak_mem_mb_infer",
               "peak_mem_mb_train"]


# --------------------------------------------------------------------------------------------- blocks
@dataclass
class Block:
    kind: str                    # h1 h2 h3 p ul table fig md verdict
    text: str = ""
    items: list = field(default_factory=list)
    table: pd.DataFrame | None = None
    png: bytes | None = None
    name: str = ""


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return F._si(float(x)) if abs(x) >= 1e4 else str(int(x))
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return ""
        if abs(x) >= 1e4:
            return F._si(float(x))
        if x != 0 and abs(x) < 1e-3:
            return f"{x:.2e}"
        return f"{x:.{digits}g}"
    return str(x)


def _pm(mean, lo, hi) -> str:
    if not np.isfinite(mean):
        return ""
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{_fmt(mean)} ± {_fmt((hi - lo) / 2, 2)}"
    return _fmt(mean)


# ------------------------------------------------------------------------------------------- analysis
@dataclass
class Analysis:
    results_dir: Path
    df: pd.DataFrame
    suite: Suite
    summary: pd.DataFrame
    evidence: Evidence
    budget: pd.DataFrame
    verdicts: list[TaskVerdict]
    scaling: ScalingResult
    refs: pd.DataFrame
    ablations: pd.DataFrame
    design: SequentialDesign | None = None
    baseline: pd.DataFrame | None = None
    baseline_dir: Path | None = None
    claims: list[ClaimResult] = field(default_factory=list)

    @property
    def comparisons(self) -> pd.DataFrame:
        return self.evidence.comparisons


def analyze(results_dir: str | Path, baseline: str | Path | None = None, papers_dir=None,
            n_boot: int = N_BOOT) -> Analysis:
    """Load a results folder and compute everything the report shows."""
    df, suite = load_results(results_dir)
    design = read_design(results_dir)
    ev = gather_evidence(df, suite, design)
    verdicts = task_verdicts(df, suite, evidence=ev)
    scaling = analyze_scaling(df, suite, n_boot=n_boot)
    summary = summarize(df, suite)
    base = compare_dirs(baseline, results_dir) if baseline is not None else None
    return Analysis(Path(results_dir), df, suite, summary, ev, equal_budget(df, suite), verdicts, scaling,
                    load_paper_refs(papers_dir), ablation_table(df, suite, design), design, base,
                    Path(baseline) if baseline is not None else None, evaluate_claims(df, suite, design))


# --------------------------------------------------------------------------------------------- tables
def _results_table(an: Analysis, task: str) -> pd.DataFrame:
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
                row[f"{name} ({unit})" if unit else name] = _pm(r["mean"], r["ci_low"], r["ci_high"])
        row["CI"] = ",".join(sorted(set(g["ci_method"])))
        rows.append((g["size"].iloc[0], var, row))
    rows.sort(key=lambda x: (np.nan_to_num(x[0], nan=-1), x[1]))
    return pd.DataFrame([r for _, _, r in rows]).fillna("")


def _comparison_table(an: Analysis, task: str) -> pd.DataFrame:
    c = an.comparisons[an.comparisons["task"] == task]
    c = c.sort_values(["size", "variant_a", "variant_b"], kind="mergesort")
    if c.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "size": [size_label(s) for s in c["size_point"]],
        "A": c["variant_a"], "B": c["variant_b"], "metric": c["metric"], "n pairs": c["n"],
        "A − B (mean)": [_fmt(x) for x in c["diff"]],
        "95% CI": [f"[{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(lo) else "" for lo, hi in
                   zip(c["diff_ci_low"], c["diff_ci_high"])],
        "A better by": [_fmt(x) for x in c["adv"]],
        "threshold": [_fmt(x) for x in c["threshold"]],
        "test": c["test"] + np.where(c["looks"] > 1, [f", {k} looks" for k in c["looks"]], ""),
        "p A better beyond (Holm)": [_fmt(x) for x in c["p_better_holm"]],
        "p B within (Holm)": [_fmt(x) for x in c["p_within_holm"]],
        "decision": c["decision"], "what would decide it": c["advice"],
    })
    if (out["size"] == "").all():
        out = out.drop(columns="size")
    return out


def _claims_table(claims: list[ClaimResult]) -> pd.DataFrame:
    """One row per claim: the finding, its outcome, the evidence (estimate, CI, test, n) and what would decide it."""
    rows = []
    for r in claims:
        c = r.check
        ci = f" [{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]" if np.isfinite(c.ci_low) else ""
        rows.append({"id": r.id, "task": r.task, "source": r.source, "claim": r.claim, "outcome": r.outcome,
                     "evidence": f"{_fmt(c.estimate) or 'n/a'}{ci}; {c.test or 'no test'}, n={c.n}; Holm p reproduced "
                                 f"{_fmt(r.p_repro_holm)}, contradicted {_fmt(r.p_contra_holm)}. {c.evidence}",
                     "what would decide it": c.advice if r.outcome == UNDECIDED else ""})
    return pd.DataFrame(rows)


def _ablation_rows(an: Analysis, task: str, ab: pd.DataFrame) -> pd.DataFrame:
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


def _learned_table(an: Analysis, task: str) -> pd.DataFrame:
    lt = an.evidence.learned[an.evidence.learned["task"] == task]
    if lt.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "size": [size_label(s) for s in lt["size_point"]], "variant": lt["variant"], "n": lt["n"],
        lt["metric"].iloc[0]: [_fmt(x) for x in lt["mean"]], "trivial baseline": [_fmt(x) for x in lt["baseline"]],
        "baseline kind": lt["baseline_kind"], "test": lt["test"], "p (Holm)": [_fmt(x) for x in lt["p_holm"]],
        "learned": ["yes" if x else "no" for x in lt["learned"]], "what would decide it": lt["advice"],
    })
    return out.drop(columns="size") if (out["size"] == "").all() else out


def _ablations_table(ab: pd.DataFrame, unit: str) -> pd.DataFrame:
    u = f" ({unit})" if unit else ""
    out = pd.DataFrame({
        "size": [size_label(s) for s in ab["size_point"]], "ablation": ab["ablation"], "base": ab["base"],
        "n pairs": ab["n"], f"ablation − base{u}": [_fmt(x) for x in ab["diff"]],
        "95% CI": [f"[{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(lo) else "" for lo, hi in
                   zip(ab["diff_ci_low"], ab["diff_ci_high"])],
        "threshold": [_fmt(x) for x in ab["threshold"]], "test": ab["test"],
        "p worse (Holm)": [_fmt(x) for x in ab["p_worse_holm"]], "p better (Holm)": [_fmt(x) for x in ab["p_better_holm"]],
        "p within (Holm)": [_fmt(x) for x in ab["p_within_holm"]], "decision": ab["decision"],
        **{f"{COST_COLUMNS[c][0]} ratio": [f"{x:.2f}x" if np.isfinite(x) else "" for x in ab[f"{c}_ratio"]]
           for c in RATIO_COSTS},
    })
    return out.drop(columns="size") if (out["size"] == "").all() else out


def _budget_table(an: Analysis, task: str) -> pd.DataFrame:
    b = an.budget[an.budget["task"] == task]
    if b.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "size": [size_label(s) for s in b["size_point"]], "variant": b["variant"], "metric": b["metric"],
        "grid points": b["grid_points"], "trials": b["trials"], "best of grid": [_fmt(x) for x in b["best"]],
        "best at": [size_label(h) for h in b["best_hp"]], "median of grid": [_fmt(x) for x in b["median"]],
        "unequal trials": ["YES" if u else "no" for u in b["unequal_trials"]],
    })
    return out.drop(columns="size") if (out["size"] == "").all() else out


def _crossover_table(an: Analysis, task: str) -> pd.DataFrame:
    c = an.scaling.crossovers
    c = c[c["task"] == task] if len(c) else c
    if c.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "cost": [F.axis_label(m) for m in c["metric"]], "A": c["variant_a"], "B": c["variant_b"],
        "result": c["status"], "crossover": [_fmt(x) for x in c["crossover"]],
        "95% CI": [f"{_fmt(lo)} – {_fmt(hi)}" if np.isfinite(lo) else "" for lo, hi in zip(c["ci_low"], c["ci_high"])],
        "summary": c["summary"], "fit A": c["fit_a"], "fit B": c["fit_b"],
    })


def _papers_table(an: Analysis, task: str) -> pd.DataFrame:
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
            ours.append(f"{_fmt(means[best])} ({best})")
        else:
            ours.append("not measured")
    return pd.DataFrame({"paper": refs["paper"], "arXiv": refs["arxiv"], "table": refs["table"],
                         "model": refs["model"], "metric": refs["metric"],
                         "paper value": [f"{_fmt(v)} {u}".strip() for v, u in zip(refs["value"], refs["unit"])],
                         "ours (best variant)": ours, "hardware": refs["hardware"], "note": refs["note"]})


def _status_table(df: pd.DataFrame) -> pd.DataFrame:
    bad = df[df["status"] != "ok"]
    if bad.empty:
        return pd.DataFrame()
    return pd.DataFrame({"task": bad["task"], "variant": bad["variant"], "seed": bad["seed"],
                         "sweep": [size_label(s) if s != "{}" else "" for s in bad["sweep"]],
                         "ablation": bad["ablation"], "status": bad["status"].str.upper(),
                         "error": [str(e)[:160] if isinstance(e, str) else "" for e in bad.get("error", "")]})


def _status_counts(df: pd.DataFrame) -> pd.DataFrame:
    c = df.groupby(["task", "variant", "status"]).size().unstack("status", fill_value=0)
    return c.reset_index()


def _provenance(df: pd.DataFrame) -> pd.DataFrame:
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


# ------------------------------------------------------------------------------------------- figures
def _pareto_points(an: Analysis, task: str) -> pd.DataFrame:
    t = an.suite.task(task)
    pm = t.primary_metric
    sel = select_configs(an.df[an.df["task"] == task], an.suite)
    if sel.empty or pm not in sel.columns:
        return pd.DataFrame()
    if sel["size"].notna().any():
        sel = sel[sel["size"] == sel["size"].max()]
    from harness.report.stats import mean_ci
    rows = []
    for var, g in sel.groupby("variant"):
        m, _, lo, hi, _ = mean_ci(g[pm])
        row = dict(variant=var, is_ssm=bool(g["is_ssm"].iloc[0]), y=m, y_lo=lo, y_hi=hi)
        for c in ("flops_fwd", "latency_ms_p50"):
            row[c] = g[c].mean() if c in g.columns else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _task_blocks(an: Analysis, v: TaskVerdict, colors: dict, fig_idx: list) -> list[Block]:
    task = v.task
    t = an.suite.task(task)
    tdf = an.df[an.df["task"] == task]
    blocks = [Block("h2", f"Task: {task}" + (f" ({t.family})" if t.family else ""), name=f"task-{task}"),
              Block("verdict", v.verdict, items=[v.recommended or ""]), Block("ul", items=list(v.reasons))]

    def fig(figure, stem, alt):
        if figure is None:
            return
        fig_idx[0] += 1
        blocks.append(Block("fig", alt, png=F.to_png(figure), name=f"fig{fig_idx[0]:02d}_{_slug(task)}_{stem}.png"))

    rt = _results_table(an, task)
    if len(rt):
        blocks.append(Block("h3", "Results (mean ± 95% CI half-width over seeds)"))
        blocks.append(Block("table", table=rt))
        blocks.append(Block("p", "CI: t = Student-t interval (n < 10 seeds), bootstrap = percentile bootstrap "
                                 "(n ≥ 10), none = single run. ↑/↓: higher/lower is better."))
    incomplete = incomplete_flops(tdf)
    if incomplete:
        blocks.append(Block("p", "FLOPs incomplete (a lower bound, not used to rank variants): "
                                 + "; ".join(f"{v} ran {', '.join(ops)} without a FLOP formula" for v, ops in incomplete.items())
                                 + ". Give the mixer a closed form (MixerSpec.flops) or the op a formula."))
    ct = _comparison_table(an, task)
    if len(ct):
        blocks.append(Block("h3", "Paired comparisons (same seeds; Holm-corrected across the report)"))
        blocks.append(Block("table", table=ct))
        blocks.append(Block("p", "One-sided tests at the threshold (see the rule): 'better' = A better than B by more "
                                 "than the threshold; 'within' = B within the threshold of A, or better. Each is "
                                 "Holm-corrected in its own family; the CI is descriptive (not adjusted)."))
    lt = _learned_table(an, task)
    if len(lt):
        blocks.append(Block("h3", "Did each variant learn? (primary metric vs the task's trivial baseline)"))
        blocks.append(Block("table", table=lt))
    bt = _budget_table(an, task)
    if len(bt):
        blocks.append(Block("h3", "Equal tuning budget (hyper-parameter grid)"))
        blocks.append(Block("table", table=bt))
    pts = _pareto_points(an, task)
    if len(pts) and t.primary_metric:
        mi = t.metric(t.primary_metric)
        size = tdf.loc[tdf["status"] == "ok", "size"]
        at = f" at {tdf['size_key'].iloc[0].split('.')[-1]}={_fmt(size.max())}" if size.notna().any() else ""
        blocks.append(Block("h3", "Quality vs cost"))
        fig(F.pareto_figure(pts, t.primary_metric, mi.unit, mi.higher_is_better, colors,
                            f"{task}: {t.primary_metric} vs cost{at} (error bars: 95% CI; dashed: Pareto front)"),
            "pareto", f"{task}: quality vs cost")
    ok = select_configs(tdf, an.suite)
    if ok["size"].nunique() >= 2:
        size_key = ok["size_key"].iloc[0].split(".")[-1]
        blocks.append(Block("h3", f"Scaling with {size_key}"))
        fig(F.scaling_figure(ok, an.scaling.fits, an.scaling.crossovers, task, size_key, DEFAULT_COSTS, colors),
            "scaling", f"{task}: cost vs {size_key}")
        xt = _crossover_table(an, task)
        if len(xt):
            blocks.append(Block("table", table=xt))
        mets = []
        for m in [t.primary_metric, "gen_gap"] + [x for x in t.metrics if x != t.primary_metric]:
            if m and m in ok.columns and ok[m].notna().any() and m not in [x[0] for x in mets]:
                mets.append((m, t.metric(m).unit, t.metric(m).higher_is_better))
        fig(F.sweep_line_figure(ok, task, size_key, mets[:3], colors), "sweep", f"{task}: metrics vs {size_key}")
    pt = _papers_table(an, task)
    if len(pt):
        blocks.append(Block("h3", "Paper reference numbers"))
        blocks.append(Block("table", table=pt))
    return blocks


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", s)


def report_blocks(an: Analysis) -> list[Block]:
    df = an.df
    colors = F.palette(df["variant"].unique())
    n_ok = int((df["status"] == "ok").sum())
    title = f"Does this task need an SSM? — suite {an.suite.name}" if an.suite.name else "Does this task need an SSM?"
    blocks = [Block("h1", title),
              Block("p", f"Results: {an.results_dir} — {len(df)} runs ({n_ok} ok, {len(df) - n_ok} failed), "
                         f"{df['task'].nunique()} tasks, {df['variant'].nunique()} variants"
                         + (f" ({an.suite.superseded} older rows left out: a later config of the same run replaced them)"
                            if an.suite.superseded else "")
                         + f". Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}.")]
    blocks.extend(Block("p", f"Results version: {note}.") for note in an.suite.version_notes)
    if an.design is not None:
        blocks.append(Block("p", f"Seeds were added until decided (--max-seeds {an.design.max_seeds}, --seed-batch "
                                 f"{an.design.seed_batch}): every p-value is adjusted for the looks this design "
                                 "takes (see the rule)."))
    blocks.append(Block("h2", "Verdicts", name="verdicts"))
    vt = verdict_table(an.verdicts)
    blocks.append(Block("table", table=vt.rename(columns={"primary_metric": "primary metric"}), name="verdicts"))
    items = open_items(an.verdicts)
    if items:
        blocks.append(Block("h3", "Undecided: what would decide it"))
        blocks.append(Block("ul", items=[i.describe() for i in items]))
    if an.claims:
        blocks.append(Block("h2", "Claims", name="claims"))
        n_rep = sum(r.outcome == REPRODUCED for r in an.claims)
        blocks.append(Block("p", f"{n_rep} of {len(an.claims)} claims reproduced. Each claim of the suite (expect:) is "
                                 "checked on these runs: reproduced or contradicted when its one-sided test passes at "
                                 "0.05 after Holm over the report's claims, undecided otherwise (with what would decide "
                                 "it). Claims are their own multiplicity family: verdicts never read them, and a verdict "
                                 "claim applies the rule to its task's runs alone. The evidence of each lies in its "
                                 "task's section (linked from the task in HTML)."))
        blocks.append(Block("table", table=_claims_table(an.claims), name="claims"))
    blocks.append(Block("h2", "How the verdict is decided", name="rule"))
    rule = verdict_rule_markdown().strip().splitlines()
    blocks.append(Block("md", "\n".join(rule[1:] if rule and rule[0].startswith("#") else rule)))
    fig_idx = [0]
    for v in an.verdicts:
        blocks.extend(_task_blocks(an, v, colors, fig_idx))
    if len(an.ablations):
        blocks.append(Block("h2", "Ablations", name="ablations"))
        blocks.append(Block("p", "Each ablation against its base, paired by seed at the base's hyper-parameters: "
                                 "worse / better = beyond the threshold, within = inside ±threshold (two one-sided "
                                 "tests); each Holm-corrected over the report's ablations. Cost ratios: ablation / base."))
        for task, ab in an.ablations.groupby("task", sort=True):
            t = an.suite.task(str(task))
            mi = t.metric(t.primary_metric)
            blocks.append(Block("h3", f"{task}"))
            data = _ablation_rows(an, str(task), ab)
            f = F.ablation_figure(data, task, t.primary_metric, mi.unit, mi.higher_is_better, colors)
            if f is not None:
                fig_idx[0] += 1
                blocks.append(Block("fig", f"{task}: ablations", png=F.to_png(f),
                                    name=f"fig{fig_idx[0]:02d}_{_slug(task)}_ablation.png"))
            blocks.append(Block("table", table=_ablations_table(ab, mi.unit)))
            blocks.append(Block("ul", items=list(ab["summary"])))
    blocks.append(Block("h2", "Run status", name="status"))
    st = _status_table(df)
    if st.empty:
        blocks.append(Block("p", f"All {len(df)} runs finished with status ok."))
    else:
        blocks.append(Block("p", "Errors, out-of-memory and diverged runs are results: they are listed here "
                                 "and excluded from the statistics."))
        blocks.append(Block("table", table=_status_counts(df)))
        blocks.append(Block("table", table=st))
    if an.baseline is not None:
        blocks.append(Block("h2", f"Comparison with baseline {an.baseline_dir}", name="baseline"))
        b = an.baseline
        n_reg = int(b["regression"].sum())
        unlike = b["conditions"].astype(bool) & (b["kind"] != "missing")
        blocks.append(Block("p", f"{n_reg} regressions, {int(b['improved'].sum())} improvements over "
                                 f"{len(b[b['kind'] != 'missing'])} checks."
                                 + (f" {len(b.loc[unlike, RUN_KEY].drop_duplicates())} matched runs were measured under "
                                    "different conditions (column conditions): their changes are not like for like."
                                    if unlike.any() else "")))
        shown = b[b["regression"] | b["improved"]]
        if len(shown):
            cols = ["task", "variant", "seed", "metric", "old", "new", "rel_delta", "limit", "regression", "note"]
            tab = shown[cols + (["conditions"] if unlike.any() else [])].copy()
            tab["sweep"] = [size_label(s) for s in shown["sweep"]]
            for c in ("old", "new", "limit"):
                tab[c] = [_fmt(x) for x in tab[c]]
            tab["rel_delta"] = [f"{x:+.1%}" if np.isfinite(x) else "" for x in tab["rel_delta"]]
            tab["regression"] = ["REGRESSION" if r else "improved" for r in tab["regression"]]
            blocks.append(Block("table", table=tab))
    prov = _provenance(df)
    if len(prov):
        blocks.append(Block("h2", "Provenance", name="provenance"))
        blocks.append(Block("table", table=prov))
    return blocks


# ------------------------------------------------------------------------------------------ renderers
CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;margin:24px auto;max-width:1280px;
color:#1d1d1f;line-height:1.45;padding:0 16px}
h1{font-size:26px;border-bottom:2px solid #333;padding-bottom:6px}
h2{font-size:21px;margin-top:36px;border-bottom:1px solid #ccc;padding-bottom:4px}
h3{font-size:16px;margin-top:22px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 14px 0;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d0d0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f4;position:sticky;top:0}
tr:nth-child(even) td{background:#fafafa}
td.reasons{min-width:420px;max-width:680px;font-size:12.5px}
img{max-width:100%;height:auto;display:block;margin:10px 0 18px 0}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-weight:600;font-size:13px;white-space:nowrap}
.needed{background:#d9f2e0;color:#0d5a26}.notneeded{background:#e3ecfb;color:#123f84}
.inconclusive{background:#fdf1d6;color:#7a5200}.costonly{background:#ececec;color:#444}
.reproduced{background:#d9f2e0;color:#0d5a26}.contradicted{background:#fbe0e0;color:#8a1414}.undecided{background:#fdf1d6;color:#7a5200}
.rule{background:#f7f7f9;border:1px solid #e2e2e6;border-radius:6px;padding:4px 16px}
code{background:#eef;padding:0 3px;border-radius:3px;font-size:90%}
ul{margin-top:4px} li{margin:2px 0}
"""


def _badge(verdict: str) -> str:
    cls = {NEEDED: "needed", NOT_NEEDED: "notneeded", INCONCLUSIVE: "inconclusive",
           COST_ONLY: "costonly"}.get(verdict, "inconclusive")
    return f'<span class="badge {cls}">{html.escape(verdict)}</span>'


def _inline_md(text: str) -> str:
    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<i>\1</i>", s)
    return s


def md_to_html(md: str) -> str:
    """Tiny Markdown subset (headings, paragraphs, '-' lists, pipe tables, bold/italic/code) to HTML."""
    out, para, lst, tbl = [], [], [], []

    def flush():
        if para:
            out.append("<p>" + _inline_md(" ".join(para)) + "</p>")
            para.clear()
        if lst:
            out.append("<ul>" + "".join(f"<li>{_inline_md(i)}</li>" for i in lst) + "</ul>")
            lst.clear()
        if tbl:
            rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in tbl
                    if not re.match(r"^\|?\s*:?-{3,}", r.strip())]
            h = "".join(f"<th>{_inline_md(c)}</th>" for c in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{_inline_md(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
            out.append(f"<table><tr>{h}</tr>{body}</table>")
            tbl.clear()

    for line in md.splitlines():
        s = line.rstrip()
        if not s.strip():
            flush()
        elif s.startswith("#"):
            flush()
            level = min(len(s) - len(s.lstrip("#")), 4)
            out.append(f"<h{level}>{_inline_md(s.lstrip('#').strip())}</h{level}>")
        elif s.lstrip().startswith("|"):
            if para or lst:
                flush()
            tbl.append(s)
        elif s.lstrip().startswith("- "):
            if para or tbl:
                flush()
            lst.append(s.lstrip()[2:])
        elif lst and line.startswith("  "):
            lst[-1] += " " + s.strip()
        else:
            if lst or tbl:
                flush()
            para.append(s.strip())
    flush()
    return "\n".join(out)


def _html_table(df: pd.DataFrame, verdicts: bool = False, claims: bool = False) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            if verdicts and c == "verdict":
                cells.append(f"<td>{_badge(str(v))}</td>")
            elif claims and c == "outcome":
                cells.append(f'<td><span class="badge {html.escape(str(v))}">{html.escape(str(v))}</span></td>')
            elif (verdicts or claims) and c == "task":
                cells.append(f'<td><a href="#task-{html.escape(_slug(str(v)))}">{html.escape(str(v))}</a></td>')
            elif verdicts and c == "reasons":
                lines = "<br>".join(html.escape(x) for x in str(v).split("\n"))
                cells.append(f'<td class="reasons">{lines}</td>')
            else:
                cells.append(f"<td>{html.escape(_fmt(v) if not isinstance(v, str) else v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(blocks: list[Block]) -> str:
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            ident = f' id="{html.escape(_slug(b.name))}"' if b.name else ""
            body.append(f"<{b.kind}{ident}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "verdict":
            rec = f" — recommended: <b>{html.escape(b.items[0])}</b>" if b.items and b.items[0] else ""
            body.append(f"<p>Verdict: {_badge(b.text)}{rec}</p>")
        elif b.kind == "ul":
            body.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            body.append(_html_table(b.table, verdicts=b.name == "verdicts", claims=b.name == "claims"))
        elif b.kind == "fig":
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">')
        elif b.kind == "md":
            body.append(f'<div class="rule">{md_to_html(b.text)}</div>')
    title = next((b.text for b in blocks if b.kind == "h1"), "report")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _md_cell(v) -> str:
    s = v if isinstance(v, str) else _fmt(v)
    return s.replace("|", "\\|").replace("\n", "<br>")


def _md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(_md_cell(str(c)) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(_md_cell(r[c]) for c in df.columns) + " |" for _, r in df.iterrows()]
    return "\n".join([head, sep, *rows])


def render_markdown(blocks: list[Block], fig_dir: Path, rel: str) -> str:
    fig_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.text}")
        elif b.kind == "h2":
            out.append(f"## {b.text}")
        elif b.kind == "h3":
            out.append(f"### {b.text}")
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "verdict":
            rec = f" — recommended: **{b.items[0]}**" if b.items and b.items[0] else ""
            out.append(f"Verdict: **{b.text}**{rec}")
        elif b.kind == "ul":
            out.append("\n".join(f"- {i}" for i in b.items))
        elif b.kind == "table":
            out.append(_md_table(b.table))
        elif b.kind == "fig":
            (fig_dir / b.name).write_bytes(b.png)
            out.append(f"![{b.text}]({rel}/{b.name})")
        elif b.kind == "md":
            out.append(b.text.strip())
    return "\n\n".join(out) + "\n"


def build_report(results_dir: str | Path, fmt: str = "html", baseline: str | Path | None = None,
                 out: str | Path | None = None, papers_dir: str | Path | None = None,
                 n_boot: int = N_BOOT) -> Path:
    """Write the report and return its path.

    ``fmt="html"``: one self-contained file (default ``RESULTS_DIR/report.html``). ``fmt="md"``:
    Markdown (default ``RESULTS_DIR/report.md``) with its PNG figures in ``<name>_files/`` beside it.
    ``baseline``: another results folder to compare against (adds a regression section).
    ``papers_dir``: paper reference YAMLs (default ``baselines/papers``; skipped when absent).
    """
    return build_report_with_analysis(results_dir, fmt, baseline, out, papers_dir, n_boot)[0]


def _check_out(path: Path, fmt: str, fig_dir: Path) -> None:
    """Refuse an output path that cannot be written before the analysis, so nothing is left half-written."""
    from harness.store.store import check_writable_dir

    if path.is_dir():
        raise HarnessError(f"{path} is a folder; --out takes a file path, e.g. {path / f'report.{fmt}'}")
    if fmt == "md" and fig_dir.exists() and not fig_dir.is_dir():
        raise HarnessError(f"{fig_dir} (where the report's figures go) is a file; choose another --out")
    check_writable_dir(path.parent)


def build_report_with_analysis(results_dir, fmt="html", baseline=None, out=None, papers_dir=None,
                               n_boot: int = N_BOOT) -> tuple[Path, Analysis]:
    """:func:`build_report` that also returns the :class:`Analysis` (verdicts etc.) it rendered."""
    if fmt not in ("html", "md"):
        raise HarnessError(f"unknown report format {fmt!r} (use html or md)")
    path = Path(out) if out is not None else Path(results_dir) / f"report.{fmt}"
    fig_dir = path.parent / f"{path.stem}_files"
    _check_out(path, fmt, fig_dir)
    an = analyze(results_dir, baseline=baseline, papers_dir=papers_dir, n_boot=n_boot)
    blocks = report_blocks(an)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        path.write_text(render_html(blocks), encoding="utf-8")
    else:
        path.write_text(render_markdown(blocks, fig_dir, fig_dir.name), encoding="utf-8")
    return path, an


__all__ = ["build_report", "build_report_with_analysis", "analyze", "report_blocks", "render_html", "render_markdown", "md_to_html",
           "Analysis"]
