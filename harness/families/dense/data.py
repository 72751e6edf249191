"""Dense-prediction datasets: procedural shapes, COCO-format detection, ADE20K-layout segmentation.

Samples are ``(image (3, R, R) in [0, 1], target)`` with target keys ``boxes`` (n, 4) xyxy pixels and
``labels`` (n,) in 1..K for detection, ``mask`` (R, R) class indices for segmentation (``ignore_index``
marks unlabeled pixels). Real images are resized to a square ``resolution`` (boxes scaled alike); COCO and
ADE20K are read in their owners' layouts and scored as pycocotools' COCOeval and mmsegmentation score them
(see each section below; ``DenseData.protocol`` says where we differ). The COCO json is parsed here (the
same keys pycocotools reads), so validation can check it without building the index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

from harness.errors import DataError, HarnessError
from harness.families.base import DatasetSpec
from harness.families.dense.config import AdeParams, CocoParams, ShapesParams
from harness.families.dense.shapes import CLASSES, render_shapes
from harness.families.images import EXTENSIONS_TEXT, image_files, open_image
from harness.families.vision.batching import RenderedDataset

IGNORE_INDEX = 255


@dataclass
class DenseData:
    train: Dataset
    val: Dataset
    num_classes: int  # segmentation: mask classes (background included); detection: labels 1..K plus 0
    resolution: int
    heads: tuple[str, ...]  # which heads the targets support
    protocol: str = ""  # how a dataset read from its owners' layout is scored, and where we differ (the row's data_protocol)


def load_shapes(p: ShapesParams) -> DenseData:
    if p.min_size > p.max_size:
        raise HarnessError(f"shapes: min_size {p.min_size} exceeds max_size {p.max_size}")

    def render(rng: np.random.Generator):
        return render_shapes(rng, p.resolution, p.max_shapes, p.min_size, p.max_size, p.min_visible)

    train = RenderedDataset(render, p.n_train, seed=2 * p.seed)
    val = RenderedDataset(render, p.n_val, seed=2 * p.seed + 1)
    return DenseData(train, val, len(CLASSES) + 1, p.resolution, ("detection", "segmentation"))


def _require(path: Path, what: str, field: tuple[str, ...] = ("path",)) -> Path:
    if not path.exists():
        raise DataError(f"{path} does not exist; expected {what}", field)
    return path


# ---- COCO -----------------------------------------------------------------------------------------
# Read as pycocotools reads it (``COCO(annotation_file)``: images, annotations, categories), scored as
# ``COCOeval`` scores boxes: every annotation of an image is ground truth, crowd ones (iscrowd: 1) are
# ignore regions (a detection on one is neither a hit nor a false positive), and ``area`` is the json's
# (object) area, scaled with the image. Training targets are mmdetection's (``CocoDataset``): crowd
# boxes, boxes under one pixel wide or high, and zero-area annotations are left out.

COCO_KEYS = ("images", "annotations", "categories")
COCO_SCAN_BYTES = 1 << 20  # validation reads the first MiB of a json for image names


def _coco_layout(p: CocoParams) -> str:
    return (f"{p.path}/{p.train_ann} and {p.val_ann} (pycocotools' instances json: images, annotations, categories) "
            f"with the images in {p.path}/{p.train_images}/ and {p.path}/{p.val_images}/")


def check_coco_json(ann_file: Path, image_dir: Path, field: tuple[str, ...], layout: str, n_images: int = 3) -> None:
    """Cheap checks of one annotation json without parsing it (COCO's train json is 450 MB): its top-level
    keys are present and the first images it names exist in ``image_dir``."""
    import mmap
    import re

    _require(ann_file, f"a COCO instances json: {layout}", field)
    _require(image_dir, f"the folder of the images {ann_file.name} names: {layout}", field)
    with open(ann_file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as text:
        missing = [key for key in COCO_KEYS if text.find(f'"{key}"'.encode()) < 0]
        head = text[:COCO_SCAN_BYTES].decode("utf-8", errors="replace")
    if "annotations" in missing and "images" not in missing:
        raise DataError(f"{ann_file} has no 'annotations': an image-info json (such as COCO's test-dev "
                        "image_info_test-dev2017.json) has nothing to score; use an instances_*.json", field)
    if missing:
        raise DataError(f"{ann_file} is not a COCO instances json: no {', '.join(repr(k) for k in missing)}; expected {layout}", field)
    for name in re.findall(r'"file_name"\s*:\s*"([^"]+)"', head)[:n_images]:
        if not (image_dir / name).is_file():
            raise DataError(f"{image_dir / name} not found: {ann_file.name} names it in images[].file_name; "
                            f"point data.path (and the image folder keys) at the folder holding it", field)


def check_coco(p: CocoParams) -> None:
    root = Path(p.path).expanduser()
    for ann, images, key in ((p.train_ann, p.train_images, "train_ann"), (p.val_ann, p.val_images, "val_ann")):
        check_coco_json(root / ann, root / images, (key,), _coco_layout(p))


class CocoDetection(Dataset):
    """COCO-format boxes; categories are renumbered 1..K in sorted id order."""

    def __init__(self, ann_file: Path, image_dir: Path, resolution: int, limit: int | None, layout: str,
                 categories: list[int] | None = None):
        try:
            spec = json.loads(ann_file.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{ann_file}: cannot read it as json ({exc}); expected {layout}") from None
        missing = [k for k in COCO_KEYS if k not in spec]
        if missing:
            raise DataError(f"{ann_file} has no {', '.join(repr(k) for k in missing)}; expected {layout}")
        self.categories = categories or sorted(c["id"] for c in spec["categories"])
        label_of = {cid: i + 1 for i, cid in enumerate(self.categories)}
        per_image: dict[int, list[dict[str, Any]]] = {}
        for ann in spec["annotations"]:
            if ann["category_id"] not in label_of:
                raise DataError(f"{ann_file}: annotation {ann.get('id')} has category_id {ann['category_id']}, "
                                f"which is not among the categories of the training json")
            per_image.setdefault(ann["image_id"], []).append(ann)
        images = sorted(spec["images"], key=lambda im: im["id"])[:limit]
        self.items = [(image_dir / im["file_name"], per_image.get(im["id"], [])) for im in images]
        absent = [path for path, _ in self.items if not path.is_file()]
        if absent:
            raise DataError(f"{len(absent)} of the {len(self.items)} images {ann_file.name} names are missing from "
                            f"{image_dir}, e.g. {absent[0].name}; expected {layout}")
        self.label_of, self.resolution = label_of, resolution

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        path, anns = self.items[i]
        image = open_image(path)
        sx, sy = self.resolution / image.width, self.resolution / image.height
        tensor = TF.to_tensor(TF.resize(image, [self.resolution, self.resolution], antialias=True))
        boxes = torch.tensor([[x * sx, y * sy, (x + w) * sx, (y + h) * sy] for x, y, w, h in (a["bbox"] for a in anns)],
                             dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64)
        crowd = torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64)
        area = torch.tensor([float(a.get("area", a["bbox"][2] * a["bbox"][3])) * sx * sy for a in anns], dtype=torch.float32)
        trained = torch.tensor([not a.get("iscrowd", 0) and a["bbox"][2] >= 1 and a["bbox"][3] >= 1 and a.get("area", 1) > 0
                                for a in anns], dtype=torch.bool)
        return tensor, {"boxes": boxes[trained], "labels": labels[trained],  # what the detector trains on
                        "gt_boxes": boxes, "gt_labels": labels, "iscrowd": crowd, "area": area}  # what COCOeval scores


def load_coco(p: CocoParams) -> DenseData:
    root = _require(Path(p.path).expanduser(), "a COCO root folder")
    layout = _coco_layout(p)
    train = CocoDetection(root / p.train_ann, root / p.train_images, p.resolution, p.max_train, layout)
    val = CocoDetection(root / p.val_ann, root / p.val_images, p.resolution, p.max_val, layout, train.categories)
    return DenseData(train, val, len(train.categories) + 1, p.resolution, ("detection",),
                     f"COCOeval box mAP: crowd boxes ignored, json areas; images resized to {p.resolution}x{p.resolution} "
                     "(mmdetection keeps the aspect ratio)")


# ---- ADE20K ---------------------------------------------------------------------------------------
# mmsegmentation's ``ADE20KDataset`` (mmseg/datasets/ade.py): images/{training,validation}/*.jpg and
# annotations/{training,validation}/*.png of ADEChallengeData2016, 150 classes, ``reduce_zero_label``
# (0 = "other", ignored; v -> v - 1). Training resizes image and mask to a square ``resolution`` (mmseg
# trains on keep-ratio resized random crops); evaluation is mmseg's: the logits are resized to each image's
# original size and scored against the original mask, IoU summed over the whole set per class (classes
# absent from both prediction and ground truth left out, mmseg's nanmean).

ADE_FOLDER = "ADEChallengeData2016"


def ade_root(p: AdeParams) -> Path:
    """``data.path`` is ADEChallengeData2016 itself or the folder holding it (mmseg's data/ade)."""
    path = Path(p.path).expanduser()
    for root in (path, path / ADE_FOLDER):
        if (root / "images" / "training").is_dir():
            return root
    raise DataError(f"{path} holds neither images/training/ nor {ADE_FOLDER}/images/training/; point data.path at "
                    f"{ADE_FOLDER} (images/{{training,validation}}/*.jpg, annotations/{{training,validation}}/*.png) "
                    "or at the folder holding it")


def _mask_pairs(image_dir: Path, mask_dir: Path, limit: int | None) -> list[tuple[Path, Path]]:
    _require(image_dir, "a folder of .jpg images")
    _require(mask_dir, "a folder of .png class-index masks named like the images")
    masks = {m.stem: m for m in mask_dir.glob("*.png")}
    images = image_files(image_dir)
    if not images:
        raise DataError(f"{image_dir} holds no images ({EXTENSIONS_TEXT})")
    missing = [f.name for f in images if f.stem not in masks]
    if missing:
        raise DataError(f"{mask_dir} has no mask for {len(missing)} of the {len(images)} images, e.g. {Path(missing[0]).stem}.png "
                        f"for {missing[0]}")
    return [(f, masks[f.stem]) for f in images][:limit]


def read_mask(path: Path, p: AdeParams) -> torch.Tensor:
    """A class-index mask, reduce_zero_label applied; values that are no class are a ``DataError``."""
    mask = open_image(path, mode=None)
    if mask.mode not in ("L", "P", "I", "I;16"):
        raise DataError(f"{path} is a {mask.mode} image; ADE20K masks are single-channel class indices "
                        f"({ADE_FOLDER}'s annotations/, not the full ADE20K release's RGB-coded masks)")
    values = torch.from_numpy(np.array(mask, dtype=np.int64))
    if p.reduce_zero_label:
        values = torch.where(values == 0, IGNORE_INDEX, values - 1)
    bad = values[(values >= p.num_classes) & (values != IGNORE_INDEX)]
    if len(bad):
        top = int(bad.max()) + (1 if p.reduce_zero_label else 0)
        raise DataError(f"{path} holds class value {top}, beyond num_classes={p.num_classes}"
                        f"{'' if p.reduce_zero_label else ' with reduce_zero_label: false (ADE20K masks use 0 for other and 1..150 for the classes: set reduce_zero_label: true)'}"
                        f"; set data.num_classes to the number of classes the masks hold")
    return values


def check_ade(p: AdeParams) -> None:
    root = ade_root(p)
    for split in ("training", "validation"):
        image, mask = _mask_pairs(root / "images" / split, root / "annotations" / split, 1)[0]
        open_image(image)
        read_mask(mask, p)


class MaskFolder(Dataset):
    """Image/mask pairs matched by file stem (ADE20K's ADEChallengeData2016 layout). ``full_size``: the mask
    stays at the image's original size (evaluation, as mmseg scores it); else it is resized with the image."""

    def __init__(self, image_dir: Path, mask_dir: Path, p: AdeParams, limit: int | None, full_size: bool):
        self.pairs = _mask_pairs(image_dir, mask_dir, limit)
        self.p, self.full_size = p, full_size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image_path, mask_path = self.pairs[i]
        size = [self.p.resolution, self.p.resolution]
        image = open_image(image_path)
        mask = read_mask(mask_path, self.p)
        if mask.shape != (image.height, image.width):
            raise DataError(f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}, its image {image_path.name} is "
                            f"{image.width}x{image.height}; a mask must cover its image pixel for pixel")
        if not self.full_size:
            mask = TF.resize(mask[None], size, TF.InterpolationMode.NEAREST)[0]
        return TF.to_tensor(TF.resize(image, size, antialias=True)), {"mask": mask}


def load_ade(p: AdeParams) -> DenseData:
    root = ade_root(p)
    train = MaskFolder(root / "images" / "training", root / "annotations" / "training", p, p.max_train, full_size=False)
    val = MaskFolder(root / "images" / "validation", root / "annotations" / "validation", p, p.max_val, full_size=True)
    return DenseData(train, val, p.num_classes, p.resolution, ("segmentation",),
                     f"mIoU at the original size (mmseg); inputs resized to {p.resolution}x{p.resolution} "
                     "(mmseg: keep-ratio resize to 2048x512, random crops in training)")


DATASETS = {
    "shapes": DatasetSpec(ShapesParams, "procedural occluded shapes (4 classes) on textured backgrounds, boxes + masks"),
    "coco": DatasetSpec(CocoParams, "COCO-format detection json + images from a user path"),
    "ade20k": DatasetSpec(AdeParams, "ADE20K-layout segmentation (images/ + annotations/ folders) from a user path"),
}

LOADERS = {"shapes": load_shapes, "coco": load_coco, "ade20k": load_ade}
CHECKS = {"coco": check_coco, "ade20k": check_ade}  # the datasets read from a user path (``Family.check_data``)
