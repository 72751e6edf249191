"""The small CNN that scores generated samples: class accuracy of CFG samples, and "classifier-FID".

Standard FID needs Inception-v3 weights (a download), and Inception features of 16x16 digits mean little
anyway. So, as is common for small-scale generative benchmarks on MNIST-like data, the Fréchet distance
is computed on the penultimate features of a classifier trained on the same dataset. The numbers are
comparable between variants of one task (same classifier, cached by the data config), NOT with
published Inception FIDs. Trained through the shared loop, cached like the tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.families.argen.config import ClassifierParams, ImageDataParams
from harness.families.argen.data import IMAGE_SET_VERSION, ImageSet, step_generator
from harness.families.base import Experiment
from harness.families.cache import config_key, isolated_rng, load_or_build


class Features(nn.Sequential):
    """Three conv-BN-GELU stages (the last two strided) + global average pool: ``(B, 3, R, R)`` in [-1, 1]
    -> ``(B, num_features)``. ``num_features`` is what torchmetrics' ``FrechetInceptionDistance`` reads
    from a custom extractor. BatchNorm makes a few dozen steps enough on digits."""

    def __init__(self, width: int):
        widths = (width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip((3,) + widths[:-1], widths)):
            layers += [nn.Conv2d(cin, cout, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.GELU()]
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = widths[-1]


class Classifier(nn.Module):
    def __init__(self, num_classes: int, width: int):
        super().__init__()
        self.features = Features(width)
        self.head = nn.Linear(self.features.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ClassifierTraining(Experiment):
    def __init__(self, model: Classifier, images: ImageSet, p: ClassifierParams, device: torch.device):
        self.model, self.images, self.p, self.device = model.to(device), images, p, device

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = step_generator(self.p.seed, step)
        idx = torch.randint(len(self.images.train_images), (self.p.batch_size,), generator=g)
        return self.images.train_images[idx].to(self.device), self.images.train_labels[idx].to(self.device)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x).float(), y)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        pred = self.model(self.images.test_images.to(self.device)).argmax(-1).cpu()
        return {"classifier_acc": float((pred == self.images.test_labels).float().mean())}


def get_classifier(dataset: str, data: ImageDataParams, images: ImageSet, cache_dir: Path,
                   device: torch.device, fit: Callable[..., Any]) -> tuple[Classifier, dict[str, Any]]:
    """The task's scoring classifier (eval mode, frozen) and its test accuracy, cached by the data config;
    trained, on a cache miss, by ``fit`` (the spine's loop, ``RunContext.fit``)."""
    p = data.classifier
    key = config_key({"dataset": dataset, "images": IMAGE_SET_VERSION[dataset],
                      "data": data.model_dump(exclude={"tokenizer", "classifier", "inception_weights"}),
                      "classifier": p.model_dump(), "num_classes": images.num_classes})

    def build() -> dict[str, Any]:
        with isolated_rng(device):
            torch.manual_seed(p.seed)
            exp = ClassifierTraining(Classifier(images.num_classes, p.width), images, p, device)
            fit(exp, device, steps=p.steps, batch_size=p.batch_size, lr=p.lr, warmup_steps=p.steps // 10)
            metrics = exp.evaluate()
        return {"state_dict": {k: v.cpu() for k, v in exp.model.state_dict().items()}, "metrics": metrics}

    artefact, cached = load_or_build(cache_dir / "argen" / f"classifier-{key}.pt", build)
    model = Classifier(images.num_classes, p.width)
    model.load_state_dict(artefact["state_dict"])
    return model.to(device).eval().requires_grad_(False), {**artefact["metrics"], "classifier_cached": cached}
