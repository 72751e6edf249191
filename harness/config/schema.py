"""The suite schema: what a suite YAML may say, field by field (field names are the YAML keys).

Structure only; the family-dependent parts (``data:``, ``model:`` and the names of families, datasets,
variants and metrics) are checked in ``harness.config.load`` against the family registry.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from harness.config.claims import Claim
from harness.plugins import MODULE_NAME

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
SWEEP_SECTIONS = ("data", "model", "train", "measure")
SEED_LIMIT = 2**32  # numpy's seed range (the training loop seeds numpy, torch and random with it)


def check_seeds(seeds: list[int]) -> list[int]:
    """Seeds are distinct integers in [0, 2**32): a repeated seed would plan the same run twice, and the
    second would overwrite the first."""
    for s in seeds:
        if not 0 <= s < SEED_LIMIT:
            raise ValueError(f"seed {s} is out of range: seeds are integers from 0 to {SEED_LIMIT - 1}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seed {repeated[0]} appears more than once: each seed is one run per variant")
    return seeds


def _as_entries(value: Any) -> Any:
    """A variant given by name alone (``- mamba``) is ``{name: mamba}``, so every entry is checked alike."""
    return [{"name": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantEntry(Strict):
    """A variant: a label, the family model it instantiates (``use``), and ``model:`` overrides."""

    name: str = Field(pattern=NAME)
    use: str | None = None  # default: same as name
    model: dict[str, Any] = Field(default_factory=dict)
    ablation: str = ""  # filled by ``ablate:`` expansion; rows carry it

    @property
    def uses(self) -> str:
        return self.use or self.name


class AblationVariant(Strict):
    name: str = Field(pattern=NAME)
    model: dict[str, Any] = Field(default_factory=dict)


class Ablate(Strict):
    """One-factor-at-a-time variants that override fields of a base variant (MAD-lab style)."""

    base: str
    variants: list[AblationVariant] = Field(min_length=1)
    include_base: bool = True


class Verdict(Strict):
    thresholds: dict[str, float] = Field(default_factory=dict)
    relative: dict[str, bool] = Field(default_factory=dict)  # threshold is a fraction of the reference


class Distributed(Strict):
    """Run each of the task's runs as one DDP job under torchrun: ``nproc_per_node`` x ``nnodes`` ranks.

    ``train.batch_size`` stays the global batch: each rank trains on 1/(nproc_per_node*nnodes) of it.
    """

    nproc_per_node: int = Field(ge=1)
    nnodes: int = Field(1, ge=1)


def _check_sweep(value: dict[str, list[Any]]) -> dict[str, list[Any]]:
    for key, values in value.items():
        section = key.split(".", 1)[0]
        if section not in SWEEP_SECTIONS or "." not in key:
            raise ValueError(f"sweep key {key!r} must be a dotted field under one of {', '.join(SWEEP_SECTIONS)}")
        if not values:
            raise ValueError(f"sweep {key!r} has no values")
        seen = [json.dumps(v, sort_keys=True, default=str) for v in values]
        repeated = next((values[i] for i, v in enumerate(seen) if v in seen[:i]), None)
        if repeated is not None:
            raise ValueError(f"sweep {key!r} lists {repeated!r} twice: each value is one run per variant and seed")
    return value


class TaskEntry(Strict):
    name: str = Field(pattern=NAME)
    description: str = ""
    family: str
    dataset: str
    data: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    variants: list[VariantEntry] | None = Field(None, min_length=1)
    ablate: Ablate | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    measure: dict[str, Any] = Field(default_factory=dict)
    match: dict[str, Any] = Field(default_factory=dict)
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    factors: list[str] = Field(default_factory=list, description="sweep keys that are studied factors, not tuning")
    sizes: list[str] | None = Field(None, description="sweep keys that are sizes (the axis of a scaling study, never "
                                    "tuned); default: those whose name reads as one (seq_len, resolution, ...)")
    metrics: list[str] | None = None
    verdict: Verdict = Field(default_factory=Verdict)
    distributed: Distributed | None = None  # torchrun/DDP for every run of this task (harness.run.distributed)
    expect: list[Claim] = Field(default_factory=list)  # a paper's findings, checked (harness.config.claims)

    _sweep = field_validator("sweep")(_check_sweep)
    _variants = field_validator("variants", mode="before")(_as_entries)


class SuiteFile(Strict):
    suite: str = Field(pattern=NAME)
    description: str = ""
    # modules imported (by name, never eval) before the suite is checked and in every run's process:
    # they register mixers, variants or datasets (harness.extend); see harness.plugins
    plugins: list[Annotated[str, StringConstraints(pattern=MODULE_NAME.pattern)]] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train: dict[str, Any] = Field(default_factory=dict)
    measure: dict[str, Any] = Field(default_factory=dict)
    match: dict[str, Any] = Field(default_factory=dict)
    variants: list[VariantEntry] | None = Field(None, min_length=1)
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    tasks: list[TaskEntry] = Field(min_length=1)

    _sweep = field_validator("sweep")(_check_sweep)
    _variants = field_validator("variants", mode="before")(_as_entries)
    _seeds = field_validator("seeds")(check_seeds)
