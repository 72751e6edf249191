"""Restoration data: clean photographs, their degradations, deterministic crops.

Sources (the ``dataset`` of a task):
- ``skimage_photos``: the photographs bundled with scikit-image (``skimage.data``: astronaut, coffee,
  chelsea, rocket, camera, ...), split *by image* into train and test so no test pixel is ever trained on.
  Grey images are repeated to three channels.
- ``paired_folders``: the DIV2K / Set5 / Urban100 benchmark layout under a user path::

      <path>/HR/<name>.png
      <path>/LR_bicubic/X2/<name>x2.png   (or <name>.png; X3, X4 likewise; only needed for SR)

Degradations (``degradation``):
- ``sr_x2`` / ``sr_x4``: bicubic downsampling of the whole HR image with ``torch.nn.functional.interpolate
  (mode="bicubic", antialias=True)`` (the Keys a=-0.5 kernel widened by the scale, as MATLAB ``imresize``
  and PIL's BICUBIC), quantised to 8 bits like a saved LR PNG; the ``psnr_bicubic`` baseline upsamples
  with the same call. HR images are first cropped to a multiple of the scale (BasicSR's ``mod_crop``).
- ``denoise``: additive Gaussian noise of std ``sigma`` on the 0..255 scale, not clipped (SwinIR/KAIR).

Training crops are drawn per step from a generator seeded by (run seed, step), with BasicSR's flip /
rotate augmentation; test crops sit at fixed positions and test noise has a fixed seed, so every variant
and seed is scored on identical inputs. Images stay uint8 in memory (a quarter of float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import HarnessError
from harness.families.restoration.config import FolderData, PhotoData, RestorationData

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_TEST_SEED = 20241123  # fixed seed of the test crops and test noise: the same for every run


def bicubic(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Resize (B, C, H, W) float images by ``factor`` with antialiased bicubic (a=-0.5, MATLAB/PIL-like)."""
    return F.interpolate(img, scale_factor=factor, mode="bicubic", antialias=True, align_corners=False)


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _as_rgb(array: np.ndarray) -> torch.Tensor:
    """Any uint8/bool image array -> (3, H, W) uint8."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise HarnessError(f"expected an 8-bit image, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1).contiguous()


def mod_crop(img: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """(3, H, W) uint8 HR -> (3, H/s, W/s) uint8 LR by antialiased bicubic."""
    return to_uint8(bicubic(hr[None].float() / 255, 1 / scale)[0])


def skimage_photo(name: str) -> torch.Tensor:
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise HarnessError(f"skimage.data has no image {name!r}")
    image = loader()
    return _as_rgb(image[0] if isinstance(image, tuple) else image)


def _read(path: Path) -> torch.Tensor:
    import skimage.io

    return _as_rgb(skimage.io.imread(path))


def _lr_file(lr_dir: Path, stem: str, scale: int) -> Path:
    for name in (f"{stem}x{scale}", stem):
        for suffix in IMAGE_SUFFIXES:
            if (lr_dir / f"{name}{suffix}").is_file():
                return lr_dir / f"{name}{suffix}"
    raise HarnessError(f"no LR image for {stem!r} in {lr_dir} (expected {stem}x{scale}.png or {stem}.png)")


def folder_pairs(root: str, scale: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(HR, LR or None) uint8 pairs from a DIV2K-layout folder; LR is read for SR only."""
    layout = f"{root}/HR/*.png and, for SR, {root}/LR_bicubic/X{scale}/<name>x{scale}.png"
    hr_dir = Path(root).expanduser() / "HR"
    if not hr_dir.is_dir():
        raise HarnessError(f"restoration data folder {hr_dir} does not exist; expected the layout {layout}")
    files = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise HarnessError(f"no images in {hr_dir}; expected the layout {layout}")
    lr_dir = hr_dir.parent / "LR_bicubic" / f"X{scale}"
    if scale > 1 and not lr_dir.is_dir():
        raise HarnessError(f"missing LR folder {lr_dir}; expected the layout {layout}")
    pairs = []
    for f in files:
        hr = mod_crop(_read(f), scale)
        lr = _read(_lr_file(lr_dir, f.stem, scale)) if scale > 1 else None
        if lr is not None and tuple(lr.shape[-2:]) != (hr.shape[-2] // scale, hr.shape[-1] // scale):
            raise HarnessError(f"LR image for {f.name} is {tuple(lr.shape[-2:])}, expected HR {tuple(hr.shape[-2:])} / {scale}")
        pairs.append((hr, lr))
    return pairs


def photo_pairs(names: tuple[str, ...], scale: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    pairs = []
    for name in names:
        hr = mod_crop(skimage_photo(name), scale)
        pairs.append((hr, downsample(hr, scale) if scale > 1 else None))
    return pairs


def load_pairs(params: RestorationData, split: Literal["train", "test"]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    if isinstance(params, PhotoData):
        return photo_pairs(params.train_images if split == "train" else params.test_images, params.scale)
    if isinstance(params, FolderData):
        return folder_pairs(params.train_path if split == "train" else params.test_path, params.scale)
    raise TypeError(f"unknown restoration data params {type(params).__name__}")


def _augment(x: torch.Tensor, flags: tuple[bool, bool, bool]) -> torch.Tensor:
    hflip, vflip, transpose = flags
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    return x.transpose(-1, -2) if transpose else x


@dataclass
class Batch:
    """A degraded input and its clean target, float in [0, 1] (noisy inputs may leave that range)."""

    inputs: torch.Tensor  # (B, 3, h, w): LR for SR, noisy for denoising
    target: torch.Tensor  # (B, 3, H, W)

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.inputs.to(device), self.target.to(device))


class RestorationSet:
    """Train images (crops drawn per step) and a fixed test set of (degraded, clean) crops."""

    def __init__(self, params: RestorationData, seed: int):
        self.params, self.seed, self.scale = params, seed, params.scale
        self.train = load_pairs(params, "train")
        small = [tuple(hr.shape[-2:]) for hr, _ in self.train if min(hr.shape[-2:]) < params.patch_size]
        if small:
            raise HarnessError(f"training images {small} are smaller than patch_size={params.patch_size}")
        self.test = self._test_crops(load_pairs(params, "test"))

    def _degrade(self, hr: torch.Tensor, lr: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
        """Float input for a float HR crop (and its uint8 LR crop for SR)."""
        if self.scale > 1:
            return lr.float() / 255
        noise = torch.randn(hr.shape, generator=gen) * (self.params.sigma / 255)
        return hr + noise

    def _crop(self, hr: torch.Tensor, lr: torch.Tensor | None, top: int, left: int, size: int):
        """Aligned HR crop at (top, left) of side ``size`` (multiples of the scale) and its LR crop."""
        s = self.scale
        hr_c = hr[..., top : top + size, left : left + size]
        lr_c = None if lr is None else lr[..., top // s : (top + size) // s, left // s : (left + size) // s]
        return hr_c, lr_c

    def _test_crops(self, pairs: list[tuple[torch.Tensor, torch.Tensor | None]]) -> list[Batch]:
        """Fixed test crops (one batch per image size) with fixed-seed test noise."""
        gen = torch.Generator().manual_seed(_TEST_SEED)
        size, s = self.params.eval_size, self.scale
        out: list[Batch] = []
        for hr, lr in pairs:
            h, w = hr.shape[-2:]
            if size is None:
                crops = [(hr, lr)]
            elif min(h, w) < size:
                raise HarnessError(f"a test image of {h}x{w} is smaller than eval_size={size}")
            else:
                tops = torch.randint(0, (h - size) // s + 1, (self.params.eval_crops,), generator=gen) * s
                lefts = torch.randint(0, (w - size) // s + 1, (self.params.eval_crops,), generator=gen) * s
                crops = [self._crop(hr, lr, int(t), int(l), size) for t, l in zip(tops, lefts)]
            for hr_c, lr_c in crops:
                hr_f = hr_c.float() / 255
                out.append(Batch(self._degrade(hr_f, lr_c, gen)[None], hr_f[None]))
        if size is None:
            return out
        return [Batch(torch.cat([b.inputs for b in out]), torch.cat([b.target for b in out]))]

    def train_batch(self, step: int, batch_size: int) -> Batch:
        """``batch_size`` random crops for step ``step``, deterministic in (seed, step)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        size, s = self.params.patch_size, self.scale
        inputs, targets = [], []
        for idx in torch.randint(0, len(self.train), (batch_size,), generator=gen).tolist():
            hr, lr = self.train[idx]
            h, w = hr.shape[-2:]
            top = int(torch.randint(0, (h - size) // s + 1, (), generator=gen)) * s
            left = int(torch.randint(0, (w - size) // s + 1, (), generator=gen)) * s
            hr_c, lr_c = self._crop(hr, lr, top, left, size)
            hr_f = hr_c.float() / 255
            inp = self._degrade(hr_f, lr_c, gen)
            if self.params.augment:
                flags = tuple(bool(f) for f in torch.randint(0, 2, (3,), generator=gen))
                hr_f, inp = _augment(hr_f, flags), _augment(inp, flags)
            inputs.append(inp)
            targets.append(hr_f)
        return Batch(torch.stack(inputs), torch.stack(targets))

    def test_batches(self, batch_size: int) -> list[Batch]:
        """The test set split into batches of at most ``batch_size`` crops."""
        out = []
        for b in self.test:
            for i in range(0, b.inputs.shape[0], batch_size):
                out.append(Batch(b.inputs[i : i + batch_size], b.target[i : i + batch_size]))
        return out
