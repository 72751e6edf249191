"""Synthetic sequence tasks, generated on the fly from a seed (no files, fully deterministic).

Each generator returns ``(tokens, targets)``: tokens (N, L) long; targets (N, L) long with -100 where
no prediction is scored, so one per-position cross-entropy serves every task.

- selective_copy (Gu & Dao 2023, Mamba §4.1.1): ``num_tokens`` data tokens scattered among noise in
  the first ``seq_len`` positions, then ``num_tokens`` marker tokens; at each marker the model must emit
  the data tokens in order. Needs content-based selection: a time-invariant convolution cannot solve it.
- mqar (Arora et al. 2023, Zoology): ``num_kv`` key-value pairs, then queries of those keys at random
  later positions; at each query the model must emit the bound value (multi-query associative recall).
- majority: a binary sequence; at the last position the label is the majority bit (ties -> 0). A
  long-range aggregate over the whole sequence.
"""

from __future__ import annotations

from typing import Callable

import torch

from harness.families.base import Params
from harness.families.sequence.config import MajorityData, MQARData, SelectiveCopyData

IGNORE = -100


def _rand_positions(gen: torch.Generator, n: int, length: int, k: int) -> torch.Tensor:
    """(n, k) sorted distinct positions in [0, length) per row."""
    return torch.rand(n, length, generator=gen).argsort(dim=1)[:, :k].sort(dim=1).values


def selective_copy(p: SelectiveCopyData, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    noise, marker, first_data = 0, 1, 2
    total = p.seq_len + p.num_tokens
    tokens = torch.full((n, total), noise, dtype=torch.long)
    data = torch.randint(first_data, first_data + p.vocab, (n, p.num_tokens), generator=gen)
    pos = _rand_positions(gen, n, p.seq_len, p.num_tokens)
    tokens.scatter_(1, pos, data)
    tokens[:, p.seq_len :] = marker
    targets = torch.full_like(tokens, IGNORE)
    targets[:, p.seq_len :] = data
    return tokens, targets


def mqar(p: MQARData, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    noise, first_key = 0, 1
    first_value = first_key + p.key_vocab
    keys = torch.rand(n, p.key_vocab, generator=gen).argsort(dim=1)[:, : p.num_kv] + first_key
    values = torch.randint(first_value, first_value + p.value_vocab, (n, p.num_kv), generator=gen)
    tokens = torch.full((n, p.seq_len), noise, dtype=torch.long)
    tokens[:, 0 : 2 * p.num_kv : 2] = keys
    tokens[:, 1 : 2 * p.num_kv : 2] = values
    targets = torch.full_like(tokens, IGNORE)
    query_region = p.seq_len - 2 * p.num_kv
    qpos = _rand_positions(gen, n, query_region, p.num_kv) + 2 * p.num_kv
    order = torch.rand(n, p.num_kv, generator=gen).argsort(dim=1)  # which pair each query asks for
    tokens.scatter_(1, qpos, keys.gather(1, order))
    targets.scatter_(1, qpos, values.gather(1, order))
    return tokens, targets


def majority(p: MajorityData, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    bits = torch.randint(0, 2, (n, p.seq_len), generator=gen)
    tokens = bits + 1  # 0 is kept free as a pad id
    targets = torch.full_like(tokens, IGNORE)
    targets[:, -1] = (2 * bits.sum(dim=1) > p.seq_len).long()
    return tokens, targets


Generator = Callable[[Params, int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
GENERATORS: dict[str, Generator] = {"selective_copy": selective_copy, "mqar": mqar, "majority": majority}


def vocab_size(name: str, p: Params) -> int:
    """Input tokens of dataset ``name`` (a registered dataset's schema says: ``p.vocab_size``)."""
    if name == "selective_copy":
        return p.vocab + 2
    if name == "mqar":
        return 1 + p.key_vocab + p.value_vocab
    if name == "majority":
        return 3
    return p.vocab_size


def n_outputs(name: str, p: Params) -> int:
    """Output classes per position (a registered dataset's schema says: ``p.n_outputs``)."""
    if name == "majority":
        return 2
    return vocab_size(name, p) if name in GENERATORS else p.n_outputs


def generate(name: str, p: Params, n: int, seed: int, load: Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples of the stream ``seed``, by a built-in generator or a registered dataset's ``load``."""
    gen = torch.Generator().manual_seed(seed)
    return (load or GENERATORS[name])(p, n, gen)
