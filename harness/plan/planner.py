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
from harness.config.load import ResolvedTask, Suite, build_run_config, sweep_points
from harness.config.schema import VariantEntry
from harness.config.run_config import NOT_IDENTITY, MatchReference, RunConfig
from harness.config.sections import MatchConfig, MeasureConfig, TrainConfig
from harness.versions import results_version


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    run: RunConfig
    results_version: str = results_version(0)  # of the code that will run it; a stored row must match it
    plugin_code: tuple[str, ...] = ()  # plugin modules whose code it runs (variant, mixers, dataset): a default timeout
    look: int = 0  # ``--until-decided``: the look its seed was added at (0: a planned seed); not in the id
    ablation_base: tuple[str, str] | None = None  # an ablation's base: (variant label, task holding its runs)

    def row_columns(self) -> dict[str, Any]:
        """Columns the driver writes into the run's row beside what the run measured; none is part of the id."""
        out: dict[str, Any] = {"look": self.look}
        if self.ablation_base is not None:
            out["ablation_base"], out["ablation_base_task"] = self.ablation_base
        return out

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
        base = None if task.ablation_base is None else (task.ablation_base.name, ablation_base_task(suite, task))
        for point in sweep_points(task.sweep):
            resolved = {variant.name: resolve(task, variant, point) for variant in task.variants}
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
                        data=r["data"], model=r["model"], train=r["train"], measure=r["measure"], match=match,
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
                    specs.append(RunSpec(run_id=config_hash(run.to_json()), run=run,
                                         results_version=results_version(fam.results_version),
                                         plugin_code=fam.plugin_sources(variant.uses, task.entry.dataset, r["params"]),
                                         ablation_base=base if variant.ablation not in ("", "base") else None))
    return specs


def resolve(task: ResolvedTask, variant: VariantEntry, point: dict[str, Any]) -> dict[str, Any]:
    """The resolved data / model / train / measure / match sections of one variant at one sweep point, and
    its validated model block (``params``: which plugin code the run executes)."""
    raw = build_run_config(task, variant, point)
    model = task.family.ModelParams.model_validate(raw["model"])
    return {
        "params": model,
        "data": id_dump(task.family.datasets[task.entry.dataset].params.model_validate(raw["data"])),
        "model": id_dump(model),
        "train": TrainConfig.model_validate(raw["train"]),
        "measure": MeasureConfig.model_validate(raw["measure"]),
        "match": MatchConfig.model_validate(raw["match"]),
    }


def ablation_base_task(suite: Suite, task: ResolvedTask) -> str:
    """The task whose runs are the base of ``task``'s ablations: the task itself, or with ``include_base:
    false`` the first other task that runs the base variant (by its label) with the same resolved config at
    every sweep point of this one (so each ablation differs from its base in its own override alone); ""
    when no task does (the report then has no base to compare the ablations with)."""
    base = task.ablation_base
    if base is None or task.entry.ablate is None or task.entry.ablate.include_base:
        return task.entry.name
    wanted = [resolve(task, base, point) for point in sweep_points(task.sweep)]
    for other in suite.tasks:
        if other is task or other.family is not task.family or other.entry.dataset != task.entry.dataset:
            continue
        for variant in other.variants:
            if variant.name == base.name and variant.ablation in ("", "base"):
                have = [resolve(other, variant, point) for point in sweep_points(other.sweep)]
                if all(w in have for w in wanted):
                    return other.entry.name
    return ""
