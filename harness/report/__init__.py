"""Comparison reports, statistics, scaling crossovers and the "does this task need an SSM?" verdict.

Reads stored results only (``RESULTS_DIR/results.parquet`` + ``suite.json``); never imports models,
kernels or families.

    from harness.report import build_report, compare_dirs
    build_report("results/my_suite", fmt="html")        # -> results/my_suite/report.html
    compare_dirs("results/old", "results/new")          # -> DataFrame with a `regression` column

Modules: ``load`` (read + normalise), ``stats`` (mean/std/CI, slopes over a sweep), ``sequential``
(one-sided tests at a threshold with error control for fixed or sequential seeds, seeds advice, the
design file), ``paired`` (paired comparisons, Holm, equal budget), ``baseline`` (did a variant beat its
trivial baseline), ``recommend`` (the cheapest adequate variant), ``verdict`` (decision rule, open
items), ``claims`` and ``claim_checks`` (a paper's findings checked: reproduced / contradicted / undecided), ``ablations`` (each ablation against its base), ``crossover`` (scaling fits, crossovers),
``figures``, ``render`` (HTML/Markdown), ``compare`` (regressions between two folders), ``papers``
(reference numbers), ``cli`` (entry points).
"""

from __future__ import annotations

from harness.report.cli import cli_claims, cli_compare, cli_report


def build_report(*args, **kwargs):
    """See :func:`harness.report.render.build_report`."""
    from harness.report.render import build_report as _b
    return _b(*args, **kwargs)


def compare_dirs(*args, **kwargs):
    """See :func:`harness.report.compare.compare_dirs`."""
    from harness.report.compare import compare_dirs as _c
    return _c(*args, **kwargs)


def verdict_rule_markdown() -> str:
    from harness.report.verdict import verdict_rule_markdown as _v
    return _v()


__all__ = ["build_report", "compare_dirs", "cli_report", "cli_claims", "cli_compare", "verdict_rule_markdown"]
