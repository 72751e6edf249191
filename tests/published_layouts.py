"""Tiny datasets in their owners' published layouts, for the end-to-end tests of every reader.

Key names, folder and file names are the owners' (read from their code, not copied):
- PDEBench: ``pdebench/data_gen`` (``Data_Merge.py``: ``tensor``, ``x-coordinate``, ``t-coordinate``, the CFD
  fields ``density``, ``pressure``, ``Vx``, ``Vy``, Darcy's ``nu``; ``gen_diff_react.py`` and
  ``sim_radial_dam_break.py``: ``<seed:04d>/data`` (T, X, Y, C), ``<seed>/grid/{x,y,t}``; ``src/data_io.py``:
  the incompressible NS ``velocity``, ``particles``, ``force``, ``t``) and the file names of its release.
- COCO: pycocotools' instances json (images, annotations with bbox [x, y, w, h], area, iscrowd, categories),
  ``annotations/instances_{train,val}2017.json``, ``{train,val}2017/<12-digit id>.jpg``.
- ADE20K: mmsegmentation's ``ADE20KDataset`` (``ADEChallengeData2016/images/{training,validation}/*.jpg``,
  ``annotations/.../*.png``, 0 = other, 1..150 the classes).
- SR pairs: BasicSR / MambaIR option files (``DIV2K_train_HR/0001.png``, ``DIV2K_train_LR_bicubic/X2/0001x2.png``,
  ``Set5/GTmod12/baby.png`` + ``Set5/LRbicx2/baby.png``, ``Set5/HR`` + ``Set5/LR_bicubic/X3/babyx3.png``).
- LlamaGen: ``vq_train.py``'s checkpoint dict (``model``, ``ema``, ``optimizer``, ``discriminator``,
  ``optimizer_disc``, ``steps``, ``args`` an ``argparse.Namespace``) of ``VQ_8`` / ``VQ_16``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image

RNG_SEED = 0


def _rng(seed: int = RNG_SEED) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---- PDEBench -----------------------------------------------------------------------------------------

PDEBENCH_1D = {"burgers": "1D_Burgers_Sols_Nu0.1.hdf5", "advection": "1D_Advection_Sols_beta0.1.hdf5",
               "reaction_diffusion": "ReacDiff_Nu0.5_Rho1.0.hdf5"}


def pdebench_1d(folder: Path, equation: str, n: int = 20, steps: int = 9, x: int = 32) -> Path:
    """``tensor`` (N, T, X), ``x-coordinate`` (cell centres of [0, 1]), ``t-coordinate`` (T + 1 values, as
    the released Burgers files hold)."""
    path = folder / PDEBENCH_1D[equation]
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=_rng().standard_normal((n, steps, x)).astype(np.float32))
        f.create_dataset("x-coordinate", data=((np.arange(x) + 0.5) / x).astype(np.float32))
        f.create_dataset("t-coordinate", data=np.linspace(0, 2, steps + 1).astype(np.float32))
    return path


def pdebench_darcy(folder: Path, n: int = 20, x: int = 16) -> Path:
    path = folder / "2D_DarcyFlow_beta1.0_Train.hdf5"
    rng = _rng()
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=rng.standard_normal((n, 1, x, x)).astype(np.float32))
        f.create_dataset("nu", data=rng.standard_normal((n, x, x)).astype(np.float32))
        f.create_dataset("x-coordinate", data=((np.arange(x) + 0.5) / x).astype(np.float32))
        f.create_dataset("y-coordinate", data=((np.arange(x) + 0.5) / x).astype(np.float32))
    return path


def pdebench_cfd(folder: Path, dim: int, n: int = 20, steps: int = 6, x: int = 16, boundary: str = "periodic") -> Path:
    """1-D: ``1D_CFD_Rand_Eta0.01_Zeta0.01_periodic_Train.hdf5`` (density, pressure, Vx); 2-D adds Vy and
    ``y-coordinate`` (``2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_periodic_128_Train.hdf5``)."""
    name = (f"1D_CFD_Rand_Eta0.01_Zeta0.01_{boundary}_Train.hdf5" if dim == 1
            else f"2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_{boundary}_128_Train.hdf5")
    path = folder / name
    rng = _rng()
    shape = (n, steps) + (x,) * dim
    with h5py.File(path, "w") as f:
        for key in ("density", "pressure", "Vx", "Vy")[: 2 + dim]:
            f.create_dataset(key, data=rng.standard_normal(shape).astype(np.float32))
        for axis in "xy"[:dim]:
            f.create_dataset(f"{axis}-coordinate", data=np.linspace(-1, 1, x).astype(np.float32))
        f.create_dataset("t-coordinate", data=np.linspace(0, 1, steps + 1).astype(np.float32))
        f.attrs["eta"], f.attrs["zeta"] = 0.01, 0.01
    return path


def pdebench_ns(folder: Path, index: int = 0, n: int = 4, steps: int = 4, x: int = 16) -> Path:
    """One of the incompressible NS release's files: ``velocity`` (N, T, X, Y, 2), ``particles``, ``force``, ``t``."""
    path = folder / f"ns_incom_inhom_2d_512-{index}.h5"
    rng = _rng(index)
    with h5py.File(path, "w") as f:
        f.create_dataset("velocity", data=rng.standard_normal((n, steps, x, x, 2)).astype(np.float32))
        f.create_dataset("particles", data=rng.random((n, steps, x, x, 1)).astype(np.float32))
        f.create_dataset("force", data=rng.standard_normal((n, x, x, 2)).astype(np.float32))
        f.create_dataset("t", data=np.tile(np.arange(steps, dtype=np.float32), (n, 1)))
    return path


PDEBENCH_GROUPS = {"diffusion_reaction": ("2D_diff-react_NA_NA.h5", 2), "shallow_water": ("2D_rdb_NA_NA.h5", 1)}


def pdebench_groups(folder: Path, equation: str, n: int = 20, steps: int = 5, x: int = 16) -> Path:
    """One group per sample, ``<seed:04d>/data`` (T, X, Y, C) and ``<seed>/grid/{x,y,t}``, lzf-compressed
    as ``gen_diff_react.py`` writes them; sample k's values are offset by k (to check which sample was read)."""
    name, channels = PDEBENCH_GROUPS[equation]
    path = folder / name
    rng = _rng()
    with h5py.File(path, "w") as f:
        for k in range(n):
            seed = str(k).zfill(4)
            data = rng.standard_normal((steps, x, x, channels)).astype(np.float32) + k
            f.create_dataset(f"{seed}/data", data=data, compression="lzf")
            f.create_dataset(f"{seed}/grid/x", data=np.linspace(-1, 1, x, dtype=np.float32))
            f.create_dataset(f"{seed}/grid/y", data=np.linspace(-1, 1, x, dtype=np.float32))
            f.create_dataset(f"{seed}/grid/t", data=np.linspace(0, 5, steps, dtype=np.float32))
            f[seed].attrs["config"] = "sim: {}"
    return path


# ---- images -------------------------------------------------------------------------------------------

def save_image(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth RGB uint8 image (gradients and a blob: compresses well, bicubic-friendly)."""
    rng = _rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + rng.random() * 6), np.cos(5 * yy + rng.random() * 6), np.sin(4 * (xx + yy))], -1)
    return ((base * 0.5 + 0.5) * 255).round().astype(np.uint8)


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    return np.asarray(Image.fromarray(hr[: h * scale, : w * scale]).resize((w, h), Image.BICUBIC))


def div2k(root: Path, scale: int = 2, n_train: int = 3, n_valid: int = 2, side: int = 48) -> Path:
    """``DIV2K_{train,valid}_HR/0001.png`` and ``DIV2K_{train,valid}_LR_bicubic/X<s>/0001x<s>.png``."""
    for split, ids in (("train", range(1, n_train + 1)), ("valid", range(801, 801 + n_valid))):
        for i in ids:
            hr = photo(side, side + 8, i)
            save_image(root / f"DIV2K_{split}_HR" / f"{i:04d}.png", hr)
            save_image(root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}" / f"{i:04d}x{scale}.png", bicubic_lr(hr, scale))
    return root


SET5 = ("baby", "bird", "butterfly", "head", "woman")


def set5_basicsr(root: Path, scale: int = 2, side: int = 36) -> Path:
    """BasicSR's ``Set5/GTmod12/<name>.png`` and ``Set5/LRbicx<s>/<name>.png`` (same names)."""
    for k, name in enumerate(SET5):
        hr = photo(side, side + 12, 10 + k)  # GTmod12: sides already multiples of 12
        save_image(root / "GTmod12" / f"{name}.png", hr)
        save_image(root / f"LRbicx{scale}" / f"{name}.png", bicubic_lr(hr, scale))
    return root


def set5_mambair(root: Path, scale: int = 3, side: int = 36) -> Path:
    """MambaIR's ``Set5/HR/<name>.png`` and ``Set5/LR_bicubic/X<s>/<name>x<s>.png``."""
    for k, name in enumerate(SET5):
        hr = photo(side, side + 12, 20 + k)
        save_image(root / "HR" / f"{name}.png", hr)
        save_image(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", bicubic_lr(hr, scale))
    return root


def coco(root: Path, n_train: int = 4, n_val: int = 3, side: int = 64) -> Path:
    """``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/<id:012d>.jpg``: category ids with
    gaps (1, 3, 90), four boxes per image (one of them a crowd in validation), images of different sizes."""
    categories = [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 3, "name": "car", "supercategory": "vehicle"},
                  {"id": 90, "name": "toothbrush", "supercategory": "indoor"}]
    ann_id = 1
    for split, n in (("train2017", n_train), ("val2017", n_val)):
        images, annotations = [], []
        for k in range(n):
            image_id = 139 + 1000 * k + (split == "val2017")
            w, h = side + 16 * (k % 2), side
            name = f"{image_id:012d}.jpg"
            save_image(root / split / name, photo(h, w, image_id), quality=95)
            images.append({"id": image_id, "file_name": name, "width": w, "height": h, "license": 1})
            for cat, box, crowd in ((1, [4.0, 6.0, 20.5, 30.0], 0), (90, [30.0, 10.0, 16.0, 12.0], 0),
                                    (3, [2.0, 40.0, 40.0, 20.0], int(split == "val2017")), (3, [44.0, 4.0, 14.0, 14.0], 0)):
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": cat, "bbox": box,
                                    "area": box[2] * box[3] * 0.8, "iscrowd": crowd, "segmentation": []})
                ann_id += 1
        spec = {"info": {"description": "tiny"}, "licenses": [], "images": images, "annotations": annotations,
                "categories": categories}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(spec))
    return root


def ade20k(parent: Path, n_train: int = 4, n_val: int = 2, classes: int = 150) -> Path:
    """``ADEChallengeData2016/images/{training,validation}/ADE_*.jpg`` and ``annotations/.../ADE_*.png``
    (single-channel, 0 = other, 1..150); images of different sizes. Returns the ADEChallengeData2016 folder."""
    root = parent / "ADEChallengeData2016"
    for split, prefix, n in (("training", "ADE_train", n_train), ("validation", "ADE_val", n_val)):
        for k in range(1, n + 1):
            h, w = 40 + 8 * k, 48
            mask = np.zeros((h, w), np.uint8)
            mask[: h // 2, : w // 2] = 1 + k % classes
            mask[h // 2 :, w // 3 :] = classes  # the last class, 150
            save_image(root / "images" / split / f"{prefix}_{k:08d}.jpg", photo(h, w, k), quality=95)
            save_image(root / "annotations" / split / f"{prefix}_{k:08d}.png", mask)
    return root


def imagefolder(root: Path, classes: tuple[str, ...] = ("n01440764", "n01443537"), per_class: int = 3) -> Path:
    """``train/<class>/*.JPEG`` and ``val/<class>/*.JPEG`` (ImageNet's extension), one greyscale and one CMYK JPEG."""
    for split in ("train", "val"):
        for c, name in enumerate(classes):
            for k in range(per_class):
                array = photo(24, 24, 100 * c + k)
                image = Image.fromarray(array).convert({0: "RGB", 1: "L", 2: "CMYK"}[k % 3])
                path = root / split / name / f"{name}_{k}.JPEG"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path, "JPEG")
    return root


# ---- LlamaGen --------------------------------------------------------------------------------------------

def llamagen_checkpoint(path: Path, state: dict[str, torch.Tensor], *, training: bool, ema: dict | None = None,
                        vq_model: str = "VQ-16") -> Path:
    """``vq_train.py``'s checkpoint (training=True) or a released ``{"model": state dict}``."""
    if not training:
        torch.save({"model": state}, path)
        return path
    args = argparse.Namespace(vq_model=vq_model, codebook_size=16384, codebook_embed_dim=8, ema=ema is not None,
                              image_size=256, global_batch_size=128, lr=1e-4, results_dir="results_tokenizer_image")
    checkpoint = {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
                  "discriminator": {"conv.weight": torch.zeros(2, 2)}, "optimizer_disc": {"state": {}, "param_groups": []},
                  "steps": 1000, "args": args}
    if ema is not None:
        checkpoint["ema"] = ema
    torch.save(checkpoint, path)
    return path
