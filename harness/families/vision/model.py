"""Model pairing for the vision families: one ``model:`` schema, the variant table (mixer options per
stage and block), L/(6D).

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
from typing import Any, Literal

from pydantic import Field, model_validator

from harness.families.base import Params
from harness.families.variants import VariantSpec, VariantTable
from harness.models.backbone import MAMBAOUT_SIZES, VisionBackbone


class VisionModelParams(Params):
    """The ``model:`` block shared by the classification and dense families."""

    # -- skeleton ------------------------------------------------------------------------------
    layout: Literal["hierarchical", "isotropic"] = Field(
        "hierarchical", description="MambaOut 4-stage pyramid, or ViT/Vim isotropic (patch_size, one stage)"
    )
    size: Literal["femto", "kobe", "tiny", "small", "base"] = Field("tiny", description="timm mambaout_* depths/dims")
    depths: tuple[int, ...] | None = Field(None, description="blocks per stage (default: the size's); isotropic uses the sum")
    dims: tuple[int, ...] | None = Field(None, description="channels per stage (default: the size's)")
    width: int = Field(
        0, ge=0, description="first-stage channels, the other stages scale with it; budget knob (0 or unset: dims[0])"
    )
    dim_multiple: int = Field(8, ge=1, description="rescaled stage widths are rounded to this multiple")
    patch_size: int = Field(16, ge=2, description="isotropic layout's patch size")
    mlp_ratio: float = Field(0.0, ge=0, description="MLP after each mamba/attention mixer (attention's default: 4)")
    drop_path: float = Field(0.0, ge=0, lt=1)
    # -- gated_cnn (timm GatedConvBlock) ------------------------------------------------------
    expansion_ratio: float = Field(8 / 3, gt=0)
    kernel_size: int = Field(7, ge=1)
    conv_ratio: float = Field(1.0, gt=0, le=1)
    # -- mamba / mamba2 --------------------------------------------------------------------------
    d_state: int = Field(16, ge=1)
    expand: int = Field(2, ge=1)
    scan: Literal["cross4", "bidirectional", "raster"] = Field("cross4", description="VMamba cross4 or Vim bidirectional")
    # -- attention -------------------------------------------------------------------------------
    attention_mode: Literal["swin", "global"] = Field("swin", description="swin: windows in early stages, global late")
    window: int = Field(7, ge=2)
    window_stages: int = Field(2, ge=0, description="swin mode: this many high-resolution stages use (shifted) windows")
    head_dim: int = Field(32, ge=4, description="attention head width; also mamba2's headdim (expand*dim must divide)")
    pos: Literal["auto", "none", "rope", "relative"] = Field(
        "auto", description="auto: relative bias in windows, 2-D RoPE in global attention"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_width(cls, data: Any) -> Any:
        """Fill ``width`` with the first stage's channels, so budget matching starts from a number."""
        if isinstance(data, dict) and not data.get("width"):
            size = MAMBAOUT_SIZES.get(data.get("size", "tiny"))
            dims = data.get("dims") or (size[1] if size else None)
            if dims:  # otherwise field validation reports the bad size/dims
                data = {**data, "width": dims[0]}
        return data

    @model_validator(mode="after")
    def _check(self) -> "VisionModelParams":
        depths, dims = self.resolved_depths_dims()
        if len(depths) != len(dims):
            raise ValueError(f"depths {depths} and dims {dims} need the same length")
        return self

    def resolved_depths_dims(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Depths and the stage widths after ``width`` rescaling."""
        base_depths, base_dims = MAMBAOUT_SIZES[self.size]
        depths = tuple(self.depths or base_depths)
        dims = tuple(self.dims or base_dims)
        if self.width and self.width != dims[0]:
            m = self.dim_multiple
            dims = tuple(max(m, round(d * self.width / dims[0] / m) * m) for d in dims)
            dims = (self.width, *dims[1:])
        return depths, dims


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
