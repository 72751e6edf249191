"""The ``sequence`` family: diagnostic token tasks on the shared sequence skeleton, mixers swapped.

These are the tasks where the SSM question is sharpest: selective copying and associative recall need
content-dependent selection (Mamba §4.1; Zoology), majority needs a long-range aggregate.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from harness.families.base import DatasetSpec, Experiment, Family, MetricSpec, Params, RunContext, TinyConfig
from harness.families.sequence import data as D
from harness.families.sequence.config import MajorityData, MQARData, SelectiveCopyData, SequenceModelParams
from harness.families.variants import MixerSlot, VariantSpec, VariantTable
from harness.models.sequence_model import SequenceModel
from harness.registry import UnknownNameError

# A seed offset that keeps the evaluation stream apart from every training step's stream.
EVAL_STREAM = 1_000_003


# The variants, each a mixer in every layer (``hybrid``: the mixers of ``model.pattern``, cycled), and the
# options each mixer reads from the ``model:`` block. Every mixer is causal here: the tasks are token streams.
VARIANTS = VariantTable(
    VariantSpec("mamba", mixer="mamba", options=lambda m: dict(
        d_state=m.d_state, d_conv=m.d_conv, expand=m.expand, chunk_size=m.chunk_size, selective=m.selective,
        scan=m.scan, A_init=m.A_init, discretization=m.discretization, impl=m.impl, causal=True)),
    VariantSpec("mamba2", mixer="mamba2", options=lambda m: dict(
        d_state=m.d_state, d_conv=m.d_conv, expand=m.expand, headdim=m.headdim, chunk_size=m.chunk_size,
        scan=m.scan, impl=m.impl)),  # causal by construction
    VariantSpec("attention", mixer="attention", options=lambda m: dict(n_heads=m.n_heads, pos=m.pos, causal=True),
                defaults={"mlp_ratio": 4.0}),
    VariantSpec("gated_cnn", mixer="gated_cnn", options=lambda m: dict(
        expansion_ratio=m.expansion_ratio, kernel_size=m.kernel_size, d_conv=m.d_conv, causal=True)),
    # layers cycle the mixers of model.pattern, each with its own variant's options
    VariantSpec("hybrid", contains=lambda m: m.pattern or ()),
    slot=MixerSlot(causal=True),  # a plugin's mixer, causal, in every layer (or in a hybrid's pattern)
)


def layer_pattern(use: str, m: SequenceModelParams) -> list[tuple[str, dict[str, Any]]]:
    """``(mixer, options)`` per layer of the pattern: the variant's own mixer, or ``hybrid``'s ``pattern``."""
    spec = VARIANTS[use]
    specs = [VARIANTS.for_mixer(name) for name in m.pattern] if spec.mixer is None else [spec]
    return [(s.mixer, s.options(m)) for s in specs]


def registered_load(dataset: str) -> D.Generator | None:
    """A registered (plugin) dataset's generator; None for the built-in ones (``data.GENERATORS``)."""
    return SequenceFamily.datasets[dataset].load


def _rank_world() -> tuple[int, int]:
    """(rank, world size) under torchrun/DDP, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class SequenceExperiment(Experiment):
    """``data``: the evaluation set, ``(tokens, targets)``."""

    def __init__(self, ctx: RunContext, model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor]):
        super().__init__(ctx, model, data)
        self.eval_tokens, self.eval_targets = data

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # one generator per (seed, step): reruns and resumed runs see identical batches
        tokens, targets = D.generate(self.ctx.dataset, self.ctx.data, self.ctx.train_batch_size, self.ctx.seed * 1_000_000 + step,
                                     registered_load(self.ctx.dataset))
        return tokens.to(self.ctx.device), targets.to(self.ctx.device)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        tokens, targets = batch
        logits = self.model(tokens)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=D.IGNORE)

    def evaluate(self) -> dict[str, float]:
        correct = total = 0
        loss_sum = 0.0
        rank, world = _rank_world()
        eval_tokens, eval_targets = self.eval_tokens[rank::world], self.eval_targets[rank::world]  # DDP shard
        for start in range(0, len(eval_tokens), self.ctx.eval_batch_size):
            tokens = eval_tokens[start : start + self.ctx.eval_batch_size].to(self.ctx.device)
            targets = eval_targets[start : start + self.ctx.eval_batch_size].to(self.ctx.device)
            logits = self.model(tokens).float()
            mask = targets != D.IGNORE
            loss_sum += float(F.cross_entropy(logits[mask], targets[mask], reduction="sum"))
            correct += int((logits.argmax(-1)[mask] == targets[mask]).sum())
            total += int(mask.sum())
        if world > 1:  # sum the shards' counts over the ranks: the metrics of the whole eval set
            sums = torch.tensor([correct, total, loss_sum], dtype=torch.float64, device=self.ctx.device)
            torch.distributed.all_reduce(sums)
            correct, total, loss_sum = int(sums[0]), int(sums[1]), float(sums[2])
        return {"accuracy": correct / total, "eval_loss": loss_sum / total}

    def row_extras(self) -> dict[str, Any]:
        return {"seq_len": int(self.eval_tokens.shape[1]), "d_model": self.ctx.model.d_model}


class SequenceFamily(Family):
    name: ClassVar[str] = "sequence"
    description: ClassVar[str] = "selective copying, MQAR associative recall, majority (synthetic, seeded)"
    ModelParams = SequenceModelParams
    datasets: ClassVar[dict[str, DatasetSpec]] = {
        "selective_copy": DatasetSpec(SelectiveCopyData, "Mamba's selective copying task"),
        "mqar": DatasetSpec(MQARData, "Zoology's multi-query associative recall"),
        "majority": DatasetSpec(MajorityData, "majority bit of a binary sequence (long-range aggregate)"),
    }
    variants = VARIANTS
    metrics: ClassVar[dict[str, MetricSpec]] = {
        "accuracy": MetricSpec(higher_is_better=True, unit="fraction", primary=True),
        "eval_loss": MetricSpec(higher_is_better=False, unit="nats/token"),
    }
    experiment_class = SequenceExperiment
    tiny = TinyConfig("mqar", {"seq_len": 16, "num_kv": 2, "key_vocab": 8, "value_vocab": 8, "n_eval": 16},
                      {"d_model": 16, "n_layers": 1, "d_state": 4, "n_heads": 2, "headdim": 8},
                      variants={"hybrid": {"n_layers": 2, "pattern": ["mamba", "attention"]}})
    #: 1: the spine seeds the model right before building it; a budget-matched variant's init no longer
    #: depends on the trial models budget matching built before it (it now equals an unmatched run's)
    results_version: ClassVar[int] = 1
    causal: ClassVar[bool] = True
    width_multiple: ClassVar[int] = 16
    dataset_contract: ClassVar[str] = (
        "load(params, n, generator) -> (tokens (n, L) long, targets (n, L) long with -100 where no prediction is "
        "scored), deterministic given the torch.Generator; the params schema has n_eval (held-out examples), "
        "vocab_size (input tokens) and n_outputs (classes per position)")

    def check_config(self, use: str, data: Params, model: Params) -> None:
        if VARIANTS[use].mixer is None and not getattr(model, "pattern", None):
            raise ValueError(f"variant {use!r} needs model.pattern, e.g. [mamba, mamba, mamba, attention]")
        for name in model.pattern or () if VARIANTS[use].mixer is None else ():
            try:
                VARIANTS.for_mixer(name)
            except UnknownNameError as exc:  # a registered mixer no variant here configures (galerkin: not causal)
                raise ValueError(f"model.pattern: mixer {name!r} is not the mixer of a sequence variant; "
                                 f"use {', '.join(exc.known)}") from None

    def load_data(self, ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation set (training batches are generated per step, ``SequenceExperiment.train_batch``)."""
        return D.generate(ctx.dataset, ctx.data, ctx.data.n_eval, ctx.seed + EVAL_STREAM, registered_load(ctx.dataset))

    def build_model(self, ctx: RunContext, data: Any = None) -> torch.nn.Module:
        m: SequenceModelParams = ctx.model
        return SequenceModel(
            vocab_size=D.vocab_size(ctx.dataset, ctx.data),
            d_model=m.d_model,
            n_layers=m.n_layers,
            pattern=layer_pattern(ctx.use, m),
            n_outputs=D.n_outputs(ctx.dataset, ctx.data),
            mlp_ratio=m.mlp_ratio or 0.0,
            norm=m.norm,
        )

    def example_inputs(self, ctx: RunContext, batch_size: int, data: Any = None) -> tuple[torch.Tensor, ...]:
        if data is not None:
            return (data[0][:batch_size],)
        tokens, _ = D.generate(ctx.dataset, ctx.data, batch_size, ctx.seed, registered_load(ctx.dataset))
        return (tokens,)
