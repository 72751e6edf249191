"""Built-in class-conditional image sets, generated locally (nothing is downloaded).

- ``digits``: scikit-learn's 8x8 handwritten digits (10 classes), bilinearly upsampled to the task's
  resolution — small enough to train a tokenizer and three AR models on a CPU in seconds.
- ``textures``: random crops of the photographs and textures bundled with scikit-image (brick, grass,
  gravel, astronaut, ...); the class is the source image. Harder, more natural statistics. Test crops
  come from a region of each source that no training crop touches.

Images are ``(N, 3, R, R)`` float in ``[-1, 1]`` (LlamaGen's convention; grey images are repeated to RGB so
a pretrained RGB tokenizer applies unchanged). The train/test split is fixed by ``split_seed``, not by
the run seed, so every run and the shared tokenizer see the same split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from harness.families.argen.config import DigitsParams, ImageDataParams, TexturesParams

# skimage.data images shipped inside the package (no pooch download); each is one class of ``textures``.
TEXTURE_SOURCES = ("brick", "grass", "gravel", "camera", "astronaut", "coffee", "chelsea", "immunohistochemistry")
#: Part of the tokenizer / classifier cache keys: bump a dataset's entry when its images change under an
#: unchanged config, or a cached artefact trained on the old split would be reused (textures 2: disjoint regions).
IMAGE_SET_VERSION = {"digits": 1, "textures": 2}


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator for one training step's batch: a function of (seed, step) only, so a run's
    batches do not depend on what else consumed random numbers (model init, a cache miss)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)  # a prime stride keeps (seed, step) pairs apart


@dataclass
class ImageSet:
    train_images: torch.Tensor  # (N, 3, R, R) in [-1, 1]
    train_labels: torch.Tensor  # (N,) long
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int


def _to_rgb_unit(images: np.ndarray, resolution: int) -> torch.Tensor:
    """(N, H, W) or (N, H, W, 3) in [0, 1] -> (N, 3, R, R) in [-1, 1], bilinear resize."""
    x = torch.as_tensor(images, dtype=torch.float32)
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return (x.clamp(0, 1) * 2 - 1).contiguous()


def _split(images: torch.Tensor, labels: np.ndarray, p: ImageDataParams, num_classes: int) -> ImageSet:
    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, test_size=p.test_fraction, random_state=p.split_seed, stratify=labels)
    y = torch.as_tensor(labels, dtype=torch.long)
    return ImageSet(images[tr], y[tr], images[te], y[te], num_classes)


def load_digits_images(p: DigitsParams) -> ImageSet:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images / digits.images.max()
    return _split(_to_rgb_unit(images, p.resolution), digits.target, p, num_classes=10)


def load_texture_images(p: TexturesParams) -> ImageSet:
    """Per source image, test crops come from its rightmost columns and training crops from the rest, so no
    test pixel is ever trained on (random crops split at random shared most of their pixels)."""
    import skimage.data

    rng = np.random.default_rng(p.split_seed)
    n_test = max(1, round(p.per_class * p.test_fraction))
    n_train = p.per_class - n_test
    if n_train < 1:
        raise ValueError(f"textures: test_fraction {p.test_fraction} leaves no training crops of {p.per_class}")
    crops: dict[str, list[torch.Tensor]] = {"train": [], "test": []}
    labels: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for label, name in enumerate(TEXTURE_SOURCES):
        src = getattr(skimage.data, name)().astype(np.float32) / 255.0
        h, w = src.shape[:2]
        test_w = max(p.crop, math.ceil(p.test_fraction * w))
        if h < p.crop or w - test_w < p.crop:
            raise ValueError(f"textures: skimage.data.{name} ({h}x{w}) cannot hold disjoint {p.crop}-pixel "
                             f"train and test regions (test: the last {test_w} columns)")
        for split, (x0, x1), n in (("train", (0, w - test_w), n_train), ("test", (w - test_w, w), n_test)):
            ys = rng.integers(0, h - p.crop + 1, n)
            xs = rng.integers(x0, x1 - p.crop + 1, n)
            patches = np.stack([src[y : y + p.crop, x : x + p.crop] for y, x in zip(ys, xs)])
            crops[split].append(_to_rgb_unit(patches, p.resolution))
            labels[split].append(np.full(n, label))
    y = {k: torch.as_tensor(np.concatenate(v), dtype=torch.long) for k, v in labels.items()}
    return ImageSet(torch.cat(crops["train"]), y["train"], torch.cat(crops["test"]), y["test"], len(TEXTURE_SOURCES))


LOADERS = {"digits": load_digits_images, "textures": load_texture_images}
NUM_CLASSES = {"digits": 10, "textures": len(TEXTURE_SOURCES)}


def load_images(dataset: str, p: ImageDataParams) -> ImageSet:
    return LOADERS[dataset](p)
