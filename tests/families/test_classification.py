"""The classification family (MambaOut): Pathfinder's renderer, and digits / LFW / image folders end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.config.sections import TrainConfig
from harness.errors import HarnessError
from harness.families import FAMILIES
from harness.families.classification.pathfinder import render_pathfinder
from harness.run.runner import build_experiment
from harness.run.train import train
from test_vision import TINY, TINY3, decreased, make_ctx


def test_pathfinder_deterministic_per_seed():
    a = [render_pathfinder(np.random.default_rng([0, i]), 48, 9, 2, 0.06, 0.35) for i in range(16)]
    b = [render_pathfinder(np.random.default_rng([0, i]), 48, 9, 2, 0.06, 0.35) for i in range(16)]
    c = render_pathfinder(np.random.default_rng([1, 0]), 48, 9, 2, 0.06, 0.35)
    assert all(torch.equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b))
    assert not torch.equal(a[0][0], c[0])
    assert {label for _, label in a} == {0, 1}
    image = a[0][0]
    assert image.shape == (1, 48, 48) and 0 <= image.min() and image.max() == 1


def test_classification_digits_trains(tmp_path):
    fam = FAMILIES.get("classification")()
    ctx = make_ctx("classification", "gated_cnn", "digits", {"resolution": 32}, TINY3, tmp_path, batch=32)
    exp = build_experiment(fam, ctx)
    result = train(exp, TrainConfig(steps=20, lr=3e-3, warmup_steps=2), ctx.device)
    assert decreased(result.losses)
    metrics = exp.evaluate()
    assert set(metrics) == set(fam.metrics) and metrics["top1"] > 0.2  # 10 classes: chance is 0.1
    assert fam.example_inputs(ctx, 2, exp.data)[0].shape == (2, 3, 32, 32)
    assert exp.row_extras()["seq_len"] == 64


def test_lfw_faces_is_binary_without_top5(tmp_path):
    fam = FAMILIES.get("classification")()
    ctx = make_ctx("classification", "gated_cnn", "lfw_faces", {"resolution": 32}, TINY3, tmp_path)
    exp = build_experiment(fam, ctx)
    assert exp.data.num_classes == 2 and len(exp.data.train) + len(exp.data.val) == 200
    assert math.isnan(exp.evaluate()["top5"])


def test_imagefolder_missing_path_is_clear(tmp_path):
    fam = FAMILIES.get("classification")()
    ctx = make_ctx("classification", "gated_cnn", "imagefolder", {"path": str(tmp_path / "nope")}, TINY, tmp_path)
    with pytest.raises(HarnessError, match="train/<class>"):
        build_experiment(fam, ctx)
