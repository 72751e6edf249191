"""The ``dense`` family: detection and segmentation heads on the swapped backbones (MambaOut, arXiv 2405.07992).

MambaOut's hypothesis predicts the SSM matters here: dense tasks run at high resolution, where stage-1
tokens far exceed 6D (the row's ``l_over_6d``), and the paper's COCO results have VMamba ahead of MambaOut.
``model.head`` picks FCOS detection (box mAP, torchmetrics ``MeanAveragePrecision``, which needs the
``pycocotools`` package) or FPN segmentation (mIoU and pixel accuracy, torchmetrics); the metric columns
of the other head are NaN, so each task has exactly one non-NaN primary metric (``map`` or ``miou``).
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from harness.errors import HarnessError
from harness.families.base import Baseline, Experiment, Family, MetricSpec, Params, RunContext, TinyConfig
from harness.families.dense.config import DenseModelParams
from harness.families.dense.data import CHECKS, DATASETS, IGNORE_INDEX, LOADERS, DenseData
from harness.families.dense.model import Detector, Segmenter
from harness.families.dense.shapes import CLASSES
from harness.families.trivial import MAJORITY
from harness.families.vision.batching import StepSampler, eval_chunks, example_images
from harness.families.vision.model import VARIANTS, build_backbone, check_resolution, token_columns


# classes of the built-in set, so build_model needs no data (COCO/ADE read their annotations)
BUILTIN_CLASSES = {"shapes": len(CLASSES) + 1}
# training masks counted for the segmentation baseline's majority class
MASK_SAMPLES = 256


def collate_dense(dataset, indices: list[int], device: torch.device) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Images stacked (all ``resolution`` square), targets kept per image (box counts differ)."""
    samples = [dataset[i] for i in indices]
    images = torch.stack([s[0] for s in samples]).to(device)
    targets = [{k: v.to(device) for k, v in s[1].items()} for s in samples]
    return images, targets


def map_metric():
    """torchmetrics' box mAP; its COCO evaluation backend (pycocotools) is a separate package."""
    if importlib.util.find_spec("pycocotools") is None:
        raise HarnessError("box mAP (torchmetrics MeanAveragePrecision) needs pycocotools: pip install pycocotools")
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")


def scored_boxes(target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ground truth COCOeval scores, on the CPU: every box of the image, crowd ones flagged as ignore
    regions, with the json's areas (real COCO data); the training boxes where a dataset has no others."""
    if "gt_boxes" not in target:
        return {"boxes": target["boxes"].cpu(), "labels": target["labels"].cpu()}
    return {"boxes": target["gt_boxes"].cpu(), "labels": target["gt_labels"].cpu(), "iscrowd": target["iscrowd"].cpu(),
            "area": target["area"].cpu()}


def at_size(logits: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Segmentation logits bilinearly resized to ``size`` (mmseg's ``resize`` of the seg logits to the original
    image before the argmax); unchanged when they already have it."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)


class DenseExperiment(Experiment):
    def __init__(self, ctx: RunContext, model: Detector | Segmenter, data: DenseData):
        super().__init__(ctx, model, data)
        self.head = ctx.model.head
        self.sampler = StepSampler(len(data.train), ctx.train_batch_size, ctx.seed)

    def train_batch(self, step: int):
        return collate_dense(self.data.train, self.sampler.indices(step), self.ctx.device)

    def loss(self, batch) -> torch.Tensor:
        images, targets = batch
        if self.head == "detection":
            return self.model.loss(images, targets)
        masks = torch.stack([t["mask"] for t in targets])
        return F.cross_entropy(self.model(images), masks, ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        out = {"map": math.nan, "map_50": math.nan, "miou": math.nan, "pixel_acc": math.nan}
        chunks = eval_chunks(len(self.data.val), self.ctx.eval_batch_size)
        if self.head == "detection":
            metric = map_metric()
            for chunk in chunks:
                images, targets = collate_dense(self.data.val, chunk, self.ctx.device)
                preds = [{k: v.float().cpu() if k != "labels" else v.cpu() for k, v in p.items()} for p in self.model.predict(images)]
                metric.update(preds, [scored_boxes(t) for t in targets])
            result = metric.compute()
            out.update(map=float(result["map"]), map_50=float(result["map_50"]))
        else:
            k, device = self.data.num_classes, self.ctx.device
            miou = MulticlassJaccardIndex(k, average="macro", ignore_index=IGNORE_INDEX).to(device)
            acc = MulticlassAccuracy(k, average="micro", ignore_index=IGNORE_INDEX).to(device)
            for chunk in chunks:
                images, targets = collate_dense(self.data.val, chunk, device)
                logits = self.model(images)
                for i, target in enumerate(targets):  # scored at the mask's own size (mmseg: the original image's)
                    pred = at_size(logits[i : i + 1], target["mask"].shape).argmax(1)
                    miou.update(pred, target["mask"][None])
                    acc.update(pred, target["mask"][None])
            out.update(miou=float(miou.compute()), pixel_acc=float(acc.compute()))
        return out

    @torch.no_grad()
    def trivial_baselines(self) -> dict[str, Baseline]:
        """The head's metric for a predictor that learned nothing, scored by the same metric on the validation
        set: no detections (mAP), or the training masks' most frequent class at every pixel (mIoU; counted
        over at most ``MASK_SAMPLES`` training images, so a large set is not read twice)."""
        chunks = eval_chunks(len(self.data.val), self.ctx.eval_batch_size)
        if self.head == "detection":
            metric = map_metric()
            for chunk in chunks:
                _, targets = collate_dense(self.data.val, chunk, torch.device("cpu"))
                empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
                metric.update([empty] * len(targets), [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
            return {"map": Baseline(float(metric.compute()["map"]), "no detections")}
        k = self.data.num_classes
        counts = torch.zeros(k, dtype=torch.long)
        for i in range(min(len(self.data.train), MASK_SAMPLES)):
            mask = self.data.train[i][1]["mask"].flatten()
            counts += torch.bincount(mask[mask != IGNORE_INDEX].long(), minlength=k)[:k]
        favoured = int(counts.argmax())
        miou = MulticlassJaccardIndex(k, average="macro", ignore_index=IGNORE_INDEX)
        for chunk in chunks:
            _, targets = collate_dense(self.data.val, chunk, torch.device("cpu"))
            for t in targets:  # one mask at a time: real validation masks keep their own sizes (ADE20K)
                mask = t["mask"][None]
                miou.update(torch.full_like(mask, favoured), mask)
        return {"miou": Baseline(float(miou.compute()), MAJORITY)}

    def row_extras(self) -> dict[str, Any]:
        r = self.data.resolution
        return {**token_columns(self.model.backbone, r, r), "resolution": r, "head": self.head, "num_classes": self.data.num_classes,
                **({"data_protocol": self.data.protocol} if self.data.protocol else {})}


class DenseFamily(Family):
    name: ClassVar[str] = "dense"
    description: ClassVar[str] = "MambaOut dense tasks: FCOS detection / FPN segmentation on the swapped backbone"
    ModelParams: ClassVar[type[DenseModelParams]] = DenseModelParams
    datasets = DATASETS
    variants = VARIANTS
    metrics = {
        "map": MetricSpec(higher_is_better=True, unit="fraction", primary=True),  # detection tasks
        "map_50": MetricSpec(higher_is_better=True, unit="fraction"),
        "miou": MetricSpec(higher_is_better=True, unit="fraction", primary=True),  # segmentation tasks
        "pixel_acc": MetricSpec(higher_is_better=True, unit="fraction"),
    }
    causal = False
    width_field = "width"
    HEAD_METRICS: ClassVar[dict[str, tuple[str, ...]]] = {"detection": ("map", "map_50"), "segmentation": ("miou", "pixel_acc")}
    experiment_class = DenseExperiment
    # 1: COCO scored as COCOeval (crowd boxes ignore regions, json areas), ADE20K's mIoU at the original size
    results_version: ClassVar[int] = 1
    tiny = TinyConfig("shapes", {"resolution": 64, "n_train": 8, "n_val": 4},
                      {"depths": [1, 1, 1, 1], "dims": [16, 16, 32, 32], "head_dim": 16, "head": "segmentation"})

    @classmethod
    def task_metrics(cls, model: dict[str, Any]) -> tuple[str, ...]:
        """The head's metrics: a segmentation task's primary metric is miou, not the family's first (map)."""
        head = model.get("head", DenseModelParams.model_fields["head"].default)
        return cls.HEAD_METRICS.get(head, tuple(cls.metrics))  # an unknown head is the schema's error to report

    def check_data(self, dataset: str, data: Params) -> None:
        if dataset in CHECKS:
            CHECKS[dataset](data)

    def check_config(self, use: str, data: Params, model: Params) -> None:
        check_resolution(model, data.resolution)

    def load_data(self, ctx: RunContext) -> DenseData:
        data = LOADERS[ctx.dataset](ctx.data)
        if ctx.model.head not in data.heads:
            raise HarnessError(f"dataset {ctx.dataset!r} has no targets for head {ctx.model.head!r}; it supports {', '.join(data.heads)}")
        return data

    def build_model(self, ctx: RunContext, data: DenseData | None = None) -> Detector | Segmenter:
        p: DenseModelParams = ctx.model
        if data is not None:
            num_classes = data.num_classes
        elif ctx.dataset in BUILTIN_CLASSES:
            num_classes = BUILTIN_CLASSES[ctx.dataset]
        else:
            num_classes = LOADERS[ctx.dataset](ctx.data).num_classes
        backbone = build_backbone(ctx.use, p)
        if p.head == "detection":
            return Detector(backbone, num_classes, ctx.data.resolution, p.fpn_channels, p.head_convs)
        return Segmenter(backbone, num_classes, p.fpn_channels)

    def example_inputs(self, ctx: RunContext, batch_size: int, data: Any = None) -> tuple[torch.Tensor, ...]:
        return example_images(ctx.data.resolution, batch_size, unit_range=True)
