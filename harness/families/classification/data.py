"""Classification datasets: real small scans, faces, procedural Pathfinder, and user image folders.

Nothing downloads. ``digits`` is scikit-learn's bundled UCI handwritten digits (1797 real 8x8 scans,
10 classes); ``lfw_faces`` is scikit-image's bundled ``lfw_subset`` (200 25x25 crops: 100 faces from
Labeled Faces in the Wild and 100 non-face patches), i.e. face vs non-face, 2 classes; ``pathfinder`` is
the LRA long-range task (``pathfinder.py``); ``imagefolder`` reads ``<path>/train/<class>/*`` and
``<path>/val/<class>/*`` with torchvision's ``ImageFolder`` and timm's train/eval transforms.

Small images are upsampled to ``resolution`` on the device per batch (``ClassificationData.prepare``), so
a resolution sweep (224/512/1024 px latency) does not hold the upsampled set in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from harness.errors import DataError
from harness.families.base import DatasetSpec
from harness.families.classification.config import DigitsParams, ImageFolderParams, LfwParams, PathfinderParams
from harness.families.classification.pathfinder import render_pathfinder
from harness.families.images import EXTENSIONS_TEXT, iter_images, open_image
from harness.families.vision.batching import RenderedDataset


@dataclass
class ClassificationData:
    """Train/val sets of ``(image (C, h, w), label)`` and how a batch becomes model input."""

    train: Dataset
    val: Dataset
    num_classes: int
    resolution: int
    prepare: Callable[[torch.Tensor], torch.Tensor]


def to_model_input(resolution: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """[0, 1] images of any size/channels -> 3-channel, ``resolution``-sized, zero-mean inputs."""

    def prepare(images: torch.Tensor) -> torch.Tensor:
        images = images.float()
        if images.shape[-2:] != (resolution, resolution):
            images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return (images - 0.5) / 0.5

    return prepare


def _split(images: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int, resolution: int, n_classes: int) -> ClassificationData:
    from sklearn.model_selection import train_test_split

    x_tr, x_va, y_tr, y_va = train_test_split(
        images, labels, test_size=val_fraction, random_state=seed, stratify=labels
    )

    def tensors(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.as_tensor(x, dtype=torch.float32)[:, None], torch.as_tensor(y, dtype=torch.long))

    return ClassificationData(tensors(x_tr, y_tr), tensors(x_va, y_va), n_classes, resolution, to_model_input(resolution))


def load_digits_data(p: DigitsParams) -> ClassificationData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images / 16.0  # 4-bit scans
    return _split(images, digits.target, p.val_fraction, p.seed, p.resolution, 10)


def load_lfw_data(p: LfwParams) -> ClassificationData:
    from skimage.data import lfw_subset

    images = lfw_subset().astype(np.float32)  # first 100 are faces, last 100 are not
    if images.max() > 1:  # documented as uint8, shipped as [0, 1] floats in some versions
        images = images / 255.0
    labels = np.r_[np.ones(100, dtype=np.int64), np.zeros(len(images) - 100, dtype=np.int64)]
    return _split(images, labels, p.val_fraction, p.seed, p.resolution, 2)


def load_pathfinder_data(p: PathfinderParams) -> ClassificationData:
    def render(rng: np.random.Generator):
        return render_pathfinder(rng, p.resolution, p.path_segments, p.n_distractors, p.segment_length, p.curvature)

    # train and val draw from disjoint generator streams of the same seed
    train = RenderedDataset(render, p.n_train, seed=2 * p.seed)
    val = RenderedDataset(render, p.n_val, seed=2 * p.seed + 1)
    return ClassificationData(train, val, 2, p.resolution, to_model_input(p.resolution))


def _class_folders(split_dir: Path, root: Path) -> list[str]:
    """The class folders of ``root/<split>`` (torchvision's ``find_classes``), each checked to hold an image;
    a flat folder of images (ImageNet's validation set as shipped) or an empty one is a ``DataError``."""
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not classes:
        flat = next(iter_images(split_dir), None)
        what = (f"holds images (e.g. {flat.name}) but no class folders: put each image in a folder named by its class, "
                f"{split_dir}/<class>/{flat.name} (ImageNet's flat validation set: sort it with its labels, e.g. the "
                "valprep.sh script)") if flat else "holds no class folders"
        raise DataError(f"imagefolder: {split_dir} {what}; expected {root}/{{train,val}}/<class>/<image>")
    for name in classes:
        if next(iter_images(split_dir / name), None) is None:
            raise DataError(f"imagefolder: class folder {split_dir / name} holds no image ({EXTENSIONS_TEXT}); "
                            "add its images or remove the folder")
    return classes


def check_imagefolder(p: ImageFolderParams) -> list[str]:
    """The class names, after checking the layout cheaply: train/ and val/ with the same class folders,
    each holding an image, and the first image of each split readable."""
    root = Path(p.path).expanduser()
    layout = f"expected {root}/train/<class>/<image> and {root}/val/<class>/<image> ({EXTENSIONS_TEXT})"
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise DataError(f"imagefolder: {root} has no {' and no '.join(s + '/' for s in missing)} folder; {layout}")
    train, val = (_class_folders(root / split, root) for split in ("train", "val"))
    if train != val:
        only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        raise DataError(f"imagefolder: the class folders of {root}/train and {root}/val differ (only in train: "
                        f"{only_train[:5] or 'none'}, only in val: {only_val[:5] or 'none'}); the labels are the "
                        "sorted folder names, so both splits need the same ones")
    for split in ("train", "val"):
        open_image(next(iter_images(root / split / train[0])))
    return train


def read_user_image(path: str) -> Image.Image:
    """ImageFolder's loader (PIL, converted to RGB: greyscale and CMYK JPEGs alike) with a clear error."""
    return open_image(Path(path))


def load_imagefolder_data(p: ImageFolderParams) -> ClassificationData:
    from timm.data import create_transform
    from torchvision.datasets import ImageFolder

    check_imagefolder(p)
    root = Path(p.path).expanduser()
    train = ImageFolder(str(root / "train"), transform=create_transform(p.resolution, is_training=p.augment), loader=read_user_image)
    val = ImageFolder(str(root / "val"), transform=create_transform(p.resolution, is_training=False), loader=read_user_image)
    return ClassificationData(train, val, len(train.classes), p.resolution, lambda images: images)  # timm normalises


DATASETS = {
    "digits": DatasetSpec(DigitsParams, "scikit-learn's 1797 real 8x8 handwritten digit scans, 10 classes, upsampled"),
    "lfw_faces": DatasetSpec(LfwParams, "scikit-image's lfw_subset: face vs non-face, 200 25x25 crops, upsampled"),
    "pathfinder": DatasetSpec(PathfinderParams, "procedural LRA Pathfinder: are the two dots joined by a dashed path?"),
    "imagefolder": DatasetSpec(ImageFolderParams, "user images in <path>/train/<class>/ and <path>/val/<class>/"),
}

#: the cheap checks of the datasets read from a user path (``Family.check_data``)
CHECKS: dict[str, Callable] = {"imagefolder": check_imagefolder}

LOADERS: dict[str, Callable] = {
    "digits": load_digits_data,
    "lfw_faces": load_lfw_data,
    "pathfinder": load_pathfinder_data,
    "imagefolder": load_imagefolder_data,
}
