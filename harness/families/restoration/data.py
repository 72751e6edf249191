"""Restoration data: clean photographs, their degradations, deterministic crops.

Sources (the ``dataset`` of a task):
- ``skimage_photos``: the photographs bundled with scikit-image (``skimage.data``: astronaut, coffee,
  chelsea, rocket, camera, ...), split *by image* into train and test so no test pixel is ever trained on.
  Grey images are repeated to three channels.
- ``paired_folders``: HR / bicubic-LR pairs in a published layout (``LAYOUTS``) under a user path, e.g.
  DIV2K as shipped (``DIV2K_train_HR/0001.png``, ``DIV2K_train_LR_bicubic/X2/0001x2.png``), BasicSR's
  benchmark folders (``Set5/GTmod12/baby.png``, ``Set5/LRbicx2/baby.png``) or MambaIR's
  (``Set5/HR/baby.png``, ``Set5/LR_bicubic/X2/babyx2.png``); the LR images are the files' own (only needed
  for SR). Images are decoded when a crop needs them (``FolderPairs``), never all at once.

Degradations (``degradation``):
- ``sr_x2`` / ``sr_x3`` / ``sr_x4``: bicubic downsampling of the whole HR image with ``torch.nn.functional.interpolate
  (mode="bicubic", antialias=True)`` (the Keys a=-0.5 kernel widened by the scale, as MATLAB ``imresize``
  and PIL's BICUBIC), quantised to 8 bits like a saved LR PNG; the ``psnr_bicubic`` baseline upsamples
  with the same call. HR images are first cropped to a multiple of the scale (BasicSR's ``mod_crop``).
- ``denoise``: additive Gaussian noise of std ``sigma`` on the 0..255 scale, not clipped (SwinIR/KAIR).

Training crops are drawn per step from a generator seeded by (run seed, step), with BasicSR's flip /
rotate augmentation; test crops sit at fixed positions and test noise has a fixed seed, so every variant
and seed is scored on identical inputs. Decoded images stay uint8 (a quarter of float32).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import DataError, HarnessError
from harness.families.images import EXTENSIONS_TEXT, image_files, image_size, open_image
from harness.families.restoration.config import FolderData, PhotoData, RestorationData

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


def _read(path: Path, field: tuple[str, ...]) -> torch.Tensor:
    return _as_rgb(np.array(open_image(path, field)))


# The published layouts of paired SR folders, tried in this order under a split's path (``s``: the scale):
# (HR folder, LR folder, where it comes from). ``{split}`` is DIV2K's ``train`` or ``valid``.
LAYOUTS = (
    ("HR", "LR_bicubic/X{s}", "MambaIR's benchmark folders (Set5/HR, Set5/LR_bicubic/X2, <name>x2.png)"),
    ("GTmod12", "LRbicx{s}", "BasicSR's benchmark folders (Set5/GTmod12, Set5/LRbicx2, same names)"),
    ("DIV2K_{split}_HR", "DIV2K_{split}_LR_bicubic/X{s}", "DIV2K as shipped (DIV2K_train_HR/0001.png, DIV2K_train_LR_bicubic/X2/0001x2.png)"),
)
DIV2K_SPLITS = {"train": ("train", "valid"), "test": ("valid", "train")}  # DIV2K's own split first


def _layout_dirs(root: Path, scale: int, split: str) -> list[tuple[Path, Path, str]]:
    """The (HR, LR) folder pairs a split's path may hold, in the order they are tried; ``root`` may also be
    the HR folder itself (Set5/HR, Set5/GTmod12, DIV2K_train_HR)."""
    out = []
    for hr, lr, name in LAYOUTS:
        for div2k in DIV2K_SPLITS[split] if "{split}" in hr else ("",):
            hr_dir, lr_dir = root / hr.format(split=div2k), root / lr.format(split=div2k, s=scale)
            out.append((hr_dir, lr_dir, name))
            if hr_dir.name == root.name:  # the path is this HR folder: its LR folder is a sibling
                out.append((root, root.parent / lr.format(split=div2k, s=scale), name))
    return out


# LR file names from the HR stem, tried in order (BasicSR's ``filename_tmpl`` values in the owners' option
# files: DIV2K and MambaIR's benchmarks '{}x2', BasicSR's LRbicx folders '{}', MambaIR's Manga109 '{}_LRBI_x3').
LR_NAMES = ("{stem}x{s}", "{stem}", "{stem}_LRBI_x{s}")


def find_pairs(root_text: str, scale: int, split: str, field: tuple[str, ...]) -> tuple[list[tuple[Path, Path | None]], str]:
    """The (HR, LR) files of one split in the first published layout found under ``root_text``, and the
    layout's name; LR files are named by ``LR_NAMES``, any image extension. Nothing is decoded."""
    root = Path(root_text).expanduser()
    candidates = _layout_dirs(root, scale, split)
    found = next(((hr, lr, name) for hr, lr, name in candidates if hr.is_dir() and (scale == 1 or lr.is_dir())), None)
    if found is None:
        half = next(((hr, lr) for hr, lr, _ in candidates if hr.is_dir()), None)
        if half is not None:
            raise DataError(f"{half[0]} has no LR folder {half[1]} for x{scale}; add the bicubic x{scale} images there "
                            f"({scale}x smaller, named like the HR images with x{scale})", field)
        expected = "; ".join(f"{root}/{hr.format(split='train' if split == 'train' else 'valid')} + "
                             f"{lr.format(split='train' if split == 'train' else 'valid', s=scale)} ({name})" for hr, lr, name in LAYOUTS)
        raise DataError(f"{root} holds no paired SR folders; expected one of: {expected}", field)
    hr_dir, lr_dir, name = found
    files = image_files(hr_dir)
    if not files:
        raise DataError(f"{hr_dir} holds no images ({EXTENSIONS_TEXT})", field)
    lr_files = {f.stem: f for f in image_files(lr_dir)} if scale > 1 else {}
    pairs = [(f, _lr_file(lr_files, lr_dir, f.stem, scale, field) if scale > 1 else None) for f in files]
    return pairs, name


def _lr_file(by_stem: dict[str, Path], lr_dir: Path, stem: str, scale: int, field: tuple[str, ...]) -> Path:
    names = [pattern.format(stem=stem, s=scale) for pattern in LR_NAMES]
    for name in names:
        if name in by_stem:
            return by_stem[name]
    raise DataError(f"no LR image for {stem!r} in {lr_dir} (looked for {', '.join(n + '.<ext>' for n in names)})", field)


class ImagePairs(ABC):
    """One split's uint8 (HR, LR or None) pairs, HR cropped to a multiple of the scale."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def size(self, i: int) -> tuple[int, int]:
        """HR ``(height, width)`` of pair ``i`` after the crop, without decoding it."""

    @abstractmethod
    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class PhotoPairs(ImagePairs):
    """scikit-image's bundled photographs (a few MB), held decoded; LR made by bicubic downsampling."""

    def __init__(self, names: tuple[str, ...], scale: int):
        self.pairs = photo_pairs(names, scale)

    def __len__(self) -> int:
        return len(self.pairs)

    def size(self, i: int) -> tuple[int, int]:
        return tuple(self.pairs[i][0].shape[-2:])

    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.pairs[i]


class FolderPairs(ImagePairs):
    """Paired image files decoded when a crop needs them (BasicSR reads each sample from disk), the most
    recently used kept up to ``CACHE_BYTES``: a DIV2K folder (800 2K images, 6.6 GB decoded) costs its file
    list, not its pixels. Sizes come from the files' headers, checked up front: HR at least ``min_side``,
    LR exactly HR / scale."""

    CACHE_BYTES = 512 << 20

    def __init__(self, files: list[tuple[Path, Path | None]], scale: int, field: tuple[str, ...], min_side: int = 0,
                 what: str = "image"):
        self.files, self.scale, self.field = files, scale, field
        self.sizes = []
        for hr, lr in files:
            w, h = image_size(hr, field)
            h, w = h - h % scale, w - w % scale
            if min(h, w) < min_side:
                raise DataError(f"{hr} is {w}x{h}, smaller than the {what} of {min_side} pixels; remove it or lower it", field)
            if lr is not None and image_size(lr, field) != (w // scale, h // scale):
                lw, lh = image_size(lr, field)
                raise DataError(f"{lr} is {lw}x{lh}, expected {w // scale}x{h // scale} (HR {hr.name} cropped to a "
                                f"multiple of {scale}, divided by {scale})", field)
            self.sizes.append((h, w))
        self._cache: OrderedDict[int, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self.files)

    def size(self, i: int) -> tuple[int, int]:
        return self.sizes[i]

    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        hr_path, lr_path = self.files[i]
        hr = mod_crop(_read(hr_path, self.field), self.scale)
        if tuple(hr.shape[-2:]) != self.sizes[i]:
            raise DataError(f"{hr_path} changed while the run read it (now {tuple(hr.shape[-2:])})", self.field)
        item = (hr, _read(lr_path, self.field) if lr_path is not None else None)
        size = sum(t.numel() for t in item if t is not None)
        while self._cache and self._bytes + size > self.CACHE_BYTES:
            _, old = self._cache.popitem(last=False)
            self._bytes -= sum(t.numel() for t in old if t is not None)
        if size <= self.CACHE_BYTES:
            self._cache[i] = item
            self._bytes += size
        return item


def folder_pairs(params: FolderData, split: Literal["train", "test"], min_side: int = 0) -> FolderPairs:
    field = (f"{split}_path",)
    files, _ = find_pairs(getattr(params, f"{split}_path"), params.scale, split, field)
    return FolderPairs(files, params.scale, field, min_side, "patch_size" if split == "train" else "eval_size")


def check_folders(params: FolderData) -> None:
    """Both splits in a published layout, the first pair of each readable and of matching sizes."""
    for split in ("train", "test"):
        field = (f"{split}_path",)
        files, _ = find_pairs(getattr(params, f"{split}_path"), params.scale, split, field)
        minimum = params.patch_size if split == "train" else params.eval_size or 0
        pairs = FolderPairs(files[:1], params.scale, field, minimum, "patch_size" if split == "train" else "eval_size")
        pairs.pair(0)


def photo_pairs(names: tuple[str, ...], scale: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    pairs = []
    for name in names:
        hr = mod_crop(skimage_photo(name), scale)
        pairs.append((hr, downsample(hr, scale) if scale > 1 else None))
    return pairs


def load_pairs(params: RestorationData, split: Literal["train", "test"]) -> ImagePairs:
    if isinstance(params, PhotoData):
        return PhotoPairs(params.train_images if split == "train" else params.test_images, params.scale)
    if isinstance(params, FolderData):
        return folder_pairs(params, split, params.patch_size if split == "train" else params.eval_size or 0)
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
    """Train images (crops drawn per step) and a fixed test set of (degraded, clean) crops, both read from
    their ``ImagePairs`` as needed (the test crops again at each evaluation, identical every time)."""

    def __init__(self, params: RestorationData, seed: int):
        self.params, self.seed, self.scale = params, seed, params.scale
        self.train = load_pairs(params, "train")
        small = [self.train.size(i) for i in range(len(self.train)) if min(self.train.size(i)) < params.patch_size]
        if small:
            raise HarnessError(f"training images {small} are smaller than patch_size={params.patch_size}")
        self.test = load_pairs(params, "test")
        small = [self.test.size(i) for i in range(len(self.test)) if params.eval_size and min(self.test.size(i)) < params.eval_size]
        if small:
            raise HarnessError(f"a test image of {small[0][0]}x{small[0][1]} is smaller than eval_size={params.eval_size}")

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

    def _test_crops(self) -> Iterator[Batch]:
        """The fixed test crops, one at a time, image after image: positions and test noise from one
        fixed-seed generator drawn in that order, so every evaluation sees the same crops."""
        gen = torch.Generator().manual_seed(_TEST_SEED)
        size, s = self.params.eval_size, self.scale
        for i in range(len(self.test)):
            h, w = self.test.size(i)
            if size is None:
                positions = [(0, 0, None)]
            else:
                tops = torch.randint(0, (h - size) // s + 1, (self.params.eval_crops,), generator=gen) * s
                lefts = torch.randint(0, (w - size) // s + 1, (self.params.eval_crops,), generator=gen) * s
                positions = [(int(t), int(l), size) for t, l in zip(tops, lefts)]
            hr, lr = self.test.pair(i)
            for top, left, side in positions:
                hr_c, lr_c = (hr, lr) if side is None else self._crop(hr, lr, top, left, side)
                hr_f = hr_c.float() / 255
                yield Batch(self._degrade(hr_f, lr_c, gen)[None], hr_f[None])

    def train_batch(self, step: int, batch_size: int) -> Batch:
        """``batch_size`` random crops for step ``step``, deterministic in (seed, step)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        size, s = self.params.patch_size, self.scale
        inputs, targets = [], []
        for idx in torch.randint(0, len(self.train), (batch_size,), generator=gen).tolist():
            h, w = self.train.size(idx)
            top = int(torch.randint(0, (h - size) // s + 1, (), generator=gen)) * s
            left = int(torch.randint(0, (w - size) // s + 1, (), generator=gen)) * s
            hr_c, lr_c = self._crop(*self.train.pair(idx), top, left, size)
            hr_f = hr_c.float() / 255
            inp = self._degrade(hr_f, lr_c, gen)
            if self.params.augment:
                flags = tuple(bool(f) for f in torch.randint(0, 2, (3,), generator=gen))
                hr_f, inp = _augment(hr_f, flags), _augment(inp, flags)
            inputs.append(inp)
            targets.append(hr_f)
        return Batch(torch.stack(inputs), torch.stack(targets))

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        """The test crops in batches of at most ``batch_size`` (whole test images: one per batch)."""
        pending: list[Batch] = []
        for crop in self._test_crops():
            if pending and (len(pending) == batch_size or self.params.eval_size is None):
                yield Batch(torch.cat([b.inputs for b in pending]), torch.cat([b.target for b in pending]))
                pending = []
            pending.append(crop)
        if pending:
            yield Batch(torch.cat([b.inputs for b in pending]), torch.cat([b.target for b in pending]))
