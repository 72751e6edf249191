"""The ``data:`` and ``model:`` schemas of the dense family (the shared vision ``model:`` block plus the
head's fields); field names are the YAML keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from harness.families.base import Params, user_path
from harness.families.vision.config import VisionModelParams


class ShapesParams(Params):
    resolution: int = Field(64, ge=32, le=4096, description="image size (sweep it: 64 on CPU, 224/512/1024 on GPU)")
    n_train: int = Field(512, ge=1)
    n_val: int = Field(64, ge=1)
    max_shapes: int = Field(4, ge=1, description="shapes per scene: 1..max_shapes")
    min_size: float = Field(0.15, gt=0, le=1, description="smallest shape diameter, fraction of the image")
    max_size: float = Field(0.4, gt=0, le=1, description="largest shape diameter, fraction of the image")
    min_visible: float = Field(0.3, ge=0, le=1, description="boxes only for shapes with this visible fraction")
    seed: int = Field(0, description="generator seed (the data stays fixed across run seeds)")


class CocoParams(Params):
    path: str = user_path("folder", "COCO root holding the annotation json files and image folders")
    train_ann: str = "annotations/instances_train2017.json"
    val_ann: str = "annotations/instances_val2017.json"
    train_images: str = "train2017"
    val_images: str = "val2017"
    resolution: int = Field(512, ge=32)
    max_train: int | None = Field(None, ge=1, description="use only the first N training images")
    max_val: int | None = Field(None, ge=1, description="use only the first N validation images")


class AdeParams(Params):
    path: str = user_path("folder", "ADE20K root: images/{training,validation}/*.jpg, annotations/{...}/*.png")
    resolution: int = Field(512, ge=32)
    num_classes: int = Field(150, ge=1, description="classes in the masks (after reduce_zero_label)")
    reduce_zero_label: bool = Field(True, description="mask value 0 = unlabeled (ignored), v -> v - 1 (ADE20K)")
    max_train: int | None = Field(None, ge=1)
    max_val: int | None = Field(None, ge=1)


class DenseModelParams(VisionModelParams):
    head: Literal["detection", "segmentation"] = Field("detection", description="FCOS boxes or FPN semantic masks")
    fpn_channels: int = Field(32, ge=16, multiple_of=16, description="FPN width; detection: a multiple of 32 (FCOS's GroupNorm(32))")
    head_convs: int = Field(2, ge=1, description="FCOS tower depth (torchvision's default is 4)")

    @field_validator("fpn_channels")
    @classmethod
    def _fcos_groups(cls, value: int, info: ValidationInfo) -> int:
        """torchvision's ``FCOSHead`` normalises its towers with ``GroupNorm(32, fpn_channels)``."""
        if info.data.get("head") == "detection" and value % 32:
            raise ValueError(f"fpn_channels={value} must be a multiple of 32 with head: detection (torchvision's FCOS head "
                             f"normalises with GroupNorm(32, fpn_channels)); use {max(32, round(value / 32) * 32)}")
        return value
