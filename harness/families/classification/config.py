"""The ``data:`` schemas of the classification family (its ``model:`` block is the shared vision one,
``harness.families.vision.config``); field names are the YAML keys."""

from __future__ import annotations

from pydantic import Field

from harness.families.base import Params, user_path


class DigitsParams(Params):
    resolution: int = Field(32, ge=8, description="images are upsampled from 8x8 to this size")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = Field(0, description="split seed (the data stays fixed across run seeds)")


class LfwParams(Params):
    resolution: int = Field(32, ge=8, description="images are upsampled from 25x25 to this size")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = Field(0, description="split seed")


class PathfinderParams(Params):
    resolution: int = Field(32, ge=16, le=1024, description="image size (LRA uses 32, 64, 128, 256)")
    n_train: int = Field(2000, ge=1)
    n_val: int = Field(500, ge=1)
    path_segments: int = Field(9, ge=1, description="segments per path (contour length, LRA's difficulty)")
    n_distractors: int = Field(2, ge=0, description="paths besides the one or two that carry the dots")
    segment_length: float = Field(0.06, gt=0, le=0.5, description="segment length as a fraction of the image")
    curvature: float = Field(0.35, ge=0, description="std of the turn between segments (radians)")
    seed: int = Field(0, description="generator seed (the data stays fixed across run seeds)")


class ImageFolderParams(Params):
    path: str = user_path("folder", "folder holding train/<class>/* and val/<class>/* images")
    resolution: int = Field(224, ge=8)
    augment: bool = Field(True, description="timm's training transform (random resized crop, flip, jitter)")
