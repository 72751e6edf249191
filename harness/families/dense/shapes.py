"""A procedural "shapes" scene generator with boxes and masks, for the dense (detection/segmentation) family.

MambaOut (arXiv 2405.07992) expects the SSM to help on dense, long-sequence tasks (COCO at 800x1280 is
~4K stage-1 tokens per 6D); a built-in scene set lets the harness sweep that regime by ``resolution``
(64 px on CPU up to 1024+ px on a GPU) with no download. Each scene is a textured background (random
sinusoidal gratings plus noise) with 1..``max_shapes`` filled shapes of ``CLASSES`` in random colours,
painted in order so later shapes occlude earlier ones. Targets follow the visible pixels: a semantic
mask (0 = background), and boxes/labels of the shapes with at least ``min_visible`` of their area visible.
Deterministic per (seed, index). Drawing uses scikit-image; no library generates such scenes.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.draw import disk, polygon, rectangle

CLASSES = ("disk", "square", "triangle", "ring")  # labels 1..4; 0 is background


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(3, size, size)`` background in [0, 1]: three coloured sinusoidal gratings plus pixel noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.zeros((3, size, size), dtype=np.float32)
    for _ in range(3):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(2, 12), rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
        image += rng.uniform(0.05, 0.15, size=3)[:, None, None].astype(np.float32) * wave
    image += 0.5 + rng.normal(0, 0.04, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


def _shape_pixels(rng: np.random.Generator, cls: str, size: int, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """Row/column indices of one filled shape of diameter ~``extent`` pixels at a random place."""
    r = extent / 2
    cy, cx = rng.uniform(r, size - r, size=2)
    shape = (size, size)
    if cls == "disk":
        return disk((cy, cx), r, shape=shape)
    if cls == "square":
        rr, cc = rectangle((cy - r, cx - r), extent=(extent, extent), shape=shape)
        return rr.ravel(), cc.ravel()
    if cls == "triangle":
        angle = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        return polygon(cy + r * np.sin(angle), cx + r * np.cos(angle), shape=shape)
    if cls == "ring":
        mask = np.zeros(shape, dtype=bool)
        mask[disk((cy, cx), r, shape=shape)] = True
        mask[disk((cy, cx), r * 0.55, shape=shape)] = False
        return np.nonzero(mask)
    raise ValueError(f"unknown shape {cls!r}")


def render_shapes(
    rng: np.random.Generator, resolution: int, max_shapes: int, min_size: float, max_size: float, min_visible: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One scene: image ``(3, R, R)`` in [0, 1]; target ``boxes`` (n, 4) xyxy, ``labels`` (n,), ``mask`` (R, R)."""
    size = resolution
    image = _texture(rng, size)
    owner = np.full((size, size), -1, dtype=np.int64)  # which shape each pixel shows
    shapes: list[tuple[int, int]] = []  # (label, full area)
    for k in range(int(rng.integers(1, max_shapes + 1))):
        label = int(rng.integers(len(CLASSES))) + 1
        extent = rng.uniform(min_size, max_size) * size
        rr, cc = _shape_pixels(rng, CLASSES[label - 1], size, extent)
        colour = rng.uniform(0, 1, size=3).astype(np.float32)
        image[:, rr, cc] = np.clip(colour[:, None] + rng.normal(0, 0.05, size=(3, len(rr))), 0, 1)
        owner[rr, cc] = k
        shapes.append((label, len(rr)))
    mask = np.zeros((size, size), dtype=np.int64)
    boxes, labels = [], []
    for k, (label, area) in enumerate(shapes):
        rows, cols = np.nonzero(owner == k)
        mask[rows, cols] = label
        if len(rows) and len(rows) >= min_visible * area:
            boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
            labels.append(label)
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "mask": torch.from_numpy(mask),
    }
    return torch.from_numpy(image), target
