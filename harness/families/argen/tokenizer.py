"""Stage 1: the VQ tokenizer that turns an image into a raster sequence of discrete codes (AiM §3.1).

The network follows LlamaGen's ``VQModel`` (arXiv 2406.06525, ``tokenizer/tokenizer_image/vq_model.py``)
module for module and key for key — encoder/decoder of GroupNorm resnet blocks with one self-attention
level, ``quant_conv``/``post_quant_conv``, and an L2-normalised straight-through codebook — so the same
class trains a tiny tokenizer on the task's images *or* loads a LlamaGen VQ-8 / VQ-16 checkpoint
(``tokenizer.checkpoint``: a released one, or a ``vq_train.py`` training checkpoint, its EMA weights first as
LlamaGen's demo takes them; read by torch's weights-only unpickler, ``argparse.Namespace`` the one class allowed). Written here rather than imported because LlamaGen is not a pip package.

Training uses the shared loop (handed in as ``RunContext.fit``) with reconstruction MSE + codebook + commitment
losses (LlamaGen adds perceptual and GAN losses for photographs; unnecessary at digit scale). The trained
weights are cached under ``ctx.cache_dir`` keyed by the data + tokenizer config, so every AR variant and
seed of a task shares one tokenizer.
"""

from __future__ import annotations

import argparse
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import DataError
from harness.families.argen.config import ImageDataParams, VQParams
from harness.families.argen.data import IMAGE_SET_VERSION, ImageSet, step_generator
from harness.families.base import Experiment
from harness.families.cache import config_key, isolated_rng, load_or_build

# LlamaGen's VQ_8 and VQ_16 (``tokenizer/tokenizer_image/vq_model.py``): ``ModelArgs`` defaults, the encoder /
# decoder ``ch_mult`` telling them apart; the codebook's size and width are read from a checkpoint.
LLAMAGEN_VQ = {
    8: dict(channels=128, ch_mult=(1, 2, 2, 4), num_res_blocks=2, z_channels=256, norm_groups=32),
    16: dict(channels=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, z_channels=256, norm_groups=32),
}
LLAMAGEN_CODEBOOK = dict(codebook_size=16384, codebook_dim=8)  # ModelArgs' defaults, for a model built without a file
LLAMAGEN_EXTRA_KEYS = ("quantize.codebook_used",)  # a training-time usage buffer we do not keep
#: where a checkpoint keeps its weights, in the order LlamaGen's vq_demo.py looks (EMA weights first); vq_train.py
#: saves {"model", "optimizer", "discriminator", "optimizer_disc", "steps", "args", and "ema" with --ema}
WEIGHT_KEYS = ("ema", "model", "state_dict")
USAGE_DECAY = 0.9  # running code usage over roughly the last 10 training batches
DEAD_USAGE = 0.03  # a code used less than 3% of its uniform share is restarted


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels of the lowest-resolution feature map."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).flatten(2).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # LlamaGen's asymmetric padding


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level(blocks: list[ResnetBlock], attn: bool, c: int, groups: int) -> nn.Module:
    level = nn.Module()
    level.res = nn.ModuleList(blocks)
    level.attn = nn.ModuleList([AttnBlock(c, groups) for _ in blocks] if attn else [])
    return level


class Encoder(nn.Module):
    def __init__(self, channels: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int, groups: int):
        super().__init__()
        self.conv_in = nn.Conv2d(3, channels, 3, padding=1)
        self.conv_blocks = nn.ModuleList()
        cin = channels
        for i, mult in enumerate(ch_mult):
            cout = channels * mult
            blocks = [ResnetBlock(cin if j == 0 else cout, cout, groups) for j in range(num_res_blocks)]
            last = i == len(ch_mult) - 1
            level = _level(blocks, attn=last, c=cout, groups=groups)
            if not last:
                level.downsample = Downsample(cout)
            self.conv_blocks.append(level)
            cin = cout
        self.mid = nn.ModuleList([ResnetBlock(cin, cin, groups), AttnBlock(cin, groups), ResnetBlock(cin, cin, groups)])
        self.norm_out = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv_out = nn.Conv2d(cin, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = _run_level(level, h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def _run_level(level: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """One resolution level: its resnet blocks, each followed by its attention block when the level has them."""
    for j, res in enumerate(level.res):
        h = res(h)
        if len(level.attn):
            h = level.attn[j](h)
    return h


class Decoder(nn.Module):
    def __init__(self, channels: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int, groups: int):
        super().__init__()
        cin = channels * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, cin, 3, padding=1)
        self.mid = nn.ModuleList([ResnetBlock(cin, cin, groups), AttnBlock(cin, groups), ResnetBlock(cin, cin, groups)])
        self.conv_blocks = nn.ModuleList()
        for i in reversed(range(len(ch_mult))):
            cout = channels * ch_mult[i]
            blocks = [ResnetBlock(cin if j == 0 else cout, cout, groups) for j in range(num_res_blocks + 1)]
            level = _level(blocks, attn=i == len(ch_mult) - 1, c=cout, groups=groups)
            if i != 0:
                level.upsample = Upsample(cout)
            self.conv_blocks.append(level)
            cin = cout
        self.norm_out = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv_out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for level in self.conv_blocks:
            h = _run_level(level, h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest L2-normalised code, straight-through gradient, codebook + beta * commitment loss."""

    def __init__(self, codebook_size: int, dim: int, beta: float):
        super().__init__()
        self.beta = beta
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.last_batch: tuple[torch.Tensor, torch.Tensor] | None = None  # (normalised z, codes) for restarts

    def codebook(self) -> torch.Tensor:
        return F.normalize(self.embedding.weight, dim=-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z: (B, C, h, w)`` -> (quantised z, codes ``(B, h, w)``, codebook + commitment loss)."""
        z = F.normalize(z.permute(0, 2, 3, 1), dim=-1)
        codes = torch.cdist(z.flatten(0, 2).float(), self.codebook().float()).argmin(-1).view(z.shape[:-1])
        zq = self.codebook()[codes]
        if self.training:
            self.last_batch = (z.detach().flatten(0, 2), codes.flatten())
        loss = F.mse_loss(zq, z.detach()) + self.beta * F.mse_loss(zq.detach(), z)
        zq = z + (zq - z).detach()
        return zq.permute(0, 3, 1, 2), codes, loss


class VQModel(nn.Module):
    """LlamaGen's ``VQModel`` (same submodule names, so its checkpoints load)."""

    def __init__(self, channels: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int,
                 norm_groups: int, codebook_size: int, codebook_dim: int, commit_beta: float = 0.25):
        super().__init__()
        self.downsample = 2 ** (len(ch_mult) - 1)
        self.codebook_size = codebook_size
        self.encoder = Encoder(channels, ch_mult, num_res_blocks, z_channels, norm_groups)
        self.decoder = Decoder(channels, ch_mult, num_res_blocks, z_channels, norm_groups)
        self.quantize = VectorQuantizer(codebook_size, codebook_dim, commit_beta)
        self.quant_conv = nn.Conv2d(z_channels, codebook_dim, 1)
        self.post_quant_conv = nn.Conv2d(codebook_dim, z_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction and the quantiser's loss."""
        zq, _, vq_loss = self.quantize(self.quant_conv(self.encoder(x)))
        return self.decoder(self.post_quant_conv(zq)), vq_loss

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, R, R)`` -> raster-ordered codes ``(B, (R/ds)^2)``."""
        return self.quantize(self.quant_conv(self.encoder(x)))[1].flatten(1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Raster codes ``(B, h*w)`` (square grid) -> images ``(B, 3, R, R)`` in about ``[-1, 1]``."""
        side = math.isqrt(codes.shape[1])
        zq = self.quantize.codebook()[codes].view(codes.shape[0], side, side, -1).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(zq))


def build_vq(p: VQParams) -> VQModel:
    if p.checkpoint is not None:
        ckpt = llamagen_checkpoint(p.checkpoint)
        return VQModel(**LLAMAGEN_VQ[ckpt.downsample], codebook_size=ckpt.codebook_size, codebook_dim=ckpt.codebook_dim,
                       commit_beta=p.commit_beta)
    return VQModel(p.channels, p.ch_mult, p.num_res_blocks, p.z_channels, p.norm_groups,
                   p.codebook_size, p.codebook_dim, p.commit_beta)


def token_grid(p: VQParams, resolution: int) -> tuple[int, int]:
    """``(tokens per image, vocabulary size)`` without building anything (for budget matching)."""
    if p.checkpoint is not None:
        ckpt = llamagen_checkpoint(p.checkpoint)
        ds, vocab = ckpt.downsample, ckpt.codebook_size
    else:
        ds, vocab = p.downsample, p.codebook_size
    if resolution % ds:
        source = f"the checkpoint's VQ-{ds}" if p.checkpoint is not None else "tokenizer.downsample"
        below = max(ds, resolution // ds * ds)
        raise DataError(f"data.resolution={resolution} is not a multiple of {source} downsample factor {ds}; use a "
                        f"multiple of {ds} (e.g. {below} or {below + ds})", ("resolution",))
    return (resolution // ds) ** 2, vocab


LAYOUT = ("a LlamaGen VQ checkpoint: a released vq_ds16_c2i.pt / vq_ds8_c2i.pt ({'model': state dict}), a "
          "vq_train.py checkpoint ({'model', 'ema', 'optimizer', ..., 'args'}) or a bare state dict, holding the "
          "VQModel's encoder.*, decoder.*, quantize.embedding.weight, quant_conv.*, post_quant_conv.*")


@dataclass(frozen=True)
class LlamaGenCheckpoint:
    """What a LlamaGen VQ checkpoint holds: its VQ-8 or VQ-16 architecture, codebook, and which weights."""

    downsample: int
    codebook_size: int
    codebook_dim: int
    weights: str  # the entry the weights came from (ema, model, state_dict) or "state dict" for a bare one


def _read_checkpoint(file: Path, mmap: bool) -> dict[str, Any]:
    """The checkpoint's dict, unpickled by torch's weights-only unpickler with one class allowed besides tensors
    and containers: ``argparse.Namespace`` (vq_train.py's ``args``). Nothing else is ever constructed."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                obj = torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as exc:
                if not mmap or "mmap" not in str(exc):
                    raise
                obj = torch.load(file, map_location="cpu", weights_only=True)  # a legacy (non-zip) file cannot be mapped
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        why = (f"it holds a pickled {refused.group(1)}, which is never unpickled: only tensors, containers and "
               "argparse.Namespace are read" if refused else (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300])
        raise DataError(f"tokenizer.checkpoint {str(file)!r} is not a readable torch checkpoint ({why}); expected {LAYOUT}",
                        ("tokenizer", "checkpoint")) from None
    if not isinstance(obj, dict):
        raise DataError(f"tokenizer.checkpoint {str(file)!r} holds a {type(obj).__name__}; expected {LAYOUT}", ("tokenizer", "checkpoint"))
    return obj


def _weights(obj: dict[str, Any], file: Path) -> tuple[dict[str, torch.Tensor], str]:
    for key in WEIGHT_KEYS:
        if isinstance(obj.get(key), dict):
            return obj[key], key
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, "state dict"
    raise DataError(f"tokenizer.checkpoint {str(file)!r} holds keys {sorted(obj)[:8]} but no weights under "
                    f"{', '.join(repr(k) for k in WEIGHT_KEYS)}; expected {LAYOUT}", ("tokenizer", "checkpoint"))


@functools.lru_cache(maxsize=16)
def _describe(file: Path, stamp: tuple[int, int]) -> LlamaGenCheckpoint:
    obj = _read_checkpoint(file, mmap=True)  # memory-mapped: only the few tensors looked at are read
    state, source = _weights(obj, file)
    levels = {int(k.split(".")[2]) for k in state if k.startswith("encoder.conv_blocks.")}
    downsample = 2 ** (len(levels) - 1) if levels else 0
    codebook = state.get("quantize.embedding.weight")
    if downsample not in LLAMAGEN_VQ or not isinstance(codebook, torch.Tensor) or codebook.ndim != 2:
        raise DataError(f"tokenizer.checkpoint {str(file)!r} is neither LlamaGen's VQ-8 nor VQ-16 ({len(levels)} encoder "
                        f"levels, quantize.embedding.weight {tuple(codebook.shape) if isinstance(codebook, torch.Tensor) else 'missing'}); "
                        f"expected {LAYOUT}", ("tokenizer", "checkpoint"))
    return LlamaGenCheckpoint(downsample, codebook.shape[0], codebook.shape[1], source)


def llamagen_checkpoint(path: str) -> LlamaGenCheckpoint:
    """The checkpoint's architecture and weights entry, read once per file version (memory-mapped)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"tokenizer.checkpoint {str(file)!r} does not exist; expected {LAYOUT}", ("tokenizer", "checkpoint"))
    stat = file.stat()
    return _describe(file, (stat.st_mtime_ns, stat.st_size))


def load_llamagen_vq(path: str, p: VQParams) -> VQModel:
    """A LlamaGen VQ-8 or VQ-16 model with the checkpoint's weights (its EMA weights when it has them)."""
    ckpt = llamagen_checkpoint(path)
    file = Path(path).expanduser()
    state, _ = _weights(_read_checkpoint(file, mmap=False), file)
    model = build_vq(p)
    state = {k: v for k, v in state.items() if k not in LLAMAGEN_EXTRA_KEYS}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise DataError(f"tokenizer.checkpoint {str(file)!r} does not fit LlamaGen VQ-{ckpt.downsample}: {exc}",
                        ("tokenizer", "checkpoint")) from None
    if missing or unexpected:
        raise DataError(
            f"tokenizer.checkpoint {str(file)!r} is not {LAYOUT}: missing keys {sorted(missing)[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {sorted(unexpected)[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}", ("tokenizer", "checkpoint"))
    return model


class VQTraining(Experiment):
    """The tokenizer as an ``Experiment``, so stage 1 trains through the same loop as everything else."""

    def __init__(self, model: VQModel, images: ImageSet, p: VQParams, device: torch.device):
        self.model, self.images, self.p, self.device = model.to(device), images, p, device
        self.usage: torch.Tensor | None = None  # running share of each code in training batches

    def after_step(self, step: int) -> dict[str, float]:
        """Restart dead codes on random encoder outputs of the batch (Jukebox, arXiv 2005.00341): a small
        L2-normalised codebook otherwise collapses onto a few codes. A code is dead when its running
        usage falls below ``DEAD_USAGE`` of the uniform share."""
        z, codes = self.model.quantize.last_batch
        k = self.model.codebook_size
        share = torch.bincount(codes, minlength=k).float() / len(codes)
        self.usage = share if self.usage is None else USAGE_DECAY * self.usage + (1 - USAGE_DECAY) * share
        dead = (self.usage < DEAD_USAGE / k).nonzero().flatten()
        if len(dead):
            g = step_generator(self.p.seed, step)
            pick = torch.randint(len(z), (len(dead),), generator=g).to(z.device)
            with torch.no_grad():
                self.model.quantize.embedding.weight[dead] = z[pick].to(self.model.quantize.embedding.weight.dtype)
            self.usage[dead] = 1.0 / k
        return {"vq_restarted_codes": float(len(dead))}

    def train_batch(self, step: int) -> torch.Tensor:
        g = step_generator(self.p.seed, step)
        idx = torch.randint(len(self.images.train_images), (self.p.batch_size,), generator=g)
        return self.images.train_images[idx].to(self.device)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        recon, vq_loss = self.model(batch)
        return F.mse_loss(recon.float(), batch) + vq_loss

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        x = self.images.test_images.to(self.device)
        codes = self.model.encode(x)
        recon = self.model.decode(codes)
        usage = codes.unique().numel() / self.model.codebook_size
        return {"vq_recon_mse": float(F.mse_loss(recon, x)), "vq_codebook_usage": float(usage)}


def get_tokenizer(dataset: str, data: ImageDataParams, images: ImageSet, cache_dir: Path,
                  device: torch.device, fit: Callable[..., Any]) -> tuple[VQModel, dict[str, Any]]:
    """The task's tokenizer (eval mode, frozen) and its columns: from a checkpoint, the cache, or trained now
    by ``fit`` (the spine's loop, ``RunContext.fit``)."""
    p = data.tokenizer
    if p.checkpoint is not None:
        model = load_llamagen_vq(p.checkpoint, p).to(device).eval().requires_grad_(False)
        info = VQTraining(model, images, p, device).evaluate()
        ckpt = llamagen_checkpoint(p.checkpoint)
        return model, {**info, "vq_source": "checkpoint", "vq_cached": False, "vq_model": f"VQ-{ckpt.downsample}",
                       "vq_weights": ckpt.weights}

    key = config_key({"dataset": dataset, "images": IMAGE_SET_VERSION[dataset],
                      "data": data.model_dump(exclude={"tokenizer", "classifier", "inception_weights"}),
                      "tokenizer": p.model_dump(), "kind": "llamagen-vq"})

    def build() -> dict[str, Any]:
        with isolated_rng(device):
            torch.manual_seed(p.seed)
            exp = VQTraining(build_vq(p), images, p, device)
            fit(exp, device, steps=p.steps, batch_size=p.batch_size, lr=p.lr, warmup_steps=p.steps // 10)
            metrics = exp.evaluate()
        return {"state_dict": {k: v.cpu() for k, v in exp.model.state_dict().items()}, "metrics": metrics}

    artefact, cached = load_or_build(cache_dir / "argen" / f"vq-{key}.pt", build)
    model = build_vq(p)
    model.load_state_dict(artefact["state_dict"])
    model = model.to(device).eval().requires_grad_(False)
    return model, {**artefact["metrics"], "vq_source": "trained", "vq_cached": cached}
