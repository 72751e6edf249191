"""The contract every task family implements, so the spine can plan, train and measure it.

A family (``harness/families/<name>/``) provides data, a model and metrics, and registers itself in
``harness.families.FAMILIES``. The spine owns everything else: YAML validation, planning, seeding, the
training loop (``harness.run.train``), measurement (``harness.measure``), budget matching and the store.
Families never seed the run, never time themselves and never write files outside ``ctx.cache_dir``
(``harness.families.cache``).

Life of one run (task x variant x seed x sweep point), in ``harness.run.runner``:
    fam = FAMILIES.get(config.family)()
    ctx = RunContext(...)                              # validated params, seed, device
    (budget matching calls fam.build_model(ctx') and fam.example_inputs(ctx', b) for trial widths)
    exp = build_experiment(fam, ctx):                  # the spine composes, the same way for every family:
        fam.check_config(ctx.use, ctx.data, ctx.model)
        data = fam.load_data(ctx)                      # generated, cached or read
        torch.manual_seed(ctx.seed)                    # the model's init depends on the seed alone
        fam.experiment_class(ctx, fam.build_model(ctx, data).to(ctx.device), data)
    train(exp, train_config, device)                   # shared loop: exp.train_batch(step) -> exp.loss(batch)
    metrics = exp.evaluate()                           # {"top1": ..., ...}
    costs = measure_model(exp.model, fam.example_inputs(ctx, b, exp.data), exp.loss ...)  # FLOPs, latency, memory
    row = {...config columns, **exp.row_extras(), **metrics, **costs, **exp.extra_measurements(measurer)}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from harness.families.variants import VariantTable
from harness.registry import BUILTIN, describe_source, pass_through, registering_module

pass_through(__name__)


class Params(BaseModel):
    """Base of every family's ``model:``/``data:`` schema: unknown keys are errors, values are checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: the ``json_schema_extra`` of an :func:`added_field`; ``harness.config.identity`` reads it.
OMIT_AT_DEFAULT = {"run_id": "omit_at_default"}


def added_field(default: Any, *, description: str = "", **kwargs: Any) -> Any:
    """A field added to a schema after runs were stored: part of the run id only when it differs from
    ``default``, which must reproduce the behaviour from before the field existed (``harness.config.identity``)."""
    return Field(default, description=description, json_schema_extra=OMIT_AT_DEFAULT, **kwargs)


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
    """A dataset: its parameter schema (the task's ``data:`` block) and a one-line description. A dataset
    a plugin registers (``Family.register_dataset``) also brings ``load``, in the form its family's
    ``dataset_contract`` says; ``source`` is the module that registered it."""

    params: type[Params]
    description: str
    load: Callable[..., Any] | None = None
    source: str = BUILTIN


@dataclass(frozen=True)
class TinyConfig:
    """The smallest task of a family that builds and trains every variant in a second or so on a CPU: what
    the one contract test (``tests/families/test_contract.py``) runs for each family x variant, as timm's
    tests do over its registry. ``variants``: ``model:`` overrides a variant needs (a hybrid's pattern)."""

    dataset: str
    data: dict[str, Any]
    model: dict[str, Any]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)


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
    #: the spine's training loop, for artefacts a family trains for itself (a tokenizer, a scoring classifier):
    #: ``fit(experiment, device, **TrainConfig fields) -> TrainResult`` (families do not import the spine)
    fit: Callable[..., Any] | None = None

    def with_model(self, **updates: Any) -> "RunContext":
        """A copy with some ``model:`` fields replaced (budget matching solves a width this way)."""
        return replace(self, model=self.model.model_copy(update=updates))


class Experiment(ABC):
    """One built run: a model plus its data, able to give batches, a loss and an evaluation.

    The spine makes it as ``experiment_class(ctx, model, data)``: the model already on ``ctx.device``,
    ``data`` what the family's ``load_data`` returned."""

    def __init__(self, ctx: RunContext, model: nn.Module, data: Any):
        self.ctx, self.model, self.data = ctx, model, data

    @abstractmethod
    def train_batch(self, step: int) -> Any:
        """The batch for training step ``step`` (deterministic given the run's seed), on the device."""

    @abstractmethod
    def loss(self, batch: Any) -> torch.Tensor:
        """Scalar training loss of ``self.model`` on ``batch``."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Quality metrics on held-out data (model in eval mode, no grad); keys are the family's metrics."""

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


class _DerivedFromTable:
    """A class attribute computed from the family's variant table (so a variant registered later counts)."""

    def __init__(self, derive: Any):
        self.derive = derive

    def __get__(self, obj: Any, owner: type) -> Any:
        return self.derive(owner)


class Family(ABC):
    """A task family: its schema, datasets, variants and metrics, and how to build a run."""

    name: ClassVar[str]
    description: ClassVar[str]
    ModelParams: ClassVar[type[Params]]
    datasets: ClassVar[dict[str, DatasetSpec]]
    variants: ClassVar[VariantTable]  # the ``use:`` names it can build, each declared once (``variants.py``)
    metrics: ClassVar[dict[str, MetricSpec]]
    causal: ClassVar[bool] = False  # whether the task is causal/autoregressive (MambaOut's criterion)
    width_field: ClassVar[str] = "d_model"  # the ``model:`` field budget matching solves
    width_multiple: ClassVar[int] = 1  # solved widths are multiples of this (head/group divisibility)
    experiment_class: ClassVar[type[Experiment]]  # what the spine wraps the model and data in
    #: the ``use`` names that contain an SSM whatever their params (a run's ``is_ssm``: :meth:`is_ssm`)
    ssm_variants: ClassVar[frozenset[str]] = _DerivedFromTable(lambda cls: cls.variants.ssm_names())  # type: ignore[assignment]
    tiny: ClassVar[TinyConfig]  # its smallest task, for the contract test
    #: numeric row columns beyond ``metrics`` and the spine's costs (fnmatch patterns, e.g. decode costs),
    #: with how they read; claims (``expect:``) may name them
    columns: ClassVar[dict[str, MetricSpec]] = {}
    #: bump in the commit that changes numbers this family's stored runs hold (data, model, metrics);
    #: rows record it (``harness.versions``) and resume reruns runs of another version
    results_version: ClassVar[int] = 0
    #: what a registered dataset's ``load`` must be (``register_dataset``); empty: the family takes none
    dataset_contract: ClassVar[str] = ""

    @classmethod
    def register_dataset(cls, name: str, spec: DatasetSpec) -> DatasetSpec:
        """Add a dataset to this family (a plugin's); its ``load`` follows ``dataset_contract``."""
        source = registering_module()
        if not cls.dataset_contract:
            raise ValueError(f"family {cls.name!r} takes no registered datasets (its data comes from its own loaders)")
        if spec.load is None:
            raise ValueError(f"dataset {name!r} for family {cls.name!r} needs load: {cls.dataset_contract}")
        if name in cls.datasets:
            raise ValueError(f"dataset {name!r} of family {cls.name!r} is already registered by "
                             f"{describe_source(cls.datasets[name].source)}; {describe_source(source)} must choose another name")
        cls.datasets[name] = spec = replace(spec, source=source)
        return spec

    @classmethod
    def plugin_sources(cls, use: str, dataset: str, model: Params) -> tuple[str, ...]:
        """The plugin modules whose code a run of variant ``use`` on ``dataset`` executes (its variant, the
        mixers it contains, its dataset); empty for the harness's own. Such runs get a default timeout."""
        sources = cls.variants[use].sources(model) | {cls.datasets[dataset].source}
        return tuple(sorted(s for s in sources if s != BUILTIN))

    def width_step(self, use: str, model: Params) -> int:
        """Solved widths of variant ``use`` are multiples of this (``width_multiple`` unless heads need more)."""
        return self.width_multiple

    def load_data(self, ctx: RunContext) -> Any:
        """The run's data (generated, read, or from ``ctx.cache_dir``), before the model is seeded and built;
        whatever the family's experiment and ``example_inputs`` take. None: nothing beyond the config."""
        return None

    @abstractmethod
    def build_model(self, ctx: RunContext, data: Any = None) -> nn.Module:
        """The model of variant ``ctx.use``, on the CPU. ``data`` is the run's, or None when budget matching
        counts the params/FLOPs of trial widths (then everything comes from the config)."""

    @abstractmethod
    def example_inputs(self, ctx: RunContext, batch_size: int, data: Any = None) -> tuple[torch.Tensor, ...]:
        """Inputs for ``model(*inputs)`` at the task's size, for FLOPs/latency/memory: drawn from ``data``
        where the family has it, else made from the config alone (budget matching by FLOPs)."""

    @classmethod
    def variant_defaults(cls, use: str) -> dict[str, Any]:
        """``model:`` fields a variant sets by default (e.g. attention gets mlp_ratio 4), from its table entry."""
        return dict(cls.variants[use].defaults)

    @classmethod
    def is_ssm(cls, use: str, model: Params) -> bool:
        """Whether variant ``use`` with these ``model:`` params contains an SSM (the row's ``is_ssm``)."""
        return cls.variants[use].is_ssm(model)

    @classmethod
    def task_metrics(cls, model: dict[str, Any]) -> tuple[str, ...]:
        """The metrics a task with this ``model:`` block reports (default: all of the family's); the first
        flagged primary among them is the task's primary metric."""
        return tuple(cls.metrics)

    def check_data(self, dataset: str, data: Params) -> None:
        """Raise ``HarnessError`` if the data source a ``data:`` block names cannot be read as its dataset's
        layout: open it and check what is cheap (keys, shapes, class folders, pairs, annotations, the first
        items), naming the file and what to do. Suite validation calls it once per distinct block, so
        ``harness validate`` and ``harness run`` refuse bad data before anything runs; built-in datasets
        that are generated have nothing to open. Loaders still check what they read (a bad file deep in a
        folder becomes a clear error row)."""

    def check_config(self, use: str, data: Params, model: Params) -> None:
        """Raise ValueError if variant ``use`` cannot run with these ``data:`` and ``model:`` blocks together:
        what neither block's schema sees alone. Suite validation calls it (an error at the task's line), and
        so does the spine before it builds a run."""
