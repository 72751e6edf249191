"""The ``model:`` block shared by the classification and dense families (field names are the YAML keys)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from harness.families.base import Params
from harness.models.backbone import MAMBAOUT_SIZES


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
