"""``suite.json``: what a report needs to read a results folder without importing any model code."""

from __future__ import annotations

from typing import Any

from harness.config.claim_checks import claims_meta
from harness.config.load import Suite


def suite_meta(suite: Suite) -> dict[str, Any]:
    tasks = {}
    for task in suite.tasks:
        fam = task.family
        metrics = {
            name: {"higher_is_better": spec.higher_is_better, "unit": spec.unit, "primary": spec.primary}
            for name, spec in fam.metrics.items()
            if name in task.metrics
        }
        primary = next((n for n, m in metrics.items() if m["primary"]), next(iter(metrics), None))
        tasks[task.entry.name] = {
            "family": fam.name,
            "dataset": task.entry.dataset,
            "description": task.entry.description,
            "causal": bool(fam.causal),
            "primary_metric": primary,
            "metrics": metrics,
            "verdict": task.entry.verdict.model_dump(),
            "sweep_keys": list(task.sweep),
            "factor_keys": list(task.entry.factors),
            "variants": [v.name for v in task.variants],
            "claims": claims_meta(task),
        }
    return {"suite": suite.name, "description": suite.description, "seeds": list(suite.seeds), "tasks": tasks}
