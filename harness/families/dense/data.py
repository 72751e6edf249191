"""Dense-prediction datasets: procedural shapes, COCO-format detection, ADE20K-layout segmentation.

Samples are ``(image (3, R, R) in [0, 1], target)`` with target keys ``boxes`` (n, 4) xyxy pixels and
``labels`` (n,) in 1..K for detection, ``mask`` (R, R) class indices for segmentation (``ignore_index``
marks unlabeled pixels). Real images are resized to a square ``resolution`` (boxes scaled alike).
pycocotools is not a dependency: the COCO json is parsed here (images, annotations, categories;
crowd boxes skipped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset

from harness.errors import HarnessError
from harness.families.base import DatasetSpec
from harness.families.dense.config import AdeParams, CocoParams, ShapesParams
from harness.families.dense.shapes import CLASSES, render_shapes
from harness.families.vision.batching import RenderedDataset

IGNORE_INDEX = 255


@dataclass
class DenseData:
    train: Dataset
    val: Dataset
    num_classes: int  # segmentation: mask classes (background included); detection: labels 1..K plus 0
    resolution: int
    heads: tuple[str, ...]  # which heads the targets support


def load_shapes(p: ShapesParams) -> DenseData:
    if p.min_size > p.max_size:
        raise HarnessError(f"shapes: min_size {p.min_size} exceeds max_size {p.max_size}")

    def render(rng: np.random.Generator):
        return render_shapes(rng, p.resolution, p.max_shapes, p.min_size, p.max_size, p.min_visible)

    train = RenderedDataset(render, p.n_train, seed=2 * p.seed)
    val = RenderedDataset(render, p.n_val, seed=2 * p.seed + 1)
    return DenseData(train, val, len(CLASSES) + 1, p.resolution, ("detection", "segmentation"))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise HarnessError(f"{path} does not exist; expected {what}")
    return path


class CocoDetection(Dataset):
    """COCO-format boxes; categories are renumbered 1..K in sorted id order."""

    def __init__(self, ann_file: Path, image_dir: Path, resolution: int, limit: int | None, categories: list[int] | None = None):
        spec = json.loads(_require(ann_file, "a COCO instances json").read_text())
        _require(image_dir, "the folder of the images the json names")
        self.categories = categories or sorted(c["id"] for c in spec["categories"])
        label_of = {cid: i + 1 for i, cid in enumerate(self.categories)}
        per_image: dict[int, list[dict[str, Any]]] = {}
        for ann in spec["annotations"]:
            if not ann.get("iscrowd", 0) and ann["bbox"][2] >= 1 and ann["bbox"][3] >= 1:
                per_image.setdefault(ann["image_id"], []).append(ann)
        images = sorted(spec["images"], key=lambda im: im["id"])[:limit]
        self.items = [(image_dir / im["file_name"], per_image.get(im["id"], []), label_of) for im in images]
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        path, anns, label_of = self.items[i]
        image = Image.open(path).convert("RGB")
        sx, sy = self.resolution / image.width, self.resolution / image.height
        tensor = TF.to_tensor(TF.resize(image, [self.resolution, self.resolution], antialias=True))
        boxes = [[x * sx, y * sy, (x + w) * sx, (y + h) * sy] for x, y, w, h in (a["bbox"] for a in anns)]
        return tensor, {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([label_of[a["category_id"]] for a in anns], dtype=torch.int64),
        }


def load_coco(p: CocoParams) -> DenseData:
    root = _require(Path(p.path).expanduser(), "a COCO root folder")
    train = CocoDetection(root / p.train_ann, root / p.train_images, p.resolution, p.max_train)
    val = CocoDetection(root / p.val_ann, root / p.val_images, p.resolution, p.max_val, train.categories)
    return DenseData(train, val, len(train.categories) + 1, p.resolution, ("detection",))


class MaskFolder(Dataset):
    """Image/mask pairs matched by file stem (ADE20K's ADEChallengeData2016 layout)."""

    def __init__(self, image_dir: Path, mask_dir: Path, p: AdeParams, limit: int | None):
        _require(image_dir, "a folder of .jpg images")
        _require(mask_dir, "a folder of .png class-index masks named like the images")
        masks = {m.stem: m for m in mask_dir.glob("*.png")}
        images = sorted(f for f in image_dir.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        missing = [f.name for f in images if f.stem not in masks]
        if missing:
            raise HarnessError(f"{mask_dir} has no mask for {len(missing)} images, e.g. {missing[0]}")
        self.pairs = [(f, masks[f.stem]) for f in images][:limit]
        self.p = p

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image_path, mask_path = self.pairs[i]
        size = [self.p.resolution, self.p.resolution]
        image = TF.to_tensor(TF.resize(Image.open(image_path).convert("RGB"), size, antialias=True))
        mask = torch.from_numpy(np.array(TF.resize(Image.open(mask_path), size, TF.InterpolationMode.NEAREST))).long()
        if self.p.reduce_zero_label:
            mask = torch.where(mask == 0, IGNORE_INDEX, mask - 1)
        return image, {"mask": mask}


def load_ade(p: AdeParams) -> DenseData:
    root = _require(Path(p.path).expanduser(), "an ADE20K root folder")
    train = MaskFolder(root / "images" / "training", root / "annotations" / "training", p, p.max_train)
    val = MaskFolder(root / "images" / "validation", root / "annotations" / "validation", p, p.max_val)
    return DenseData(train, val, p.num_classes, p.resolution, ("segmentation",))


DATASETS = {
    "shapes": DatasetSpec(ShapesParams, "procedural occluded shapes (4 classes) on textured backgrounds, boxes + masks"),
    "coco": DatasetSpec(CocoParams, "COCO-format detection json + images from a user path"),
    "ade20k": DatasetSpec(AdeParams, "ADE20K-layout segmentation (images/ + annotations/ folders) from a user path"),
}

LOADERS = {"shapes": load_shapes, "coco": load_coco, "ade20k": load_ade}
