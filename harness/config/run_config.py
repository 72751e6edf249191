"""One run's configuration, typed and frozen: built once by the planner, parsed once by the worker.

Between them it travels as JSON (``to_json``: what the worker process receives, what ``runs/<id>.json``
stores, and what the run id hashes), field for field the same dict as before this class existed, so ids
and stored runs are unchanged. The shared sections are typed here; ``data`` and ``model`` stay the
resolved mappings of the family's own schemas, which ``harness.run.runner.make_context`` parses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from harness.config.identity import added_field, id_dump
from harness.config.schema import Distributed
from harness.config.sections import MatchConfig, MeasureConfig, TrainConfig


#: keys of a run's JSON that its id leaves out: the suite's name (a renamed suite resumes) and its plugin
#: modules (where code comes from, not what runs)
NOT_IDENTITY = ("suite", "plugins")


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchReference(Frozen):
    """The budget-matching reference variant of a run: its family model and resolved ``model:`` block."""

    use: str
    model: dict[str, Any]


class RunConfig(Frozen):
    """Task x variant x seed x sweep point, every section resolved (defaults, variant defaults, sweep)."""

    suite: str
    task: str
    family: str
    dataset: str
    variant: str  # the label in results
    use: str  # the family variant it instantiates
    ablation: str
    data: dict[str, Any]  # the family dataset's schema, resolved (``id_dump``)
    model: dict[str, Any]  # the family's ``model:`` schema, resolved (``id_dump``)
    train: TrainConfig
    measure: MeasureConfig
    match: MatchConfig
    match_reference: MatchReference | None
    metrics: tuple[str, ...]
    seed: int
    sweep: dict[str, Any]
    device: str
    distributed: Distributed | None = None
    #: the suite's plugin modules, imported by the worker before it builds the run. Not part of the run's
    #: identity (``NOT_IDENTITY``): they say where code comes from, not what runs (a plugin variant is
    #: named by its ``use`` and ``model:`` like any other), so adding ``plugins:`` to a suite moves no id
    plugins: tuple[str, ...] = added_field(())

    def to_json(self) -> dict[str, Any]:
        """The JSON the worker receives and the id hashes: sections without ``added_field`` s at their
        default (``harness.config.identity``), ``distributed`` and ``plugins`` only when set (other runs
        keep their ids)."""
        out = {
            "suite": self.suite,
            "task": self.task,
            "family": self.family,
            "dataset": self.dataset,
            "variant": self.variant,
            "use": self.use,
            "ablation": self.ablation,
            "data": self.data,
            "model": self.model,
            "train": id_dump(self.train),
            "measure": id_dump(self.measure),
            "match": id_dump(self.match),
            "match_reference": None if self.match_reference is None else self.match_reference.model_dump(mode="json"),
            "metrics": list(self.metrics),
            "seed": self.seed,
            "sweep": self.sweep,
            "device": self.device,
        }
        if self.distributed is not None:
            out["distributed"] = self.distributed.model_dump(mode="json")
        if self.plugins:
            out["plugins"] = list(self.plugins)
        return out

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> "RunConfig":
        return cls.model_validate(config)
