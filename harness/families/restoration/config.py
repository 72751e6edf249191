"""The ``data:`` and ``model:`` schemas of the restoration family (field names are the YAML keys)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from harness.families.base import Params, user_path

# scikit-image's bundled photographs, split by image: no test pixel is ever trained on
TRAIN_PHOTOS = (
    "astronaut", "coffee", "rocket", "stereo_motorcycle", "immunohistochemistry",
    "moon", "coins", "brick", "grass", "gravel", "text",
)
TEST_PHOTOS = ("chelsea", "camera", "clock")


class RestorationData(Params):
    """The ``data:`` fields every restoration dataset shares."""

    degradation: Literal["sr_x2", "sr_x3", "sr_x4", "denoise"] = "sr_x2"
    sigma: float = Field(25.0, gt=0, le=255, description="Gaussian noise std on the 0..255 scale (denoise only)")
    patch_size: int = Field(48, ge=8, description="HR side of the training crops and of the measured input")
    eval_size: int | None = Field(96, ge=16, description="HR side of the test crops; null = whole test images")
    eval_crops: int = Field(2, ge=1, description="crops per test image, at fixed positions (with eval_size)")
    augment: bool = Field(True, description="random flips and 90-degree rotations of training crops")

    @property
    def scale(self) -> int:
        """Upscaling factor (1 for denoising)."""
        return int(self.degradation.removeprefix("sr_x")) if self.degradation.startswith("sr_") else 1

    @model_validator(mode="after")
    def _sizes_divide(self) -> "RestorationData":
        for name in ("patch_size", "eval_size"):
            size = getattr(self, name)
            if size is not None and size % self.scale:
                raise ValueError(f"{name}={size} must be a multiple of the scale {self.scale} ({self.degradation})")
        return self


class PhotoData(RestorationData):
    """scikit-image's bundled photographs, split by image."""

    train_images: tuple[str, ...] = TRAIN_PHOTOS
    test_images: tuple[str, ...] = TEST_PHOTOS

    @model_validator(mode="after")
    def _disjoint(self) -> "PhotoData":
        shared = set(self.train_images) & set(self.test_images)
        if shared:
            raise ValueError(f"images in both train and test: {sorted(shared)}")
        if not self.train_images or not self.test_images:
            raise ValueError("train_images and test_images must each name at least one image")
        return self


class FolderData(RestorationData):
    """Paired SR folders in a published layout (``data.LAYOUTS``): DIV2K as shipped, BasicSR's GTmod12 /
    LRbicx<s>, MambaIR's HR / LR_bicubic/X<s>."""

    train_path: str = user_path("folder", "training pairs: a DIV2K folder (DIV2K_train_HR, DIV2K_train_LR_bicubic/X<s>), "
                                "or a folder with HR/ + LR_bicubic/X<s>/ or GTmod12/ + LRbicx<s>/, or that HR folder itself")
    test_path: str = user_path("folder", "evaluation pairs in one of the same layouts (e.g. Set5, Urban100, DIV2K_valid_*)")



class RestorationModelParams(Params):
    """The ``model:`` block of a restoration task (defaults: a CPU-sized light model)."""

    embed_dim: int = Field(24, ge=4, description="channels of the body (the budget-matching width)")
    depths: tuple[Annotated[int, Field(ge=1)], ...] = Field((2, 2), min_length=1, description="layers per group")
    mlp_ratio: float = Field(2.0, ge=0, description="gated-MLP hidden width / embed_dim (0 = no MLP)")
    layer_scale_init: float | None = Field(None, gt=0, description="per-branch LayerScale init (MambaIRv2); null = none")
    n_heads: int = Field(4, ge=1, description="window-attention heads (head_dim = embed_dim // n_heads)")
    window_size: int = Field(8, ge=2, description="attention window side (paper: 16); inputs are padded to a multiple")
    attn_branch: bool = Field(False, description="window attention before the SSM in each layer (default on for mambairv2)")
    d_state: int = Field(8, ge=1, description="SSM state size (MambaIRv2-light: 8)")
    expand: float = Field(2.0, gt=0, description="SSM inner width / embed_dim")
    ase: bool = Field(True, description="mambairv2: attentive state-space equation (prompt in the scan)")
    prompt_into: Literal["C", "B", "dt", "y"] = Field("C", description="mambairv2: where the prompt is added")
    sgn: bool = Field(True, description="mambairv2: semantic guided neighboring (sort pixels by router class)")
    num_prompts: int = Field(64, ge=1, description="mambairv2: prompt slots T")
    prompt_rank: int = Field(32, ge=1, description="mambairv2: rank r of the prompt pool M (T x r) @ N (r x d)")
    impl: Literal["auto", "fused", "ref"] = Field("auto", description="scan kernel: fused CUDA, reference, or auto")
