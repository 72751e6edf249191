"""The ``argen`` family: class-conditional AR image generation over VQ codes, AiM vs Transformer vs Gated CNN.

Reproduces the setting of AiM (Li et al., arXiv 2408.12245) at small scale: a shared VQ tokenizer
(``tokenizer.py``), next-token models that differ only by mixer (``model.py``), and the quantities AiM
argues on — NLL, sample quality, and decode speed/memory with each model's native incremental state
(Mamba2 recurrence: constant memory per token; attention: a KV cache growing with length).

Decode costs (``extra_measurements``, through the spine's measurer) per batch ``b`` in
``model.decode_batch_sizes``: ``prefill_ms_b{b}`` (one parallel pass over a ``decode_len``-token prompt),
``decode_ms_per_token_b{b}`` and ``decode_tokens_per_s_b{b}`` (token-by-token generation of ``decode_len``
codes, no CFG, so the batch is exactly ``b``), ``peak_mem_mb_decode_b{b}`` and ``decode_status_b{b}``
(``oom`` is recorded, not raised). All run under the measurer's protocol and precision (bf16 on CUDA). ``model.decode_len`` larger than
the task's token count is timed on an untrained model of the same architecture (speed does not depend on
the weights), which is how a GPU sweep over 256/1024/4096 tokens is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from harness.families.argen.classifier import Classifier, get_classifier
from harness.families.argen.config import ARModelParams, DigitsParams, ImageDataParams, TexturesParams
from harness.families.argen.data import NUM_CLASSES, ImageSet, load_images, step_generator
from harness.families.argen.metrics import (
    frechet_distance,
    generate_per_class,
    inception_fid,
    nll_bits_per_token,
)
from harness.families.argen.model import VARIANTS, ARModel
from harness.families.argen.tokenizer import VQModel, get_tokenizer, token_grid
from harness.families.base import DatasetSpec, Experiment, Family, MetricSpec, RunContext, TinyConfig


def _encode(tokenizer: VQModel, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    return torch.cat([tokenizer.encode(images[i : i + batch_size].to(device)) for i in range(0, len(images), batch_size)])


@dataclass(frozen=True)
class ARGenData:
    """A task's images, its tokenizer and scoring classifier (frozen, on the device), the images as codes,
    and the tokenizer's / classifier's columns."""

    images: ImageSet
    tokenizer: VQModel
    classifier: Classifier
    train_codes: torch.Tensor
    test_codes: torch.Tensor
    train_labels: torch.Tensor
    test_labels: torch.Tensor
    info: dict[str, Any]


class ARGenExperiment(Experiment):
    def __init__(self, ctx: RunContext, model: ARModel, data: ARGenData):
        super().__init__(ctx, model, data)
        self.p = ctx.model
        self.tokenizer, self.classifier, self.images, self.info = data.tokenizer, data.classifier, data.images, data.info
        self.train_codes, self.test_codes = data.train_codes, data.test_codes
        self.train_labels, self.test_labels = data.train_labels, data.test_labels

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random codes + labels; each label is replaced by the null label with prob ``label_drop`` (CFG)."""
        g = step_generator(self.ctx.seed, step)
        idx = torch.randint(len(self.train_codes), (self.ctx.train_batch_size,), generator=g)
        drop = torch.rand(len(idx), generator=g) < self.p.label_drop
        labels = self.train_labels[idx.to(self.ctx.device)]
        labels = torch.where(drop.to(self.ctx.device), torch.full_like(labels, self.model.null_label), labels)
        return self.train_codes[idx.to(self.ctx.device)], labels

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        codes, labels = batch
        return F.cross_entropy(self.model(codes, labels).flatten(0, 1).float(), codes.flatten())

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        bs = self.ctx.eval_batch_size
        out = {"nll_bits_per_token": nll_bits_per_token(self.model, self.test_codes, self.test_labels, bs)}
        codes, labels = generate_per_class(self.model, self.images.num_classes, self.p.samples_per_class, bs,
                                           self.ctx.seed, self.p.cfg_scale, self.p.temperature, self.p.top_k)
        fake = torch.cat([self.tokenizer.decode(codes[i : i + bs]) for i in range(0, len(codes), bs)]).clamp(-1, 1)
        real = self.images.test_images.to(self.ctx.device)
        out["sample_acc"] = float((self.classifier(fake).argmax(-1) == labels).float().mean())
        out["fid_classifier"] = frechet_distance(self.classifier.features, real, fake, bs)
        weights = self.ctx.data.inception_weights
        if weights is not None:
            out["fid_inception"] = inception_fid(weights, real, fake, bs)
        return out

    def row_extras(self) -> dict[str, Any]:
        seq_len, d = self.model.seq_len, self.p.d_model
        return {
            "seq_len": seq_len,
            "d_model": d,
            "depth": self.p.depth,
            "vocab": self.model.vocab,
            "adaln_groups": self.p.adaln_groups,
            "pos": self.p.pos,
            "cfg_scale": self.p.cfg_scale,
            **self.info,
        }

    def extra_measurements(self, measurer: Any) -> dict[str, Any]:
        length = self.p.decode_len or self.model.seq_len
        model = self.model
        if length > model.seq_len:  # same architecture, untrained, sized for the longer sequence
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.ctx.seed)
                model = ARModel(self.ctx.use, self.p, model.vocab, model.num_classes, length)
            model = model.to(self.ctx.device)
        model.eval()
        out: dict[str, Any] = {"decode_len": length}
        g = torch.Generator().manual_seed(self.ctx.seed)
        for b in self.p.decode_batch_sizes:
            labels = (torch.arange(b) % model.num_classes).to(self.ctx.device)
            prompt = torch.randint(model.vocab, (b, length), generator=g).to(self.ctx.device)
            gen = torch.Generator(device=self.ctx.device).manual_seed(self.ctx.seed)
            prefill = lambda: model(prompt, labels)  # noqa: E731
            decode = lambda: model.generate(labels, length, generator=gen)  # noqa: E731
            memory = measurer.memory(decode, inference=True)  # an OOM here is a result, not a crash
            out[f"peak_mem_mb_decode_b{b}"] = memory.peak_mb
            out[f"decode_status_b{b}"] = memory.status
            if memory.status != "ok" or not measurer.cfg.latency:
                continue
            decode_ms = measurer.time(decode, inference=True).p50_ms
            out[f"prefill_ms_b{b}"] = measurer.time(prefill, inference=True).p50_ms
            out[f"decode_ms_per_token_b{b}"] = decode_ms / length
            out[f"decode_tokens_per_s_b{b}"] = b * length / (decode_ms / 1e3)
        return out


class ARGenFamily(Family):
    name = "argen"
    description = "class-conditional AR image generation over VQ codes (AiM): Mamba2 vs Transformer vs Gated CNN"
    ModelParams = ARModelParams
    datasets = {
        "digits": DatasetSpec(DigitsParams, "scikit-learn 8x8 digits upsampled, 10 classes (built in)"),
        "textures": DatasetSpec(TexturesParams, "crops of scikit-image's bundled photos/textures, 8 classes (built in)"),
    }
    variants = VARIANTS
    experiment_class = ARGenExperiment
    tiny = TinyConfig("digits", {"resolution": 8, "tokenizer": {"steps": 4, "batch_size": 16, "channels": 8, "z_channels": 8,
                                                               "codebook_size": 16},
                                 "classifier": {"steps": 4, "width": 8}},
                      {"d_model": 32, "depth": 2, "headdim": 8, "d_state": 8, "n_heads": 2, "samples_per_class": 2,
                       "decode_batch_sizes": [1]})
    metrics = {
        "nll_bits_per_token": MetricSpec(higher_is_better=False, unit="bits", primary=True),
        "fid_classifier": MetricSpec(higher_is_better=False),
        "sample_acc": MetricSpec(higher_is_better=True),
        "fid_inception": MetricSpec(higher_is_better=False),
    }
    columns = {"prefill_ms_b*": MetricSpec(False, "ms"), "decode_ms_per_token_b*": MetricSpec(False, "ms"),
               "decode_tokens_per_s_b*": MetricSpec(True, "tokens/s"), "peak_mem_mb_decode_b*": MetricSpec(False, "MB")}
    causal = True
    width_field = "d_model"
    # budget matching solves d_model in steps of 4 (fine enough to land within a few % at d_model ~ 64),
    # or coarser for a mamba2 variant (aim), which must split expand * d_model into heads of headdim
    # (width_step); the other variants keep the fine step, or a 1.2M-parameter Gated CNN misses its budget by 6%
    width_multiple = 4

    def width_step(self, use: str, model: ARModelParams) -> int:  # type: ignore[override]
        if VARIANTS[use].mixer != "mamba2":
            return self.width_multiple
        heads = model.headdim // math.gcd(model.headdim, model.expand)  # expand * d % headdim == 0
        return math.lcm(self.width_multiple, heads)

    @staticmethod
    def _shape(ctx: RunContext) -> tuple[int, int, int]:
        data: ImageDataParams = ctx.data  # type: ignore[assignment]
        seq_len, vocab = token_grid(data.tokenizer, data.resolution)
        return seq_len, vocab, NUM_CLASSES[ctx.dataset]

    def check_data(self, dataset: str, data: ImageDataParams) -> None:  # type: ignore[override]
        token_grid(data.tokenizer, data.resolution)  # a checkpoint is read (memory-mapped) and must fit the resolution

    def load_data(self, ctx: RunContext) -> ARGenData:
        """The images, the tokenizer and classifier (cached, or trained by ``ctx.fit``), the codes."""
        data: ImageDataParams = ctx.data  # type: ignore[assignment]
        token_grid(data.tokenizer, data.resolution)  # before any image meets the tokenizer
        images = load_images(ctx.dataset, data)
        tokenizer, vq_info = get_tokenizer(ctx.dataset, data, images, ctx.cache_dir, ctx.device, ctx.fit)
        classifier, cls_info = get_classifier(ctx.dataset, data, images, ctx.cache_dir, ctx.device, ctx.fit)
        device, bs = ctx.device, ctx.eval_batch_size
        return ARGenData(images, tokenizer, classifier, _encode(tokenizer, images.train_images, bs, device),
                         _encode(tokenizer, images.test_images, bs, device), images.train_labels.to(device),
                         images.test_labels.to(device), {**vq_info, **cls_info})

    def build_model(self, ctx: RunContext, data: Any = None) -> ARModel:
        seq_len, vocab, num_classes = self._shape(ctx)
        return ARModel(ctx.use, ctx.model, vocab, num_classes, seq_len)  # type: ignore[arg-type]

    def example_inputs(self, ctx: RunContext, batch_size: int, data: ARGenData | None = None) -> tuple[torch.Tensor, ...]:
        if data is not None:  # test codes and their labels, cycled
            idx = torch.arange(batch_size, device=data.test_codes.device) % len(data.test_codes)
            return data.test_codes[idx], data.test_labels[idx]
        seq_len, vocab, num_classes = self._shape(ctx)
        g = torch.Generator().manual_seed(ctx.seed)
        return torch.randint(vocab, (batch_size, seq_len), generator=g), torch.arange(batch_size) % num_classes
