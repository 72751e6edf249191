"""The contract every task family implements, so the spine can plan, train and measure it.

A family (``harness/families/<name>/``) holds its data, its model pairing and its metrics, and registers
itself in ``harness.families.FAMILIES``. The spine owns everything else: YAML validation, planning, the
training loop (``harness.run.train``), measurement (``harness.measure``), budget matching and the store.
Families never time themselves and never write files outside ``ctx.cache_dir``.

Life of one run (task x variant x seed x sweep point), in ``harness.run.runner``:
    fam = FAMILIES.get(spec.family)()
    ctx = RunContext(...)                       # validated params, seed, device
    (budget matching may call fam.build_model(ctx, overrides) and fam.example_inputs(ctx, b) many times)
    exp = fam.build(ctx)                        # data + model, on ctx.device
    train(exp, ctx.train)                       # shared loop: exp.train_batch(step) -> exp.loss(batch)
    metrics = exp.evaluate()                    # {"top1": ..., ...}
    costs = measure_model(exp.model, exp.example_inputs(b), exp.loss ...)   # FLOPs, latency, memory
    row = {...spec, **exp.row_extras(), **metrics, **costs, **exp.extra_measurements(measurer)}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class Params(BaseModel):
    """Base of every family's ``model:``/``data:`` schema: unknown keys are errors, values are checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def user_path(kind: str, description: str, default: Any = ...) -> Any:
    """A field naming the user's own data (``kind``: "folder" or "file"): suite validation checks that it
    exists, so a wrong path is a config error at its line rather than an error row mid-suite."""
    return Field(default, description=description, json_schema_extra={"must_exist": kind})


@dataclass(frozen=True)
class MetricSpec:
    """How a metric column reads: direction, unit, and whether it is the task's primary quality metric."""

    higher_is_better: bool
    unit: str = ""
    primary: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset: its parameter schema (the task's ``data:`` block) and a one-line description."""

    params: type[Params]
    description: str


@dataclass
class RunContext:
    """Everything a family needs to build one run; made by the spine from the resolved config."""

    task: str
    variant: str  # the label in results (e.g. "mamba_d16")
    use: str  # the family's variant/model name it instantiates (e.g. "mamba")
    dataset: str
    data: Params  # validated ``data:`` block (the dataset's schema)
    model: Params  # validated ``model:`` block with variant options and sweep values applied
    seed: int
    device: torch.device
    cache_dir: Path  # for generated datasets / tokenizers, keyed by their own config
    train_batch_size: int
    eval_batch_size: int
    extra: dict[str, Any] = field(default_factory=dict)

    def with_model(self, **updates: Any) -> "RunContext":
        """A copy with some ``model:`` fields replaced (budget matching solves a width this way)."""
        from dataclasses import replace

        return replace(self, model=self.model.model_copy(update=updates))


class Experiment(ABC):
    """One built run: a model plus its data, able to give batches, a loss and an evaluation."""

    model: nn.Module

    @abstractmethod
    def train_batch(self, step: int) -> Any:
        """The batch for training step ``step`` (deterministic given the run's seed), on the device."""

    @abstractmethod
    def loss(self, batch: Any) -> torch.Tensor:
        """Scalar training loss of ``self.model`` on ``batch``."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Quality metrics on held-out data (model in eval mode, no grad); keys are the family's metrics."""

    @abstractmethod
    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """Inputs for ``self.model(*inputs)`` at the task's size, for FLOPs/latency/memory measurement."""

    def reference_loss(self) -> float | None:
        """The loss scale divergence is judged against (e.g. chance level, ln #classes); None: the first
        step's loss. Needed where the loss can blow up from step 0 (an unstable SSM)."""
        return None

    def after_step(self, step: int) -> dict[str, float]:
        """Called by the training loop after each optimizer step (e.g. clip A, track s_A); may return
        values to record: the loop keeps, per key, the last value and the maximum over training."""
        return {}

    def row_extras(self) -> dict[str, Any]:
        """Structural columns: at least ``seq_len`` and ``d_model`` (the spine derives MambaOut's
        ``l_over_6d`` from them unless the family sets its own, as vision does per stage)."""
        return {}

    def extra_measurements(self, measurer: Any) -> dict[str, Any]:
        """Family-specific costs (e.g. AR decode latency); uses ``measurer`` so protocol stays shared."""
        return {}


class Family(ABC):
    """A task family: its schema, datasets, variants and metrics, and how to build a run."""

    name: ClassVar[str]
    description: ClassVar[str]
    ModelParams: ClassVar[type[Params]]
    datasets: ClassVar[dict[str, DatasetSpec]]
    variants: ClassVar[tuple[str, ...]]  # the ``use:`` names it can build (e.g. mamba, attention, gated_cnn)
    metrics: ClassVar[dict[str, MetricSpec]]
    causal: ClassVar[bool] = False  # whether the task is causal/autoregressive (MambaOut's criterion)
    width_field: ClassVar[str] = "d_model"  # the ``model:`` field budget matching solves
    width_multiple: ClassVar[int] = 1  # solved widths are multiples of this (head/group divisibility)
    ssm_variants: ClassVar[tuple[str, ...]] = ()  # the ``use`` names that contain an SSM (the verdict's split)
    #: numeric row columns beyond ``metrics`` and the spine's costs (fnmatch patterns, e.g. decode costs),
    #: with how they read; claims (``expect:``) may name them
    columns: ClassVar[dict[str, MetricSpec]] = {}
    #: bump in the commit that changes numbers this family's stored runs hold (data, model, metrics);
    #: rows record it (``harness.versions``) and resume reruns runs of another version
    results_version: ClassVar[int] = 0

    def width_step(self, use: str, model: Params) -> int:
        """Solved widths of variant ``use`` are multiples of this (``width_multiple`` unless heads need more)."""
        return self.width_multiple

    @abstractmethod
    def build_model(self, ctx: RunContext) -> nn.Module:
        """The model alone (cheap, on CPU): used by budget matching to count params/FLOPs."""

    @abstractmethod
    def example_inputs(self, ctx: RunContext, batch_size: int) -> tuple[torch.Tensor, ...]:
        """Inputs of the task's size without generating the dataset (for FLOP matching)."""

    @abstractmethod
    def build(self, ctx: RunContext) -> Experiment:
        """Data + model on ``ctx.device``, seeded by ``ctx.seed``."""

    def variant_defaults(self, use: str) -> dict[str, Any]:
        """``model:`` fields a variant sets by default (e.g. attention gets mlp_ratio 4)."""
        return {}

    @classmethod
    def task_metrics(cls, model: dict[str, Any]) -> tuple[str, ...]:
        """The metrics a task with this ``model:`` block reports (default: all of the family's); the first
        flagged primary among them is the task's primary metric."""
        return tuple(cls.metrics)

    def check_config(self, use: str, data: Params, model: Params) -> None:
        """Raise ValueError if variant ``use`` cannot run with these ``data:`` and ``model:`` blocks together:
        what neither block's schema sees alone. Suite validation calls it (an error at the task's line), and
        so does the family's own build."""
