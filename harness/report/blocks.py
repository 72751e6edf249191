"""The report as a list of blocks (headings, paragraphs, lists, tables, figures): one content, two renderers."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.report import figures as F
from harness.report.analysis import Analysis
from harness.report.claims import REPRODUCED
from harness.report.crossover import DEFAULT_COSTS
from harness.report.format import fmt_num, slug
from harness.report.load import RUN_KEY, incomplete_flops
from harness.report.paired import select_configs, size_label
from harness.report.tables import (ablation_rows, ablations_table, budget_table, claims_table, comparison_table,
                                   crossover_table, learned_table, papers_table, pareto_points, provenance_table,
                                   results_table, status_counts, status_table)
from harness.report.verdict import TaskVerdict, open_items, verdict_rule_markdown, verdict_table


@dataclass
class Block:
    kind: str                    # h1 h2 h3 p ul table fig md verdict
    text: str = ""
    items: list = field(default_factory=list)
    table: pd.DataFrame | None = None
    png: bytes | None = None
    name: str = ""


def task_blocks(an: Analysis, v: TaskVerdict, colors: dict, fig_idx: list) -> list[Block]:
    task = v.task
    t = an.suite.task(task)
    tdf = an.df[an.df["task"] == task]
    blocks = [Block("h2", f"Task: {task}" + (f" ({t.family})" if t.family else ""), name=f"task-{task}"),
              Block("verdict", v.verdict, items=[v.recommended or ""]), Block("ul", items=list(v.reasons))]

    def fig(figure, stem, alt):
        if figure is None:
            return
        fig_idx[0] += 1
        blocks.append(Block("fig", alt, png=F.to_png(figure), name=f"fig{fig_idx[0]:02d}_{slug(task)}_{stem}.png"))

    rt = results_table(an, task)
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
    ct = comparison_table(an, task)
    if len(ct):
        blocks.append(Block("h3", "Paired comparisons (same seeds; Holm-corrected across the report)"))
        blocks.append(Block("table", table=ct))
        blocks.append(Block("p", "One-sided tests at the threshold (see the rule): 'better' = A better than B by more "
                                 "than the threshold; 'within' = B within the threshold of A, or better. Each is "
                                 "Holm-corrected in its own family; the CI is descriptive (not adjusted)."))
    lt = learned_table(an, task)
    if len(lt):
        blocks.append(Block("h3", "Did each variant learn? (primary metric vs the task's trivial baseline)"))
        blocks.append(Block("table", table=lt))
    bt = budget_table(an, task)
    if len(bt):
        blocks.append(Block("h3", "Equal tuning budget (hyper-parameter grid)"))
        blocks.append(Block("table", table=bt))
    pts = pareto_points(an, task)
    if len(pts) and t.primary_metric:
        mi = t.metric(t.primary_metric)
        size = tdf.loc[tdf["status"] == "ok", "size"]
        at = f" at {tdf['size_key'].iloc[0].split('.')[-1]}={fmt_num(size.max())}" if size.notna().any() else ""
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
        xt = crossover_table(an, task)
        if len(xt):
            blocks.append(Block("table", table=xt))
        mets = []
        for m in [t.primary_metric, "gen_gap"] + [x for x in t.metrics if x != t.primary_metric]:
            if m and m in ok.columns and ok[m].notna().any() and m not in [x[0] for x in mets]:
                mets.append((m, t.metric(m).unit, t.metric(m).higher_is_better))
        fig(F.sweep_line_figure(ok, task, size_key, mets[:3], colors), "sweep", f"{task}: metrics vs {size_key}")
    pt = papers_table(an, task)
    if len(pt):
        blocks.append(Block("h3", "Paper reference numbers"))
        blocks.append(Block("table", table=pt))
    return blocks


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
        blocks.append(Block("table", table=claims_table(an.claims), name="claims"))
    blocks.append(Block("h2", "How the verdict is decided", name="rule"))
    rule = verdict_rule_markdown().strip().splitlines()
    blocks.append(Block("md", "\n".join(rule[1:] if rule and rule[0].startswith("#") else rule)))
    fig_idx = [0]
    for v in an.verdicts:
        blocks.extend(task_blocks(an, v, colors, fig_idx))
    if len(an.ablations):
        blocks.append(Block("h2", "Ablations", name="ablations"))
        blocks.append(Block("p", "Each ablation against its base, paired by seed at the base's hyper-parameters: "
                                 "worse / better = beyond the threshold, within = inside ±threshold (two one-sided "
                                 "tests); each Holm-corrected over the report's ablations. Cost ratios: ablation / base."))
        for task, ab in an.ablations.groupby("task", sort=True):
            t = an.suite.task(str(task))
            mi = t.metric(t.primary_metric)
            blocks.append(Block("h3", f"{task}"))
            data = ablation_rows(an, str(task), ab)
            f = F.ablation_figure(data, task, t.primary_metric, mi.unit, mi.higher_is_better, colors)
            if f is not None:
                fig_idx[0] += 1
                blocks.append(Block("fig", f"{task}: ablations", png=F.to_png(f),
                                    name=f"fig{fig_idx[0]:02d}_{slug(task)}_ablation.png"))
            blocks.append(Block("table", table=ablations_table(ab, mi.unit)))
            blocks.append(Block("ul", items=list(ab["summary"])))
    blocks.append(Block("h2", "Run status", name="status"))
    st = status_table(df)
    if st.empty:
        blocks.append(Block("p", f"All {len(df)} runs finished with status ok."))
    else:
        blocks.append(Block("p", "Errors, out-of-memory and diverged runs are results: they are listed here "
                                 "and excluded from the statistics."))
        blocks.append(Block("table", table=status_counts(df)))
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
                tab[c] = [fmt_num(x) for x in tab[c]]
            tab["rel_delta"] = [f"{x:+.1%}" if np.isfinite(x) else "" for x in tab["rel_delta"]]
            tab["regression"] = ["REGRESSION" if r else "improved" for r in tab["regression"]]
            blocks.append(Block("table", table=tab))
    prov = provenance_table(df)
    if len(prov):
        blocks.append(Block("h2", "Provenance", name="provenance"))
        blocks.append(Block("table", table=prov))
    return blocks

