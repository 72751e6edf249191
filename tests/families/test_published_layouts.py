"""Image datasets as their owners ship them (``published_layouts``), each validated and run end to end from a
suite, with the number that checks the reading: COCO's category renumbering, box conversion and crowd
handling against pycocotools' COCOeval; ADE20K's mask mapping and mmseg's full-resolution mIoU; DIV2K /
BasicSR / MambaIR pair names; image-folder class names. Bad layouts fail validation at the data key's line,
naming the file and what to do."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

import published_layouts as L
from harness.config.load import load_suite
from harness.errors import ConfigError
from harness.families import FAMILIES
from harness.families.dense.config import AdeParams, CocoParams, DenseModelParams
from harness.families.dense.data import IGNORE_INDEX, load_ade, load_coco
from harness.families.dense.family import map_metric, scored_boxes
from harness.families.restoration.config import FolderData
from harness.families.restoration.data import RestorationSet, find_pairs
from harness.plan.planner import plan
from harness.run.runner import build_experiment, execute_run, make_context

VISION = {"depths": [1, 1, 1], "dims": [16, 16, 32], "head_dim": 16, "window": 4}
RESTORATION = {"embed_dim": 8, "depths": [1], "window_size": 4, "d_state": 4, "num_prompts": 4, "prompt_rank": 2}


def suite_file(tmp_path: Path, family: str, dataset: str, data: dict, model: dict, variants: list[str]) -> Path:
    suite = {"suite": "layouts", "seeds": [0], "variants": variants,
             "train": {"steps": 1, "batch_size": 2, "eval_batch_size": 4, "warmup_steps": 0},
             "measure": {"flops": False, "latency": False, "memory": False, "batch_size": 2},
             "tasks": [{"name": "real", "family": family, "dataset": dataset, "data": data, "model": model}]}
    path = tmp_path / "layouts.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def run_suite(path: Path, cache: Path) -> list[dict]:
    """Validate (which opens the data), plan, and run every spec in this process."""
    rows = [execute_run(s.run, s.run_id, cache) for s in plan(load_suite(path), device="cpu")]
    for row in rows:
        assert row["status"] == "ok", row["error"]
    return rows


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    return err.value


# ---- COCO ------------------------------------------------------------------------------------------------

def test_coco_as_shipped_runs_and_boxes_convert_exactly(tmp_path):
    root = L.coco(tmp_path / "coco")
    data = load_coco(CocoParams(path=str(root), resolution=64))
    assert len(data.train) == 4 and data.num_classes == 4  # ids 1, 3, 90 -> labels 1, 2, 3 (+ background)
    image, target = data.train[1]  # 80x64 image: x scaled by 64/80
    assert image.shape == (3, 64, 64)
    torch.testing.assert_close(target["boxes"][0], torch.tensor([4 * 0.8, 6.0, 24.5 * 0.8, 36.0]))
    assert target["labels"].tolist() == [1, 3, 2, 2]
    _, val = data.val[0]
    assert val["iscrowd"].tolist() == [0, 0, 1, 0] and val["labels"].tolist() == [1, 3, 2]  # the crowd box is not trained on
    assert val["gt_labels"].tolist() == [1, 3, 2, 2] and torch.allclose(val["area"], torch.tensor([492.0, 153.6, 640.0, 156.8]))
    rows = run_suite(suite_file(tmp_path, "dense", "coco", {"path": str(root), "resolution": 64},
                                {**VISION, "head": "detection", "fpn_channels": 32}, ["gated_cnn"]), tmp_path / "cache")
    assert 0 <= rows[0]["map"] <= 1 and "crowd boxes ignored" in rows[0]["data_protocol"]


def test_coco_crowd_boxes_are_ignored_as_cocoeval_ignores_them(tmp_path):
    """Detections on every box, crowd ones included, plus one false positive: our mAP (images resized, gt from
    the dataset) equals pycocotools' COCOeval on the original json and detections; deleting the crowd boxes
    would count the detection on each crowd region as a false positive."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root = L.coco(tmp_path / "coco", n_val=3)
    data = load_coco(CocoParams(path=str(root), resolution=64))
    spec = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    label_of = {1: 1, 3: 2, 90: 3}
    dets, metric = [], map_metric()
    for i, image in enumerate(sorted(spec["images"], key=lambda im: im["id"])):
        anns = [a for a in spec["annotations"] if a["image_id"] == image["id"]]
        boxes = [a["bbox"] for a in anns] + [[50.0, 50.0, 10.0, 10.0]]  # the last: a false positive
        cats = [a["category_id"] for a in anns] + [1]
        scores = [0.9] * len(anns) + [0.95]
        dets += [{"image_id": image["id"], "category_id": c, "bbox": b, "score": s} for b, c, s in zip(boxes, cats, scores)]
        sx, sy = 64 / image["width"], 64 / image["height"]
        xyxy = torch.tensor([[x * sx, y * sy, (x + w) * sx, (y + h) * sy] for x, y, w, h in boxes])
        metric.update([{"boxes": xyxy, "scores": torch.tensor(scores), "labels": torch.tensor([label_of[c] for c in cats])}],
                      [scored_boxes(data.val[i][1])])
    gt = COCO(str(root / "annotations" / "instances_val2017.json"))
    evaluator = COCOeval(gt, gt.loadRes(dets), "bbox")
    evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
    ours = metric.compute()
    assert float(ours["map"]) == pytest.approx(evaluator.stats[0], abs=1e-6)
    assert float(ours["map_50"]) == pytest.approx(evaluator.stats[1], abs=1e-6)
    deleted = map_metric()  # what the loader did before: crowd boxes dropped from the ground truth
    for i, image in enumerate(sorted(spec["images"], key=lambda im: im["id"])):
        t = scored_boxes(data.val[i][1])
        keep = t["iscrowd"] == 0
        anns = [a for a in spec["annotations"] if a["image_id"] == image["id"]]
        sx, sy = 64 / image["width"], 64 / image["height"]
        boxes = [a["bbox"] for a in anns] + [[50.0, 50.0, 10.0, 10.0]]
        xyxy = torch.tensor([[x * sx, y * sy, (x + w) * sx, (y + h) * sy] for x, y, w, h in boxes])
        deleted.update([{"boxes": xyxy, "scores": torch.tensor([0.9] * len(anns) + [0.95]),
                         "labels": torch.tensor([label_of[a["category_id"]] for a in anns] + [1])}],
                       [{"boxes": t["boxes"][keep], "labels": t["labels"][keep]}])
    assert float(deleted.compute()["map"]) < float(ours["map"])


def test_coco_layout_errors_fail_validation(tmp_path):
    root = L.coco(tmp_path / "coco")
    model = {**VISION, "head": "detection", "fpn_channels": 32}
    info = root / "annotations" / "image_info_test-dev2017.json"
    spec = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    info.write_text(json.dumps({k: v for k, v in spec.items() if k != "annotations"}))
    err = refused(suite_file(tmp_path, "dense", "coco", {"path": str(root), "resolution": 64,
                                                          "val_ann": "annotations/image_info_test-dev2017.json"}, model, ["gated_cnn"]))
    assert "has no 'annotations'" in err.message and "test-dev" in err.message and "val_ann" in Path(err.file).read_text().splitlines()[err.line - 1]
    (root / "val2017" / "000000000140.jpg").unlink()
    err = refused(suite_file(tmp_path, "dense", "coco", {"path": str(root), "resolution": 64}, model, ["gated_cnn"]))
    assert "000000000140.jpg not found: instances_val2017.json names it in images[].file_name" in err.message


@pytest.mark.parametrize("channels,ok", [(16, False), (48, False), (32, True), (64, True)])
def test_fcos_needs_fpn_channels_in_multiples_of_32(tmp_path, channels, ok):
    model = {**VISION, "head": "detection", "fpn_channels": channels}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"suite": "s", "variants": ["gated_cnn"], "tasks": [
        {"name": "det", "family": "dense", "dataset": "shapes", "data": {"resolution": 64}, "model": model}]}, sort_keys=False))
    if ok:
        load_suite(path)
        return
    err = refused(path)
    assert f"fpn_channels={channels} must be a multiple of 32 with head: detection" in err.message and "GroupNorm(32" in err.message
    assert "fpn_channels" in path.read_text().splitlines()[err.line - 1]
    DenseModelParams(**{**VISION, "head": "segmentation", "fpn_channels": channels})  # the segmentation head has no GroupNorm


# ---- ADE20K ----------------------------------------------------------------------------------------------

def test_ade20k_from_its_parent_folder_maps_masks_and_scores_at_the_original_size(tmp_path):
    L.ade20k(tmp_path / "ade")  # data.path: the folder holding ADEChallengeData2016 (mmseg's data/ade)
    p = AdeParams(path=str(tmp_path / "ade"), resolution=32)
    data = load_ade(p)
    image, target = data.train[0]
    assert image.shape == (3, 32, 32) and target["mask"].shape == (32, 32)
    _, val = data.val[1]  # validation masks keep their size: 56x48
    assert val["mask"].shape == (56, 48)
    assert set(val["mask"].unique().tolist()) == {IGNORE_INDEX, 2, 149}  # 0 -> ignored, 3 -> 2, 150 -> 149
    rows = run_suite(suite_file(tmp_path, "dense", "ade20k", {"path": str(tmp_path / "ade"), "resolution": 32},
                                {**VISION, "head": "segmentation", "fpn_channels": 16}, ["gated_cnn"]), tmp_path / "cache")
    assert 0 <= rows[0]["miou"] <= 1 and "original size" in rows[0]["data_protocol"]


def test_ade20k_miou_is_mmsegs(tmp_path):
    """mmseg's IoUMetric by hand: logits resized to each original mask, per-class intersection and union summed
    over the set, IoU averaged over the classes that occur (nanmean)."""
    L.ade20k(tmp_path / "ade")
    fam = FAMILIES.get("dense")()
    from test_vision import make_ctx

    ctx = make_ctx("dense", "gated_cnn", "ade20k", {"path": str(tmp_path / "ade"), "resolution": 32},
                   {**VISION, "head": "segmentation", "fpn_channels": 16}, tmp_path)
    exp = build_experiment(fam, ctx)
    exp.model.eval()
    k = exp.data.num_classes
    inter, union = torch.zeros(k), torch.zeros(k)
    with torch.no_grad():
        for i in range(len(exp.data.val)):
            image, target = exp.data.val[i]
            mask = target["mask"]
            logits = F.interpolate(exp.model(image[None]), size=mask.shape, mode="bilinear", align_corners=False)
            pred, keep = logits.argmax(1)[0], mask != IGNORE_INDEX
            pred, gt = pred[keep], mask[keep]
            hit = pred[pred == gt]
            inter += torch.bincount(hit, minlength=k)[:k].float()
            union += (torch.bincount(pred, minlength=k)[:k] + torch.bincount(gt, minlength=k)[:k]).float()
        union -= inter
        want = float(np.nanmean((inter / union).numpy()))
        assert exp.evaluate()["miou"] == pytest.approx(want, abs=1e-6)


def test_ade20k_errors_say_what_to_do(tmp_path):
    root = L.ade20k(tmp_path / "ade")
    model = {**VISION, "head": "segmentation", "fpn_channels": 16}
    err = refused(suite_file(tmp_path, "dense", "ade20k", {"path": str(root), "resolution": 32, "reduce_zero_label": False}, model, ["gated_cnn"]))
    assert "holds class value 150, beyond num_classes=150" in err.message and "reduce_zero_label: true" in err.message
    err = refused(suite_file(tmp_path, "dense", "ade20k", {"path": str(tmp_path), "resolution": 32}, model, ["gated_cnn"]))
    assert "holds neither images/training/ nor ADEChallengeData2016/images/training/" in err.message
    (root / "annotations" / "validation" / "ADE_val_00000001.png").unlink()
    err = refused(suite_file(tmp_path, "dense", "ade20k", {"path": str(root), "resolution": 32}, model, ["gated_cnn"]))
    assert "has no mask for 1 of the 2 images, e.g. ADE_val_00000001.png for ADE_val_00000001.jpg" in err.message


# ---- SR pairs --------------------------------------------------------------------------------------------

def test_div2k_and_basicsr_set5_pair_names_and_lazy_reading(tmp_path):
    div2k, set5 = L.div2k(tmp_path / "DIV2K"), L.set5_basicsr(tmp_path / "Set5")
    pairs, layout = find_pairs(str(div2k), 2, "train", ("train_path",))
    assert [(h.relative_to(div2k).as_posix(), l.relative_to(div2k).as_posix()) for h, l in pairs][0] == \
        ("DIV2K_train_HR/0001.png", "DIV2K_train_LR_bicubic/X2/0001x2.png") and len(pairs) == 3 and "DIV2K" in layout
    valid, _ = find_pairs(str(div2k), 2, "test", ("test_path",))
    assert valid[0][0].parent.name == "DIV2K_valid_HR"  # DIV2K's own split for evaluation
    pairs, layout = find_pairs(str(set5 / "GTmod12"), 2, "test", ("test_path",))  # the HR folder itself
    assert [(h.name, l.parent.name + "/" + l.name) for h, l in pairs][0] == ("baby.png", "LRbicx2/baby.png") and "BasicSR" in layout
    params = FolderData(train_path=str(div2k), test_path=str(set5), patch_size=16, eval_size=None)
    data = RestorationSet(params, 0)
    assert len(data.train) == 3 and not data.train._cache  # sizes from the headers, nothing decoded yet
    data.train_batch(0, 2)
    assert 1 <= len(data.train._cache) <= 2
    rows = run_suite(suite_file(tmp_path, "restoration", "paired_folders", {"train_path": str(div2k), "test_path": str(set5),
                                                                              "patch_size": 16, "eval_size": None},
                                RESTORATION, ["gated_cnn"]), tmp_path / "cache")
    assert rows[0]["psnr_bicubic"] > 20  # bicubic from the files' own LR images


def test_mambair_set5_at_x3(tmp_path):
    set5 = L.set5_mambair(tmp_path / "Set5", scale=3)
    div2k = L.div2k(tmp_path / "DIV2K", scale=3, side=48)
    pairs, _ = find_pairs(str(set5), 3, "test", ("test_path",))
    assert (pairs[0][0].name, pairs[0][1].relative_to(set5).as_posix()) == ("baby.png", "LR_bicubic/X3/babyx3.png")
    rows = run_suite(suite_file(tmp_path, "restoration", "paired_folders", {"train_path": str(div2k), "test_path": str(set5),
                                                                              "degradation": "sr_x3", "patch_size": 24, "eval_size": 24},
                                RESTORATION, ["gated_cnn"]), tmp_path / "cache")
    assert rows[0]["scale"] == 3 and math.isfinite(rows[0]["psnr"])


def test_sr_layout_errors_fail_validation(tmp_path):
    div2k, set5 = L.div2k(tmp_path / "DIV2K"), L.set5_basicsr(tmp_path / "Set5")
    data = {"train_path": str(div2k), "test_path": str(set5), "patch_size": 16, "eval_size": None, "degradation": "sr_x4"}
    err = refused(suite_file(tmp_path, "restoration", "paired_folders", data, RESTORATION, ["gated_cnn"]))
    assert "has no LR folder" in err.message and "DIV2K_train_LR_bicubic/X4" in err.message
    assert "train_path" in Path(err.file).read_text().splitlines()[err.line - 1]
    (set5 / "LRbicx2" / "bird.png").unlink()
    err = refused(suite_file(tmp_path, "restoration", "paired_folders", {**data, "degradation": "sr_x2"}, RESTORATION, ["gated_cnn"]))
    assert "no LR image for 'bird'" in err.message and "test_path" in Path(err.file).read_text().splitlines()[err.line - 1]


# ---- image folders ---------------------------------------------------------------------------------------

def test_imagefolder_with_greyscale_and_cmyk_jpegs_runs(tmp_path):
    root = L.imagefolder(tmp_path / "imagenet")
    rows = run_suite(suite_file(tmp_path, "classification", "imagefolder", {"path": str(root), "resolution": 32},
                                VISION, ["gated_cnn"]), tmp_path / "cache")
    assert rows[0]["num_classes"] == 2 and 0 <= rows[0]["top1"] <= 1


def test_imagefolder_layout_errors_fail_validation(tmp_path):
    root = L.imagefolder(tmp_path / "imagenet")
    path = suite_file(tmp_path, "classification", "imagefolder", {"path": str(root), "resolution": 32}, VISION, ["gated_cnn"])
    (root / "val" / "n01443537").rename(root / "val" / "n99999999")
    assert "only in train: ['n01443537'], only in val: ['n99999999']" in refused(path).message
    for image in (root / "val" / "n99999999").iterdir():  # ImageNet's validation set as shipped: one flat folder
        image.rename(root / "val" / image.name)
    for image in (root / "val" / "n01440764").iterdir():
        image.rename(root / "val" / image.name)
    for folder in (root / "val").iterdir():
        if folder.is_dir():
            folder.rmdir()
    err = refused(path)
    assert "holds images (e.g." in err.message and "but no class folders" in err.message and "valprep.sh" in err.message
    for image in (root / "val").iterdir():
        image.unlink()
    (root / "val").rmdir()
    assert "has no val/ folder" in refused(path).message
