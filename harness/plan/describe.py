"""What a results folder records about its suite (``suite.json``): each task's family, metrics and their
directions, verdict thresholds and the roles of its sweep keys, so reports need no model code."""

from __future__ import annotations

from harness.config.claim_checks import claims_meta
from harness.config.load import Suite
from harness.store.results_format import MetricInfo, SuiteInfo, TaskInfo, guessed_size_key


def describe_suite(suite: Suite) -> SuiteInfo:
    tasks = {}
    for task in suite.tasks:
        fam, entry = task.family, task.entry
        metrics = {name: MetricInfo(name, spec.higher_is_better, spec.unit, spec.primary)
                   for name, spec in fam.metrics.items() if name in task.metrics}
        primary = next((n for n, m in metrics.items() if m.primary), next(iter(metrics), None))
        sizes = entry.sizes if entry.sizes is not None else [k for k in task.sweep if guessed_size_key(k)]
        tasks[entry.name] = TaskInfo(
            name=entry.name, family=fam.name, dataset=entry.dataset, description=entry.description,
            causal=bool(fam.causal), primary_metric=primary, metrics=metrics,
            thresholds=dict(entry.verdict.thresholds), relative=dict(entry.verdict.relative),
            sweep_keys=list(task.sweep), factor_keys=list(entry.factors), declared_size_keys=list(sizes),
            variants=[v.name for v in task.variants], claims=claims_meta(task),
        )
    return SuiteInfo(name=suite.name, tasks=tasks, description=suite.description, seeds=list(suite.seeds))
