"""The dense family (MambaOut): the shapes renderer, FCOS detection and FPN segmentation heads end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.config.sections import TrainConfig
from harness.errors import HarnessError
from harness.families import FAMILIES
from harness.families.dense.shapes import render_shapes
from harness.run.runner import build_experiment
from harness.run.train import train
from test_vision import TINY, decreased, make_ctx


def test_shapes_deterministic_and_targets_consistent():
    for i in range(8):
        image, target = render_shapes(np.random.default_rng([0, i]), 64, 4, 0.15, 0.4, 0.3)
        again, target2 = render_shapes(np.random.default_rng([0, i]), 64, 4, 0.15, 0.4, 0.3)
        assert torch.equal(image, again) and torch.equal(target["mask"], target2["mask"])
        boxes, labels, mask = target["boxes"], target["labels"], target["mask"]
        assert image.shape == (3, 64, 64) and len(boxes) == len(labels) >= 1
        assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 64
        for box, label in zip(boxes.long(), labels):  # each box holds pixels of its class in the mask
            assert (mask[box[1] : box[3], box[0] : box[2]] == label).any()
    other, _ = render_shapes(np.random.default_rng([1, 0]), 64, 4, 0.15, 0.4, 0.3)
    assert not torch.equal(other, render_shapes(np.random.default_rng([0, 0]), 64, 4, 0.15, 0.4, 0.3)[0])


@pytest.mark.parametrize("head", ["detection", "segmentation"])
def test_dense_heads_train(head, tmp_path):
    fam = FAMILIES.get("dense")()
    data = {"resolution": 64, "n_train": 32, "n_val": 8}
    ctx = make_ctx("dense", "gated_cnn", "shapes", data, {**TINY, "head": head}, tmp_path, batch=8)
    exp = build_experiment(fam, ctx)
    result = train(exp, TrainConfig(steps=12, lr=3e-3, warmup_steps=2), ctx.device)
    assert decreased(result.losses)
    outputs = exp.model(*fam.example_inputs(ctx, 2, exp.data))
    assert all(torch.isfinite(o).all() for o in (outputs if isinstance(outputs, tuple) else (outputs,)))
    if head == "segmentation":
        metrics = exp.evaluate()
        assert 0 <= metrics["miou"] <= 1 and 0 <= metrics["pixel_acc"] <= 1 and math.isnan(metrics["map"])


def test_detection_map(tmp_path):
    """Box mAP through torchmetrics, whose COCO backend is the pycocotools package."""
    pytest.importorskip("pycocotools")
    fam = FAMILIES.get("dense")()
    data = {"resolution": 64, "n_train": 16, "n_val": 8}
    ctx = make_ctx("dense", "gated_cnn", "shapes", data, {**TINY, "head": "detection"}, tmp_path, batch=8)
    exp = build_experiment(fam, ctx)
    train(exp, TrainConfig(steps=4, lr=3e-3, warmup_steps=1), ctx.device)
    metrics = exp.evaluate()
    assert 0 <= metrics["map"] <= 1 and 0 <= metrics["map_50"] <= 1 and math.isnan(metrics["miou"])


def test_dense_head_needs_matching_targets(tmp_path):
    (tmp_path / "images" / "training").mkdir(parents=True)
    fam = FAMILIES.get("dense")()
    ctx = make_ctx("dense", "gated_cnn", "ade20k", {"path": str(tmp_path)}, {**TINY, "head": "detection"}, tmp_path)
    with pytest.raises(HarnessError, match="annotations"):
        build_experiment(fam, ctx)
