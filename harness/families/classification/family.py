"""The ``classification`` family: MambaOut's image-classification pairing (arXiv 2405.07992).

The paper's claim is that classification is neither long-sequence (L/(6D) < 1 at ImageNet sizes) nor
autoregressive, so the Gated CNN (``gated_cnn``, MambaOut) should match Mamba; Pathfinder is the
long-range counter-example where the SSM's reach might matter. Variants share the skeleton and head
(``harness.models.backbone``) and differ only in the token mixer. Metrics: top-1/top-5 accuracy
(torchmetrics); top-5 is NaN for tasks with fewer than 5 classes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from harness.families.base import Experiment, Family, MetricSpec, Params, RunContext, TinyConfig
from harness.families.classification.data import CHECKS, DATASETS, LOADERS, ClassificationData
from harness.families.vision.batching import StepSampler, collate, eval_chunks, example_images
from harness.families.vision.config import VisionModelParams
from harness.families.vision.model import VARIANTS, build_backbone, check_resolution, token_columns
from harness.models.backbone import ImageClassifier

# classes of the built-in datasets (imagefolder counts its folders), so build_model needs no data
NUM_CLASSES = {"digits": 10, "lfw_faces": 2, "pathfinder": 2}


class ClassificationExperiment(Experiment):
    def __init__(self, ctx: RunContext, model: ImageClassifier, data: ClassificationData):
        super().__init__(ctx, model, data)
        self.sampler = StepSampler(len(data.train), ctx.train_batch_size, ctx.seed)

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = collate(self.data.train, self.sampler.indices(step))
        return self.data.prepare(images.to(self.ctx.device)), labels.to(self.ctx.device)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self.model(images), labels)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        k = self.data.num_classes
        top1 = MulticlassAccuracy(k, top_k=1, average="micro").to(self.ctx.device)
        top5 = MulticlassAccuracy(k, top_k=5, average="micro").to(self.ctx.device) if k >= 5 else None
        for chunk in eval_chunks(len(self.data.val), self.ctx.eval_batch_size):
            images, labels = collate(self.data.val, chunk)
            logits = self.model(self.data.prepare(images.to(self.ctx.device))).float()
            labels = labels.to(self.ctx.device)
            top1.update(logits, labels)
            if top5 is not None:
                top5.update(logits, labels)
        return {"top1": float(top1.compute()), "top5": float(top5.compute()) if top5 is not None else math.nan}

    def row_extras(self) -> dict[str, Any]:
        r = self.data.resolution
        return {**token_columns(self.model.backbone, r, r), "resolution": r, "num_classes": self.data.num_classes}


class ClassificationFamily(Family):
    name: ClassVar[str] = "classification"
    description: ClassVar[str] = "MambaOut image classification: Gated CNN vs Mamba vs attention on one 4-stage backbone"
    ModelParams: ClassVar[type[VisionModelParams]] = VisionModelParams
    datasets = DATASETS
    variants = VARIANTS
    metrics = {
        "top1": MetricSpec(higher_is_better=True, unit="fraction", primary=True),
        "top5": MetricSpec(higher_is_better=True, unit="fraction"),
    }
    causal = False
    width_field = "width"
    experiment_class = ClassificationExperiment
    tiny = TinyConfig("digits", {"resolution": 32}, {"depths": [1, 1, 1], "dims": [16, 16, 32], "head_dim": 16})
    dataset_contract: ClassVar[str] = (
        "load(params) -> harness.families.classification.data.ClassificationData (train and val datasets of "
        "(image (C, h, w) in [0, 1], label), num_classes, resolution, prepare: data.to_model_input(resolution)); "
        "the params schema has resolution")

    def _num_classes(self, ctx: RunContext) -> int:
        if ctx.dataset in NUM_CLASSES:
            return NUM_CLASSES[ctx.dataset]
        if ctx.dataset in CHECKS:
            return len(CHECKS[ctx.dataset](ctx.data))  # imagefolder: its class folders
        return self._load(ctx).num_classes  # a registered dataset

    def check_data(self, dataset: str, data: Params) -> None:
        if dataset in CHECKS:
            CHECKS[dataset](data)

    def check_config(self, use: str, data: Params, model: Params) -> None:
        check_resolution(model, data.resolution)

    def load_data(self, ctx: RunContext) -> ClassificationData:
        return self._load(ctx)

    def _load(self, ctx: RunContext) -> ClassificationData:
        """A built-in loader, or a registered dataset's ``load``."""
        return (LOADERS.get(ctx.dataset) or self.datasets[ctx.dataset].load)(ctx.data)

    def build_model(self, ctx: RunContext, data: ClassificationData | None = None) -> ImageClassifier:
        num_classes = data.num_classes if data is not None else self._num_classes(ctx)
        return ImageClassifier(build_backbone(ctx.use, ctx.model), num_classes)

    def example_inputs(self, ctx: RunContext, batch_size: int, data: Any = None) -> tuple[torch.Tensor, ...]:
        return example_images(ctx.data.resolution, batch_size)
