"""Vision families (MambaOut pairing): generators, the swapped backbone, heads, FLOPs against timm."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config.sections import TrainConfig
from harness.errors import HarnessError
from harness.families import FAMILIES
from harness.families.base import RunContext
from harness.families.vision.model import VisionModelParams, build_backbone, token_columns
from harness.families.classification.pathfinder import render_pathfinder
from harness.families.dense.shapes import render_shapes
from harness.models.backbone import ImageClassifier, VisionBackbone
from harness.run.train import train
from harness.run.runner import build_experiment

TINY = dict(depths=[1, 1, 1, 1], dims=[16, 16, 32, 32], head_dim=16)
TINY3 = dict(depths=[1, 1, 1], dims=[16, 16, 32], head_dim=16)  # 32 px: 8x8, 4x4, 2x2 (4 stages: a 1x1 last)



def make_ctx(family: str, use: str, dataset: str, data: dict, model: dict, tmp_path: Path, batch: int = 16) -> RunContext:
    fam = FAMILIES.get(family)()
    return RunContext(
        task=dataset, variant=use, use=use, dataset=dataset,
        data=fam.datasets[dataset].params(**data),
        model=fam.ModelParams(**{**fam.variant_defaults(use), **model}),
        seed=0, device=torch.device("cpu"), cache_dir=tmp_path, train_batch_size=batch, eval_batch_size=32,
    )


def decreased(losses: list[float], k: int = 3) -> bool:
    return float(np.mean(losses[-k:])) < float(np.mean(losses[:k]))


# -- data generators -------------------------------------------------------------------------------


def test_pathfinder_deterministic_per_seed():
    a = [render_pathfinder(np.random.default_rng([0, i]), 48, 9, 2, 0.06, 0.35) for i in range(16)]
    b = [render_pathfinder(np.random.default_rng([0, i]), 48, 9, 2, 0.06, 0.35) for i in range(16)]
    c = render_pathfinder(np.random.default_rng([1, 0]), 48, 9, 2, 0.06, 0.35)
    assert all(torch.equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b))
    assert not torch.equal(a[0][0], c[0])
    assert {label for _, label in a} == {0, 1}
    image = a[0][0]
    assert image.shape == (1, 48, 48) and 0 <= image.min() and image.max() == 1


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


# -- backbone ----------------------------------------------------------------------------------------

VARIANTS = [
    ("gated_cnn", {}),
    ("mamba", {"scan": "cross4"}),
    ("mamba", {"scan": "bidirectional"}),
    ("mamba2", {}),
    ("attention", {"attention_mode": "swin", "window": 4}),
    ("attention", {"attention_mode": "global"}),
    ("attention", {"layout": "isotropic", "patch_size": 8}),
    ("gated_cnn", {"layout": "isotropic", "patch_size": 8}),
]


@pytest.mark.parametrize("use,options", VARIANTS, ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())))
def test_backbone_forward_backward_two_resolutions(use, options):
    params = VisionModelParams(**{**TINY, **options, "mlp_ratio": 2.0 if use == "attention" else 0.0})
    torch.manual_seed(0)
    model = ImageClassifier(build_backbone(use, params), num_classes=3)
    for size in (32, 40):  # 40 px: stage-1 grid 10x10, not a multiple of the window (padding path)
        model.zero_grad()
        logits = model(torch.randn(2, 3, size, size))
        assert logits.shape == (2, 3)
        logits.square().sum().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, f"parameters without a finite gradient at {size}px: {missing[:5]}"
    feats = model.backbone.forward_intermediates(torch.randn(1, 3, 64, 64))
    for feat, info in zip(feats, model.backbone.feature_info):
        assert feat.shape[1] == info["num_chs"] and feat.shape[-1] == 64 // info["reduction"]


def test_mambaout_tiny_matches_timm_params_and_flops():
    """Our gated_cnn backbone at MambaOut-Tiny size is timm's mambaout_tiny: 26.5M params, 4.5 GMACs at 224.

    fvcore counts one fused multiply-add as one "flop", i.e. its total is in MACs (the paper's GMACs)."""
    import timm
    from fvcore.nn import FlopCountAnalysis

    model = ImageClassifier(build_backbone("gated_cnn", VisionModelParams(size="tiny")), 1000).eval()
    reference = timm.create_model("mambaout_tiny")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    counter = FlopCountAnalysis(model, torch.randn(1, 3, 224, 224))
    counter.unsupported_ops_warnings(False)
    counter.uncalled_modules_warnings(False)
    assert abs(counter.total() / 4.5e9 - 1) < 0.03


def test_width_knob_and_token_columns():
    params = VisionModelParams(size="tiny")
    assert params.width == 96 and params.resolved_depths_dims()[1] == (96, 192, 384, 576)
    half = params.model_copy(update={"width": 48})
    assert half.resolved_depths_dims()[1] == (48, 96, 192, 288)
    cols = token_columns(VisionBackbone("gated_cnn", *params.resolved_depths_dims()), 224, 224)
    # MambaOut's criterion: stage 1 at 224 px has 56*56 tokens of width 96
    assert cols["seq_len"] == 3136 and cols["d_model"] == 96
    assert math.isclose(cols["l_over_6d"], 3136 / 576)
    assert json.loads(cols["l_over_6d_stages"])[3] == round(49 / (6 * 576), 4)


# -- families end to end --------------------------------------------------------------------------


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
