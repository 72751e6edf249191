"""Trivial predictors several families share: what a model that learned nothing scores (``Baseline``).

The majority-class predictor always answers the class the *training* distribution favours, and is scored
on the run's evaluation labels. Which class that is comes from the training side (the training labels, or
the generator's known label distribution), never from the evaluation labels: the most frequent class of
the evaluation set itself scores above chance by sampling noise alone (with 512 labels of 8 uniform
classes, about 0.146 instead of 0.125), which would ask a model to beat a predictor that peeked. Classes
tied in the training distribution share the score (the predictor picks one of them at random: their mean
frequency), so uniform targets give exactly chance.
"""

from __future__ import annotations

from typing import Iterable

import torch

from harness.families.base import Baseline

MAJORITY, CHANCE = "majority class", "chance"


def most_frequent(labels: torch.Tensor) -> list[int]:
    """The classes tied for most frequent among ``labels`` (the training labels)."""
    values, counts = torch.unique(labels.flatten(), return_counts=True)
    return [int(v) for v in values[counts == counts.max()]]


def majority_class(eval_labels: torch.Tensor, favoured: Iterable[int], ignore: int | None = None,
                   scale: float = 1.0, kind: str = MAJORITY) -> Baseline:
    """Accuracy on ``eval_labels`` (entries equal to ``ignore`` are not scored) of answering one of the
    ``favoured`` classes, those tied for most likely in training: their mean frequency, times ``scale``
    (100 for a metric in %). ``kind``: chance where every class ties (uniform targets)."""
    y = eval_labels.flatten()
    if ignore is not None:
        y = y[y != ignore]
    classes = sorted(set(favoured))
    if y.numel() == 0 or not classes:
        raise ValueError("no scored labels or no favoured class: a trivial predictor needs both")
    hits = sum(int((y == c).sum()) for c in classes) / len(classes)
    return Baseline(scale * hits / y.numel(), kind)
