"""Everything the report shows, computed once from a results folder (the renderers only lay it out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.report.ablations import ablation_table
from harness.report.claims import ClaimResult, evaluate_claims
from harness.report.compare import compare_dirs
from harness.report.crossover import N_BOOT, ScalingResult, analyze_scaling
from harness.report.load import ResultsSuite, load_results
from harness.report.paired import equal_budget
from harness.report.papers import load_paper_refs
from harness.report.sequential import SequentialDesign, read_design
from harness.report.stats import summarize
from harness.report.verdict import Evidence, TaskVerdict, gather_evidence, task_verdicts


@dataclass
class Analysis:
    results_dir: Path
    df: pd.DataFrame
    suite: ResultsSuite
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
