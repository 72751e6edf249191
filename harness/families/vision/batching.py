"""Deterministic batches by step index, shared by the vision families.

The shared training loop asks for ``train_batch(step)``; batch ``step`` is slice ``step`` of a per-epoch
permutation seeded by (run seed, epoch), so a rerun (or a resumed run) sees exactly the same batches
without a stateful DataLoader iterator. Built-in datasets render each sample from (seed, index)
(``RenderedDataset``) and keep rendered samples in memory up to a byte budget.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate


class StepSampler:
    """Indices of training batch ``step`` over ``n`` items (epochs reshuffled, short sets wrap around)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n == 0:
            raise ValueError("the training set is empty")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = max(1, n // batch_size)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=gen)
            reps = -(-self.batch_size // self.n)  # ceil: a set smaller than a batch repeats
            self._epoch, self._perm = epoch, perm.repeat(reps)
        return self._perm[k * self.batch_size : (k + 1) * self.batch_size].tolist()


def eval_chunks(n: int, batch_size: int) -> list[list[int]]:
    """Consecutive index chunks covering ``range(n)`` for evaluation."""
    return [list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]


def collate(dataset: Dataset, indices: Sequence[int]) -> Any:
    return default_collate([dataset[i] for i in indices])


class RenderedDataset(Dataset):
    """Sample ``i`` is ``render(np.random.default_rng([seed, i]))``: deterministic per (seed, index) and
    independent of which other samples were drawn; rendered samples are cached while they fit ``cache_bytes``."""

    def __init__(self, render: Callable[[np.random.Generator], Any], n: int, seed: int, cache_bytes: int = 512 * 2**20):
        self.render, self.n, self.seed, self.cache_bytes = render, n, seed, cache_bytes
        self._cache: dict[int, Any] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        if i in self._cache:
            return self._cache[i]
        sample = self.render(np.random.default_rng([self.seed, i]))
        size = sum(t.numel() * t.element_size() for t in _tensors(sample))
        if self._bytes + size <= self.cache_bytes:
            self._cache[i] = sample
            self._bytes += size
        return sample


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


def example_images(resolution: int, batch_size: int, *, unit_range: bool = False) -> tuple[torch.Tensor]:
    """Fixed-seed inputs for measurement, shaped as the family's images: standard normal, or uniform in
    [0, 1] with ``unit_range`` (the dense family's images are in that range)."""
    gen = torch.Generator().manual_seed(0)
    sample = torch.rand if unit_range else torch.randn
    return (sample(batch_size, 3, resolution, resolution, generator=gen),)
