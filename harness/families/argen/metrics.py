"""Quality metrics of the AR-generation family.

- ``nll_bits_per_token`` (primary): teacher-forced test NLL of the codes, in bits — deterministic, and the
  quantity AR image models are compared on before sampling noise enters. Its trivial baseline
  (``unigram_nll_bits_per_token``): the same NLL under the training codes' unigram distribution.
- ``fid_classifier``: Fréchet distance between classifier features of CFG samples and of test images
  (torchmetrics' ``FrechetInceptionDistance`` with our classifier as the custom ``feature`` module; see
  ``classifier.py`` for why). ``sample_acc``: how often that classifier recognises the requested class.
- ``fid_inception``: standard Inception FID, only when the user gives local Inception weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from harness.errors import HarnessError
from harness.families.argen.model import ARModel


@torch.no_grad()
def nll_bits_per_token(model: ARModel, codes: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    total = 0.0
    for i in range(0, len(codes), batch_size):
        x, y = codes[i : i + batch_size], labels[i : i + batch_size]
        total += float(F.cross_entropy(model(x, y).flatten(0, 1).float(), x.flatten(), reduction="sum"))
    return total / codes.numel() / math.log(2)


def unigram_nll_bits_per_token(train_codes: torch.Tensor, test_codes: torch.Tensor, vocab: int) -> float:
    """The test codes' NLL in bits under the training codes' unigram distribution: the trivial predictor of
    AR generation (no context, no class). Add-one smoothed, so a code unseen in training costs finite bits."""
    counts = torch.bincount(train_codes.flatten().long(), minlength=vocab).double() + 1.0
    log2p = torch.log2(counts / counts.sum())
    return float(-log2p[test_codes.flatten().long()].mean())


@torch.no_grad()
def generate_per_class(model: ARModel, num_classes: int, per_class: int, batch_size: int, seed: int,
                       cfg_scale: float, temperature: float, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` sampled code sequences for every class (deterministic given ``seed``)."""
    device = next(model.parameters()).device
    labels = torch.arange(num_classes, device=device).repeat_interleave(per_class)
    generator = torch.Generator(device=device).manual_seed(seed)
    codes = [model.generate(labels[i : i + batch_size], cfg_scale=cfg_scale, temperature=temperature,
                            top_k=top_k, generator=generator) for i in range(0, len(labels), batch_size)]
    return torch.cat(codes), labels


@torch.no_grad()
def frechet_distance(extractor: nn.Module, real: torch.Tensor, fake: torch.Tensor, batch_size: int,
                     normalize: bool = False) -> float:
    """FID between two image sets with a given feature extractor (images as the extractor expects)."""
    fid = FrechetInceptionDistance(feature=extractor, normalize=normalize).to(real.device)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, len(images), batch_size):
            fid.update(images[i : i + batch_size], real=is_real)
    return float(fid.compute())


def inception_fid(weights: str, real: torch.Tensor, fake: torch.Tensor, batch_size: int) -> float:
    """Standard FID (2048-d Inception pool features) from local weights; images in [-1, 1]."""
    if not Path(weights).expanduser().is_file():
        raise HarnessError(f"inception_weights {weights!r} does not exist; expected torch-fidelity's "
                           "pt_inception-2015-12-05 weights file (nothing is downloaded at run time)")
    try:
        fid = FrechetInceptionDistance(feature=2048, normalize=True,
                                       feature_extractor_weights_path=str(Path(weights).expanduser()))
    except ModuleNotFoundError as exc:
        raise HarnessError(f"standard FID needs the torch-fidelity package ({exc}); pip install torch-fidelity")
    fid = fid.to(real.device)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, len(images), batch_size):
            fid.update((images[i : i + batch_size] + 1) / 2, real=is_real)
    return float(fid.compute())
