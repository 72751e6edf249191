"""Expand a suite into runs: task x variant x seed x sweep point, each with a deterministic id.

The id is a hash of the fully resolved configuration (data, model, train, measure, match, seed, sweep,
device), so rerunning a suite finds what is already done and any change to a run's config makes it new.
Fields added to a schema later are left out while at their default (``harness.config.identity``), and
the code's results version (``harness.versions``) travels beside the id, not in it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from harness.config.identity import id_dump
from harness.config.load import Suite, build_run_config, sweep_points
from harness.config.run_config import NOT_IDENTITY, MatchReference, RunConfig
from harness.config.sections import MatchConfig, MeasureConfig, TrainConfig
from harness.versions import results_version


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    run: RunConfig
    results_version: str = results_version(0)  # of the code that will run it; a stored row must match it
    plugin_code: tuple[str, ...] = ()  # plugin modules whose code it runs (variant, mixers, dataset): a default timeout

    @cached_property
    def config(self) -> dict[str, Any]:
        """The run's JSON: what the worker process receives and ``runs/<id>.json`` stores."""
        return self.run.to_json()

    @classmethod
    def from_json(cls, run_id: str, config: dict[str, Any]) -> "RunSpec":
        """A spec sent as JSON (to a Ray worker); its results version is checked by the driver only."""
        return cls(run_id=run_id, run=RunConfig.from_json(config))

    @property
    def label(self) -> str:
        r = self.run
        sweep = ",".join(f"{k.split('.')[-1]}={v}" for k, v in r.sweep.items())
        return f"{r.task}/{r.variant}/seed{r.seed}" + (f"[{sweep}]" if sweep else "")


def config_hash(config: dict[str, Any]) -> str:
    """16 hex digits of sha256 over the canonical JSON of the config (suite name and plugin list excluded)."""
    payload = {k: v for k, v in config.items() if k not in NOT_IDENTITY}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _matches(patterns: list[str], run: RunConfig) -> bool:
    names = (run.task, run.variant, f"{run.task}/{run.variant}")
    return any(fnmatch.fnmatch(n, p) for p in patterns for n in names)


def plan(suite: Suite, *, seeds: list[int] | None = None, only: str | None = None, device: str = "cpu") -> list[RunSpec]:
    """All runs of the suite in a stable order (task, sweep point, seed, variant).

    Variants of one seed sit next to each other so a partial suite still has complete pairings.
    """
    patterns = [p.strip() for p in only.split(",") if p.strip()] if only else []
    specs: list[RunSpec] = []
    for task in suite.tasks:
        fam = task.family
        data_schema = fam.datasets[task.entry.dataset].params
        for point in sweep_points(task.sweep):
            resolved, plugin_code = {}, {}
            for variant in task.variants:
                raw = build_run_config(task, variant, point)
                model = fam.ModelParams.model_validate(raw["model"])
                plugin_code[variant.name] = fam.plugin_sources(variant.uses, task.entry.dataset, model)
                resolved[variant.name] = {
                    "data": id_dump(data_schema.model_validate(raw["data"])),
                    "model": id_dump(model),
                    "train": TrainConfig.model_validate(raw["train"]),
                    "measure": MeasureConfig.model_validate(raw["measure"]),
                    "match": MatchConfig.model_validate(raw["match"]),
                }
            for seed in seeds if seeds is not None else suite.seeds:
                for variant in task.variants:
                    r = resolved[variant.name]
                    match = r["match"]
                    reference = None
                    if match.by != "none" and match.reference and match.reference != variant.name:
                        ref_variant = next(v for v in task.variants if v.name == match.reference)
                        reference = MatchReference(use=ref_variant.uses, model=resolved[ref_variant.name]["model"])
                    run = RunConfig(
                        suite=suite.name,
                        task=task.entry.name,
                        family=fam.name,
                        dataset=task.entry.dataset,
                        variant=variant.name,
                        use=variant.uses,
                        ablation=variant.ablation,
                        **r,
                        match_reference=reference,
                        metrics=task.metrics,
                        seed=seed,
                        sweep=point,
                        device=device,
                        distributed=task.entry.distributed,
                        plugins=suite.plugins,
                    )
                    if patterns and not _matches(patterns, run):
                        continue
                    specs.append(RunSpec(run_id=config_hash(run.to_json()), run=run, results_version=results_version(fam.results_version),
                                         plugin_code=plugin_code[variant.name]))
    return specs
