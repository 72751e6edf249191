"""What the vision families share (MambaOut pairing): the swapped backbone, its width knob and L/(6D), FLOPs
against timm; the tiny contexts the classification and dense tests build on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.families import FAMILIES
from harness.families.base import RunContext
from harness.families.vision.config import VisionModelParams
from harness.families.vision.model import build_backbone, token_columns
from harness.models.backbone import ImageClassifier, VisionBackbone

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
