"""Seeded train/test sets for the generalization experiments of Honarpisheh et al. (arXiv 2502.01473).

The paper measures the generalization gap (train - test accuracy) against the sequence length T, so each
seed fixes one small training set and one test set, generated offline (nothing is downloaded):

- ``majority``: the authors' sparse majority (Arya-Honarpisheh/gen_err_sel_ssm,
  ``training/load_datasets.py: create_majority_dataset``): the number of 1s is uniform in 0..T, at
  random positions, and the label is 1 when the 1s are strictly more than T/2 (a tie is 0). Uniform
  counts put as many sequences far from the threshold at every T, so the task does not get harder with
  T the way iid bits (counts within sqrt(T) of T/2) would. Tokens are 1 (bit 0) and 2 (bit 1); PAD
  never occurs. The authors' input noise: in each *training* sequence every 1 becomes a 0 with
  probability ``zero_prob`` (0.25 there) after the label is taken from the clean count; test sequences
  are clean. Only 1s are zeroed and into the other bit, so no input (the last, query token included) is
  ever blanked, and the noise shifts the training counts down (a model fitted to them puts its threshold
  near (1 - zero_prob) T/2, which the clean test set then partly contradicts: train - test accuracy comes
  out positive, about zero_prob / 2 at large T, and ``zero_prob: 0`` makes train and test iid).
- ``listops``: the Long Range Arena generator (google-research/long-range-arena,
  ``lra_benchmarks/data/listops.py``): nested MAX / MIN / MED / SUM_MOD expressions over digits, the
  value (0-9) is the label. Re-implemented here because LRA ships it as a TensorFlow script writing TSV
  files; the sampling (leaf probability, argument counts, operator choice, in LRA's order of draws) and
  the evaluation (MED = int(median), SM = sum mod 10) follow it. Parentheses are dropped (they carry
  nothing the operator and ``]`` tokens do not). Expressions are distinct across train and test, their
  token count is in ``(min_length_ratio * seq_len, seq_len]`` (LRA: 500..2000 tokens) and they are
  left-padded with 0 to ``seq_len``, so the last step is always the closing ``]`` and the padding leaves
  an SSM's state untouched (zero input).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from harness.families.base import Params
from harness.families.cache import config_key, load_or_build

PAD = 0  # ListOps' left padding; embedded as the zero vector


@dataclass(frozen=True)
class Split:
    """One fixed set: ``tokens`` (n, seq_len) int64 and ``labels`` (n,) int64."""

    tokens: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


class MajorityParams(Params):
    seq_len: int = Field(100, ge=1, description="sequence length T")
    n_train: int = Field(256, ge=1, description="training sequences (small on purpose: the gap is the point)")
    n_test: int = Field(1024, ge=1)
    zero_prob: float = Field(
        0.25, ge=0, le=1, description="probability that each 1 of a training sequence is zeroed (turned into a 0)"
    )


class ListOpsParams(Params):
    seq_len: int = Field(200, ge=4, description="padded length T (longest expression allowed)")
    max_depth: int = Field(10, ge=1, description="LRA default 10")
    max_args: int = Field(10, ge=2, description="LRA default 10")
    min_length_ratio: float = Field(
        0.25, ge=0, lt=1, description="shortest expression as a fraction of seq_len (LRA: 500 of 2000)"
    )
    n_train: int = Field(512, ge=1)
    n_test: int = Field(512, ge=1)


# ---------------------------------------------------------------- majority

MAJORITY_CLASSES = 2
MAJORITY_VOCAB = 3  # PAD (unused in majority), bit 0, bit 1


def _majority_bits(n: int, seq_len: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(bits (n, T), labels (n,)): a count of 1s uniform in 0..T at random positions, label = more 1s than
    T/2 (a tie, even T, is 0)."""
    ones = torch.randint(0, seq_len + 1, (n,), generator=gen)
    bits = (torch.rand(n, seq_len, generator=gen).argsort(1) < ones[:, None]).long()
    return bits, (2 * ones > seq_len).long()


def majority(p: MajorityParams, seed: int) -> tuple[Split, Split]:
    """(train, test) for ``seed``: clean sets first (the test set does not depend on ``zero_prob``), then
    each 1 of the training sequences becomes a 0 with probability ``zero_prob``; labels stay clean."""
    gen = torch.Generator().manual_seed(seed)
    train_bits, train_labels = _majority_bits(p.n_train, p.seq_len, gen)
    test_bits, test_labels = _majority_bits(p.n_test, p.seq_len, gen)
    train_bits = train_bits * (torch.rand(train_bits.shape, generator=gen) >= p.zero_prob)
    return Split(train_bits + 1, train_labels), Split(test_bits + 1, test_labels)


# ---------------------------------------------------------------- ListOps (LRA)

LISTOPS_OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
LISTOPS_END = "]"
LISTOPS_VALUES = tuple(range(10))
LISTOPS_VALUE_P = 0.25  # LRA's VALUE_P: a node above max_depth is an operator with this probability, else a leaf
LISTOPS_CLASSES = len(LISTOPS_VALUES)
LISTOPS_TOKENS = {str(v): i + 1 for i, v in enumerate(LISTOPS_VALUES)}
LISTOPS_TOKENS.update({op: len(LISTOPS_TOKENS) + 1 + i for i, op in enumerate((*LISTOPS_OPERATORS, LISTOPS_END))})
LISTOPS_VOCAB = len(LISTOPS_TOKENS) + 1  # + PAD


class _TooLong(Exception):
    """The expression being drawn already exceeds the length budget (it would be rejected anyway)."""


def _apply(op: str, args: list[int]) -> int:
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        return int(np.median(args))
    return sum(args) % 10  # [SM


def _draw_tree(rng: random.Random, depth: int, max_depth: int, max_args: int, out: list[str], budget: int) -> int:
    """Append one LRA expression's tokens to ``out`` and return its value (LRA's ``generate_tree``)."""
    if len(out) >= budget:
        raise _TooLong
    r = rng.random() if depth < max_depth else 1.0
    if r > LISTOPS_VALUE_P:
        value = rng.choice(LISTOPS_VALUES)
        out.append(str(value))
        return value
    num_args = rng.randint(2, max_args)
    head = len(out)
    out.append("")  # the operator is drawn after its arguments, as in LRA
    args = [_draw_tree(rng, depth + 1, max_depth, max_args, out, budget) for _ in range(num_args)]
    op = rng.choice(LISTOPS_OPERATORS)
    out[head] = op
    out.append(LISTOPS_END)
    return _apply(op, args)


def listops(p: ListOpsParams, seed: int) -> tuple[Split, Split]:
    """(train, test) of distinct expressions for ``seed``, left-padded to ``seq_len``."""
    rng = random.Random(seed)
    min_len = int(p.min_length_ratio * p.seq_len)
    need = p.n_train + p.n_test
    seen: dict[tuple[str, ...], int] = {}
    max_draws = 1_000 * need  # a guard against impossible settings, far above what valid ones need
    for _ in range(max_draws):
        if len(seen) == need:
            break
        out: list[str] = []
        try:
            value = _draw_tree(rng, 1, p.max_depth, p.max_args, out, p.seq_len + 1)
        except _TooLong:
            continue
        if min_len < len(out) <= p.seq_len:
            seen.setdefault(tuple(out), value)
    else:
        raise ValueError(
            f"listops: could not draw {need} distinct expressions of {min_len + 1}..{p.seq_len} tokens "
            f"(max_depth={p.max_depth}, max_args={p.max_args}); raise seq_len or lower n_train/n_test"
        )
    tokens = torch.zeros(need, p.seq_len, dtype=torch.long)
    for i, expr in enumerate(seen):
        tokens[i, p.seq_len - len(expr) :] = torch.tensor([LISTOPS_TOKENS[t] for t in expr])
    labels = torch.tensor(list(seen.values()), dtype=torch.long)
    return Split(tokens[: p.n_train], labels[: p.n_train]), Split(tokens[p.n_train :], labels[p.n_train :])


GENERATORS = {"majority": majority, "listops": listops}
VOCAB_SIZE = {"majority": MAJORITY_VOCAB, "listops": LISTOPS_VOCAB}
NUM_CLASSES = {"majority": MAJORITY_CLASSES, "listops": LISTOPS_CLASSES}
FORMAT_VERSION = 3  # bump when a generator changes, so stale cached sets are not reused


def load_or_generate(dataset: str, params: Params, seed: int, cache_dir: Path) -> tuple[Split, Split]:
    """(train, test) from ``cache_dir`` when this exact (dataset, params, seed) was generated before."""
    key = config_key([FORMAT_VERSION, dataset, params.model_dump(), seed], algorithm="sha1")

    def generate() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        train, test = GENERATORS[dataset](params, seed)
        return {"train": (train.tokens, train.labels), "test": (test.tokens, test.labels)}

    saved, _ = load_or_build(Path(cache_dir) / "theory" / f"{dataset}-{key}.pt", generate)
    return Split(*saved["train"]), Split(*saved["test"])
