"""The ``restoration`` family: does image restoration need MambaIRv2's attentive state-space scan?

Pairs MambaIRv2 (ASE + SGN, arXiv 2411.15269) against MambaIR's four-direction scan, SwinIR's window
attention and a MambaOut gated CNN, all in one restoration skeleton (``model.py``), on super-resolution
(x2, x3, x4) and Gaussian denoising. Quality follows the standard SR protocol (``metrics.py``): PSNR / SSIM on
the Y channel with a ``scale``-pixel border crop for SR, on RGB for denoising, next to the bicubic /
noisy-input baseline on the same test crops so each row shows the gain. The MambaIRv2 ablations (ASE
on/off, prompt into C/B/dt/y, SGN on/off, number of prompts, prompt rank, d_state) are model fields.

Restoration is not causal, and its sequences are long (an LR patch of 64x64 is 4096 tokens), which is
where MambaOut expects an SSM can pay off; rows record ``l_over_6d``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.families.base import DatasetSpec, Experiment, Family, MetricSpec, Params, RunContext, TinyConfig
from harness.families.restoration.assm import ASSM
from harness.families.restoration.config import FolderData, PhotoData, RestorationData, RestorationModelParams
from harness.families.restoration.data import Batch, RestorationSet, check_folders
from harness.families.restoration.metrics import psnr_ssim
from harness.families.restoration.model import RestorationNet, has_attention, layer_mixers, window_options
from harness.families.variants import MixerSlot, VariantSpec, VariantTable

_EXAMPLE_SEED = 0  # example inputs are random images; their values do not change any cost

# The variants: each layer's main mixer, from the params and the layer's global index (``model.layer_mixers``
# puts ``attn_branch``'s window attention in front of it). Window attention shifts by half a window on every
# other layer (Swin), so swinir's own attention, behind a branch, takes the next layer's shift. Every
# variant keeps the same gated MLP after each mixer unless ``mlp_ratio: 0``.
# - ``mambairv2`` (arXiv 2411.15269): window attention then the ASSM (ASE scan + SGN), like the light model;
#   ``attn_branch: false`` drops the attention to isolate the ASSM.
# - ``mambair`` (arXiv 2402.15648): the ``mamba`` mixer scanning four directions (``scan: cross4``, centred
#   short conv as the image is not causal), no prompt, no sorting; ``attn_branch: true`` adds MambaIRv2's
#   window attention in front ("the same layer" with the v1 scan) for a one-factor comparison.
# - ``swinir`` (arXiv 2108.10257): shifted-window self-attention with relative position bias only.
# - ``gated_cnn`` (MambaOut, arXiv 2405.07992): the ``gated_cnn`` mixer (7x7 depthwise, 8/3 expansion);
#   ``attn_branch: true`` keeps MambaIRv2's window attention in front, so only the SSM differs from
#   mambairv2 (the suites' ``gated_cnn_attn``).
VARIANTS = VariantTable(
    VariantSpec("mambairv2", ssm=True, defaults={"attn_branch": True}, build=lambda m, layer: ASSM(
        m.embed_dim, d_state=m.d_state, expand=m.expand, num_prompts=m.num_prompts, prompt_rank=m.prompt_rank,
        ase=m.ase, prompt_into=m.prompt_into, sgn=m.sgn, impl=m.impl)),
    VariantSpec("mambair", mixer="mamba", options=lambda m, layer: dict(
        d_state=m.d_state, expand=m.expand, scan="cross4", causal=False, impl=m.impl)),
    VariantSpec("swinir", mixer="attention", options=lambda m, layer: window_options(m, layer + m.attn_branch)),
    VariantSpec("gated_cnn", mixer="gated_cnn"),
    slot=MixerSlot(causal=False),  # a plugin's mixer in each layer (after the attention branch, if on)
)


def build_net(use: str, m: RestorationModelParams, data: RestorationData) -> RestorationNet:
    spec = VARIANTS[use]
    return RestorationNet(
        lambda layer: layer_mixers(spec, m, layer),
        embed_dim=m.embed_dim, depths=m.depths, scale=data.scale, mlp_ratio=m.mlp_ratio,
        layer_scale_init=m.layer_scale_init, pad_multiple=m.window_size if has_attention(spec, m) else 1,
    )


def input_side(data: RestorationData) -> int:
    """Side of the network input for a ``patch_size`` HR crop (the LR side for SR)."""
    return data.patch_size // data.scale


def example_images(data: RestorationData, batch_size: int) -> tuple[torch.Tensor]:
    side = input_side(data)
    gen = torch.Generator().manual_seed(_EXAMPLE_SEED)
    return (torch.rand(batch_size, 3, side, side, generator=gen),)


class RestorationExperiment(Experiment):
    def __init__(self, ctx: RunContext, model: RestorationNet, data: RestorationSet):
        super().__init__(ctx, model, data)
        self.params: RestorationData = ctx.data

    def train_batch(self, step: int) -> Batch:
        return self.data.train_batch(step, self.ctx.train_batch_size).to(self.ctx.device)

    def loss(self, batch: Batch) -> torch.Tensor:
        """L1, as SwinIR / MambaIR / MambaIRv2 train their SR and denoising models."""
        return F.l1_loss(self.model(batch.inputs), batch.target)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        sr = self.params.scale > 1
        scores: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "baseline": []}
        for batch in self.data.test_batches(self.ctx.eval_batch_size):
            batch = batch.to(self.ctx.device)
            pred = self.model(batch.inputs).float()
            psnr, ssim = psnr_ssim(pred, batch.target, y_channel=sr, border=self.params.scale if sr else 0)
            base, _ = psnr_ssim(self.model.baseline(batch.inputs), batch.target, y_channel=sr, border=self.params.scale if sr else 0)
            scores["psnr"].append(psnr), scores["ssim"].append(ssim), scores["baseline"].append(base)
        psnr, ssim, base = (float(torch.cat(scores[k]).mean()) for k in ("psnr", "ssim", "baseline"))
        return {
            "psnr": psnr,
            "ssim": ssim,
            "psnr_bicubic": base if sr else math.nan,
            "psnr_noisy": math.nan if sr else base,
            "psnr_gain": psnr - base,
        }

    def row_extras(self) -> dict[str, Any]:
        m: RestorationModelParams = self.ctx.model
        side = input_side(self.params)
        pad = self.model.pad_multiple
        seq_len = (side + (-side) % pad) ** 2  # tokens each mixer sees at the measured input size
        return {
            "seq_len": seq_len,
            "d_model": m.embed_dim,
            "degradation": self.params.degradation,
            "scale": self.params.scale,
            "sigma": self.params.sigma if self.params.scale == 1 else math.nan,
            "patch_size": self.params.patch_size,
            "input_size": side,
            "n_layers": sum(m.depths),
            "attn_branch": has_attention(VARIANTS[self.ctx.use], m),
        }


class RestorationFamily(Family):
    name = "restoration"
    description = "image super-resolution and denoising: MambaIRv2 (ASE + SGN) vs MambaIR vs SwinIR vs gated CNN"
    ModelParams = RestorationModelParams
    datasets = {
        "skimage_photos": DatasetSpec(PhotoData, "scikit-image's bundled photographs, split by image (bicubic SR / Gaussian noise)"),
        "paired_folders": DatasetSpec(FolderData, "HR/LR pairs from a user path: DIV2K as shipped, BasicSR's GTmod12/LRbicx<s>, MambaIR's HR/LR_bicubic/X<s>"),
    }
    variants = VARIANTS
    metrics = {
        "psnr": MetricSpec(higher_is_better=True, unit="dB", primary=True),
        "ssim": MetricSpec(higher_is_better=True),
        "psnr_bicubic": MetricSpec(higher_is_better=True, unit="dB"),
        "psnr_noisy": MetricSpec(higher_is_better=True, unit="dB"),
        "psnr_gain": MetricSpec(higher_is_better=True, unit="dB"),
    }
    causal = False
    width_field = "embed_dim"
    width_multiple = 4  # keeps embed_dim a multiple of the default 4 attention heads

    experiment_class = RestorationExperiment
    tiny = TinyConfig("skimage_photos", {"patch_size": 16, "eval_size": 32, "eval_crops": 1},
                      {"embed_dim": 12, "depths": [1], "window_size": 4, "d_state": 4, "num_prompts": 8, "prompt_rank": 4})

    def check_data(self, dataset: str, data: Params) -> None:
        if isinstance(data, FolderData):
            check_folders(data)

    def load_data(self, ctx: RunContext) -> RestorationSet:
        return RestorationSet(ctx.data, ctx.seed)

    def build_model(self, ctx: RunContext, data: Any = None) -> nn.Module:
        return build_net(ctx.use, ctx.model, ctx.data)

    def example_inputs(self, ctx: RunContext, batch_size: int, data: Any = None) -> tuple[torch.Tensor, ...]:
        return example_images(ctx.data, batch_size)  # random images: their values change no cost
