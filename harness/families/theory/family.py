"""The ``theory`` family: generalization gap vs sequence length for a selective SSM (Honarpisheh et al.,
arXiv 2502.01473) and its attention counterparts.

Variants (``use:``):
- ``ssm``: the paper's one-layer selective SSM; ``s_A`` sets the spectral abscissa of A at initialisation,
  ``clip_A`` keeps ``max(A) <= s_A`` after every optimizer step, ``delta: input|fixed`` switches the
  input-dependent discretization off (Delta = 1, as the authors' ``use_delta=False``), ``d_state`` is N,
  ``init: authors`` starts the weights as the authors' code does (``model.py``).
- ``softmax_attention``: one softmax-attention layer, the last token as the query.
- ``linear_attention``: the same with a linear (Galerkin) attention layer.
Only ``ssm`` is an SSM (``VARIANTS``). Budget matching solves ``d_model`` (``width_field``).

Metrics: ``train_acc`` (on the training set as trained on), ``test_acc`` and ``gen_gap = train_acc -
test_acc``. Every run tracks ``batch_loss`` after each step and SSM runs ``s_A`` (the spine records the
final values and ``max_batch_loss`` / ``max_s_A``). An ``s_A > 0`` run is never rescued: no norm, no state
clipping, so at long T the loss blows up; the spine records ``diverged`` when its check fires, and
``max_batch_loss`` shows the blow-up either way.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.families.base import DatasetSpec, Experiment, Family, MetricSpec, RunContext, TinyConfig
from harness.families.theory.config import ListOpsParams, MajorityParams, TheoryModelParams
from harness.families.theory.data import NUM_CLASSES, VOCAB_SIZE, Split, load_or_generate
from harness.families.theory.model import LastTokenAttentionClassifier, SelectiveSSMClassifier
from harness.families.variants import MixerSlot, VariantSpec, VariantTable

# The variants: the paper's selective-SSM model, or the one-layer attention classifier with a mixer.
VARIANTS = VariantTable(
    VariantSpec("ssm", ssm=True, build=lambda m, vocab, classes: SelectiveSSMClassifier(
        vocab, classes, m.d_model, m.d_state, m.s_A, m.a_spread, m.delta, m.impl, m.init)),
    VariantSpec("softmax_attention", mixer="attention", options=lambda m: dict(n_heads=m.n_heads, causal=True, pos=m.pos)),
    VariantSpec("linear_attention", mixer="linear_attention", options=lambda m: dict(n_heads=m.n_heads)),
    slot=MixerSlot(causal=False),  # a plugin's mixer before the last-token read-out
)


class TheoryExperiment(Experiment):
    """``data``: the (train, test) splits."""

    def __init__(self, ctx: RunContext, model: nn.Module, data: tuple[Split, Split]):
        super().__init__(ctx, model, data)
        self.train, self.test = data
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
    variants = VARIANTS
    metrics = {
        "train_acc": MetricSpec(higher_is_better=True, unit="fraction"),
        "test_acc": MetricSpec(higher_is_better=True, unit="fraction", primary=True),
        "gen_gap": MetricSpec(higher_is_better=False, unit="fraction"),
    }
    causal = False  # sequence classification: the whole input is seen before the answer
    width_field = "d_model"
    width_multiple: ClassVar[int] = 2  # RoPE rotates channel pairs, so solved widths stay even
    experiment_class = TheoryExperiment
    tiny = TinyConfig("majority", {"seq_len": 8, "n_train": 16, "n_test": 16}, {"d_model": 8, "d_state": 4})
    #: 1 (main): the spine seeds the model right before building it; a budget-matched variant's init no
    #: longer depends on the trial models budget matching built before it (it now equals an unmatched run's).
    #: Branch theory (issue 23, baselines/cpu/theory_gap) numbered its steps 1-6 on top of 0: majority counts
    #: uniform in 0..T at random positions (1); the authors' zeroing, each 1 of a training sequence becomes a
    #: 0 w.p. zero_prob (2); A per channel, (D, N), entry 0 at s_A and the others s_A - a_spread * U(0, 1) (3);
    #: the authors' N(0, 1) weights and bias-free readout (4); delta "fixed" is Delta = 1 (5); that N(0, 1)
    #: init becomes model.init: authors, the default back to torch's fan-in init (6).
    #: 7: both lines merged (max + 1), so rows stored by either line rerun.
    results_version: ClassVar[int] = 7

    def load_data(self, ctx: RunContext) -> tuple[Split, Split]:
        """(train, test), generated for the run's seed (or read back from ``ctx.cache_dir``)."""
        return load_or_generate(ctx.dataset, ctx.data, ctx.seed, ctx.cache_dir)

    def build_model(self, ctx: RunContext, data: Any = None) -> nn.Module:
        m, spec = ctx.model, VARIANTS[ctx.use]
        vocab, classes = VOCAB_SIZE[ctx.dataset], NUM_CLASSES[ctx.dataset]
        if spec.build is not None:
            return spec.build(m, vocab, classes)
        return LastTokenAttentionClassifier(vocab, classes, m.d_model, spec.mixer, **spec.options(m))

    def example_inputs(self, ctx: RunContext, batch_size: int, data: Any = None) -> tuple[torch.Tensor, ...]:
        if data is not None:  # test sequences, cycled
            test = data[1]
            return (test.tokens[torch.arange(batch_size) % len(test)],)
        gen = torch.Generator().manual_seed(ctx.seed)
        return (torch.randint(1, VOCAB_SIZE[ctx.dataset], (batch_size, ctx.data.seq_len), generator=gen),)
