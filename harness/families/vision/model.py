"""Model pairing for the vision families: the variant table (mixer options per stage and block), the
backbone it builds and L/(6D); the ``model:`` block they share is ``config.VisionModelParams``.

MambaOut (arXiv 2405.07992) pairs Gated CNN (``gated_cnn``), Mamba (``mamba``/``mamba2``, the Gated CNN
block with the SSM restored, scanned VMamba-style ``cross4`` or Vim-style ``bidirectional``) and attention
(Swin-style: shifted windows in the high-resolution stages, global attention in the low-resolution ones,
or global everywhere) on the same 4-stage skeleton (``harness.models.backbone``). Sizes are timm's
``mambaout_*`` (``size``); ``depths``/``dims`` shrink them for CPU and ``width`` (the first stage's
channels, the other stages keep their ratios) is the knob budget matching solves.

MambaOut's token-length criterion: a block costs ``24 D^2 L + 4 D L^2`` FLOPs, so the quadratic term
dominates when ``L > 6D``; ``token_columns`` reports ``L/(6D)`` for every stage.
"""

from __future__ import annotations

import json
import math
from typing import Any

from harness.families.variants import MixerSlot, VariantSpec, VariantTable
from harness.families.vision.config import VisionModelParams
from harness.models.backbone import VisionBackbone


def _attention(p: VisionModelParams, stage: int, block: int) -> dict[str, Any]:
    """Swin: (shifted) windows in the high-resolution stages, global attention late (or everywhere)."""
    windowed = p.attention_mode == "swin" and p.layout == "hierarchical" and stage < p.window_stages
    pos = p.pos if p.pos != "auto" else ("relative" if windowed else "rope")
    kw: dict[str, Any] = dict(head_dim=p.head_dim, pos=pos)
    if windowed:  # Swin alternates plain and half-window-shifted windows
        kw.update(window=p.window, shift=block % 2 == 1)
    return kw


# The vision variants and each mixer's options per (stage, block). Attention blocks carry an MLP
# (Swin/ViT); Mamba and Gated CNN blocks are already expanded. For gated_cnn the backbone passes the
# stage's first entry to timm's MambaOutStage.
VARIANTS = VariantTable(
    VariantSpec("mamba", mixer="mamba", options=lambda p, stage, block: dict(d_state=p.d_state, expand=p.expand, scan=p.scan)),
    VariantSpec("mamba2", mixer="mamba2", options=lambda p, stage, block: dict(
        d_state=p.d_state, expand=p.expand, scan=p.scan, headdim=p.head_dim)),
    VariantSpec("attention", mixer="attention", options=_attention, defaults={"mlp_ratio": 4.0}),
    VariantSpec("gated_cnn", mixer="gated_cnn", options=lambda p, stage, block: dict(
        expansion_ratio=p.expansion_ratio, kernel_size=p.kernel_size, conv_ratio=p.conv_ratio)),
    slot=MixerSlot(causal=False),  # a plugin's mixer in every block, called with each stage's shape=(H, W)
)


def check_resolution(p: VisionModelParams, resolution: int) -> None:
    """Refuse a resolution at which the last stage is a 1x1 grid: its token mixer would mix one token (the
    SSM's A gets exactly zero gradient, cross4's four scans coincide, attention is a linear map), which
    is no comparison of mixers. Model and resolution live in different blocks: the families' ``check_config``."""
    if p.layout == "isotropic":
        side, fix = math.ceil(resolution / p.patch_size), f"data.resolution > patch_size {p.patch_size}"
    else:
        n = len(p.resolved_depths_dims()[0])
        side = resolution
        for _ in range(n + 1):  # stem (two stride-2 convs) and n - 1 stride-2 downsamples: ceil(in / 2)
            side = math.ceil(side / 2)
        fix = f"data.resolution >= {2 ** (n + 1) + 1} for {n} stages, or fewer stages (shorter depths/dims)"
    if side < 2:
        raise ValueError(
            f"data.resolution {resolution} leaves the backbone's last stage a 1x1 grid (one token), so its token "
            f"mixer mixes nothing (the SSM's A gets no gradient, attention is a linear map); use {fix}"
        )


def build_backbone(use: str, p: VisionModelParams) -> VisionBackbone:
    spec = VARIANTS[use]
    depths, dims = p.resolved_depths_dims()
    return VisionBackbone(
        spec.mixer, depths, dims, layout=p.layout, patch_size=p.patch_size, mlp_ratio=p.mlp_ratio,
        drop_path=p.drop_path, mixer_kwargs=lambda stage, block: spec.options(p, stage, block),
    )


def token_columns(backbone: VisionBackbone, height: int, width: int) -> dict[str, Any]:
    """Row columns for MambaOut's criterion: ``l_over_6d`` is the max over stages (for the hierarchical
    layout that is stage 1, the longest sequence); ``seq_len``/``d_model`` are stage 1's tokens/width."""
    stats = backbone.token_stats(height, width)
    ratios = [tokens / (6 * dim) for tokens, dim in stats]
    return {
        "seq_len": stats[0][0],
        "d_model": stats[0][1],
        "l_over_6d": max(ratios),
        "l_over_6d_stages": json.dumps([round(r, 4) for r in ratios]),
        "stage_dims": json.dumps([dim for _, dim in stats]),
        "stage_tokens": json.dumps([tokens for tokens, _ in stats]),
        "layout": backbone.layout,
    }
