"""The ``theory`` family: generalization gap vs sequence length for a selective SSM (Honarpisheh et al.,
arXiv 2502.01473) and its attention counterparts.

Variants (``use:``):
- ``ssm``: the paper's one-layer selective SSM; ``s_A`` sets the spectral abscissa of A at initialisation,
  ``clip_A`` keeps ``max(A) <= s_A`` after every optimizer step, ``delta: input|fixed`` switches the
  input-dependent discretization off (Delta = 1, as the authors' ``use_delta=False``), ``d_state`` is N.
- ``softmax_attention``: one softmax-attention layer, the last token as the query.
- ``linear_attention``: the same with a linear (Galerkin) attention layer.
Only ``ssm`` is an SSM (``ssm_variants``). Budget matching solves ``d_model`` (``width_field``).

Metrics: ``train_acc`` (on the training set as trained on), ``test_acc`` and ``gen_gap = train_acc -
test_acc``. Every run tracks ``batch_loss`` after each step and SSM runs ``s_A`` (the spine records the
final values and ``max_batch_loss`` / ``max_s_A``). An ``s_A > 0`` run is never rescued: no norm, no state
clipping, so at long T the loss blows up; the spine records ``diverged`` when its check fires, and
``max_batch_loss`` shows the blow-up either way.
"""

from __future__ import annotations

import math

from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from harness.config.identity import added_field
from harness.families.base import DatasetSpec, Experiment, Family, MetricSpec, Params, RunContext
from harness.families.theory.data import (
    NUM_CLASSES,
    VOCAB_SIZE,
    ListOpsParams,
    MajorityParams,
    Split,
    load_or_generate,
)
from harness.families.theory.models import LastTokenAttentionClassifier, SelectiveSSMClassifier


class TheoryModelParams(Params):
    # ---- shared
    d_model: int = Field(16, ge=1, description="embedding / channel width (the budget-matching field)")
    # ---- ssm
    d_state: int = Field(8, ge=1, description="N, the state size of the diagonal A")
    s_A: float = Field(-0.1, description="spectral abscissa max(A) at initialisation")
    a_spread: float = Field(
        10.0, ge=0, description="A's other entries start at s_A - a_spread * U(0, 1) (the authors: 10)"
    )
    delta: Literal["input", "fixed"] = Field(
        "input", description="Delta_t = softplus(p + q.u_t) | 1 (the authors' use_delta=False)"
    )
    clip_A: bool = Field(False, description="keep max(A) <= s_A after every optimizer step")
    init: Literal["torch", "authors"] = added_field(
        "torch", description="torch: nn.Linear fan-in init, p = 0, readout bias | authors: all N(0, 1), no bias"
    )
    impl: Literal["unrolled", "scan"] = Field(
        "unrolled", description="last output in the paper's attention form, or via the shared reference scan"
    )
    # ---- attention counterparts
    n_heads: int = Field(1, ge=1)
    pos: Literal["none", "rope", "relative"] = Field(
        "none", description="softmax-attention positions (majority is order-free; ListOps wants rope)"
    )


class TheoryFamily(Family):
    name = "theory"
    description = "selective-SSM generalization vs sequence length and spectral abscissa (arXiv 2502.01473)"
    ModelParams = TheoryModelParams
    datasets = {
        "majority": DatasetSpec(
            MajorityParams, "sparse majority: uniform count of 1s, label = more 1s than T/2; training 1s zeroed"
        ),
        "listops": DatasetSpec(ListOpsParams, "LRA ListOps: nested MAX/MIN/MED/SUM_MOD, 10 classes, left-padded"),
    }
    variants = ("ssm", "softmax_attention", "linear_attention")
    ssm_variants: ClassVar[frozenset[str]] = frozenset({"ssm"})
    # 1: majority counts uniform in 0..T; 2: the authors' zeroing of 1s; 3: A per channel, the authors' init;
    # 4: the authors' N(0, 1) weights and bias-free readout; 5: delta "fixed" is Delta = 1; 6: init (4) is an
    # option, model.init: authors, the default back to torch's fan-in init
    results_version: ClassVar[int] = 6
    metrics = {
        "train_acc": MetricSpec(higher_is_better=True, unit="fraction"),
        "test_acc": MetricSpec(higher_is_better=True, unit="fraction", primary=True),
        "gen_gap": MetricSpec(higher_is_better=False, unit="fraction"),
    }
    causal = False  # sequence classification: the whole input is seen before the answer
    width_field = "d_model"
    width_multiple: ClassVar[int] = 2  # RoPE rotates channel pairs, so solved widths stay even

    def build_model(self, ctx: RunContext) -> nn.Module:
        m = ctx.model
        vocab, classes = VOCAB_SIZE[ctx.dataset], NUM_CLASSES[ctx.dataset]
        if ctx.use == "ssm":
            return SelectiveSSMClassifier(
                vocab, classes, m.d_model, m.d_state, m.s_A, m.a_spread, m.delta, m.impl, m.init
            )
        if ctx.use == "softmax_attention":
            return LastTokenAttentionClassifier(
                vocab, classes, m.d_model, "attention", n_heads=m.n_heads, causal=True, pos=m.pos
            )
        if ctx.use == "linear_attention":
            return LastTokenAttentionClassifier(vocab, classes, m.d_model, "linear_attention", n_heads=m.n_heads)
        raise ValueError(f"theory: unknown variant {ctx.use!r}; use one of {self.variants}")

    def example_inputs(self, ctx: RunContext, batch_size: int) -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(ctx.seed)
        tokens = torch.randint(1, VOCAB_SIZE[ctx.dataset], (batch_size, ctx.data.seq_len), generator=gen)
        return (tokens.to(ctx.device),)

    def build(self, ctx: RunContext) -> Experiment:
        train, test = load_or_generate(ctx.dataset, ctx.data, ctx.seed, ctx.cache_dir)
        return TheoryExperiment(ctx, self.build_model(ctx).to(ctx.device), train, test)


class TheoryExperiment(Experiment):
    def __init__(self, ctx: RunContext, model: nn.Module, train: Split, test: Split):
        self.ctx, self.model = ctx, model
        self.train, self.test = train, test
        self.is_ssm = isinstance(model, SelectiveSSMClassifier)
        self.s_A_init = model.spectral_abscissa() if self.is_ssm else None
        self._last_loss = torch.tensor(float("nan"))  # set by loss(), read by after_step()

    def _batch_indices(self, step: int) -> torch.Tensor:
        """Sampling without replacement, epoch after epoch; epoch e's order depends only on (seed, e)."""
        n, bs = len(self.train), self.ctx.train_batch_size
        positions = np.arange(step * bs, (step + 1) * bs)
        idx = np.empty(bs, dtype=np.int64)
        for epoch in np.unique(positions // n):
            perm = np.random.default_rng([self.ctx.seed, int(epoch)]).permutation(n)
            here = positions // n == epoch
            idx[here] = perm[positions[here] % n]
        return torch.from_numpy(idx)

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._batch_indices(step)
        return self.train.tokens[idx].to(self.ctx.device), self.train.labels[idx].to(self.ctx.device)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        tokens, labels = batch
        loss = F.cross_entropy(self.model(tokens).float(), labels)
        self._last_loss = loss.detach()
        return loss

    @torch.no_grad()
    def accuracy(self, split: Split) -> float:
        self.model.eval()
        correct = 0
        for start in range(0, len(split), self.ctx.eval_batch_size):
            tokens = split.tokens[start : start + self.ctx.eval_batch_size].to(self.ctx.device)
            labels = split.labels[start : start + self.ctx.eval_batch_size].to(self.ctx.device)
            correct += int((self.model(tokens).argmax(-1) == labels).sum())
        return correct / len(split)

    def evaluate(self) -> dict[str, float]:
        train_acc, test_acc = self.accuracy(self.train), self.accuracy(self.test)
        return {"train_acc": train_acc, "test_acc": test_acc, "gen_gap": train_acc - test_acc}

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        idx = torch.arange(batch_size) % len(self.test)
        return (self.test.tokens[idx].to(self.ctx.device),)

    def reference_loss(self) -> float:
        """Chance level, ln(#classes): an unstable SSM (s_A > 0, long T) can blow up from the first step,
        so divergence is judged against chance rather than against the first loss."""
        return math.log(self.model.head.out_features)

    def after_step(self, step: int) -> dict[str, float]:
        """Track the batch loss (its maximum shows how far the loss rose) and, for the SSM, s_A after the
        optional clipping of A."""
        tracked = {"batch_loss": float(self._last_loss)}
        if self.is_ssm:
            if self.ctx.model.clip_A:
                self.model.clip_spectral_abscissa_(self.ctx.model.s_A)
            tracked["s_A"] = self.model.spectral_abscissa()
        return tracked

    def row_extras(self) -> dict[str, Any]:
        m = self.ctx.model
        extras: dict[str, Any] = {
            "seq_len": self.ctx.data.seq_len,
            "d_model": m.d_model,
            "n_train": len(self.train),
            "n_test": len(self.test),
        }
        if self.is_ssm:
            extras.update(d_state=m.d_state, delta=m.delta, clip_A=m.clip_A, init=m.init, s_A_init=self.s_A_init)
        else:
            extras.update(n_heads=m.n_heads)
        return extras
