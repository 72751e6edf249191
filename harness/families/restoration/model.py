"""The restoration skeleton shared by every variant; only the token mixers inside its layers change.

SwinIR / MambaIR / MambaIRv2 share one layout (Liang et al. arXiv 2108.10257; Guo et al. arXiv 2402.15648,
2411.15269), which this module follows:

    shallow 3x3 conv -> groups of layers, each group closed by a 3x3 conv and a residual
    -> LayerNorm -> 3x3 conv + long residual -> reconstruction
    reconstruction: 3x3 conv to 3*s^2 channels + pixel shuffle for SR (SwinIR-light's "pixelshuffledirect"),
    a 3x3 conv for denoising; the final conv starts at zero and its output is added to the bicubic-upsampled
    (SR) or noisy (denoising) input, so every variant starts exactly at the baseline and learns a residual
    (the published light SR models have no such image-level skip; it makes short CPU runs meaningful).

A layer is a list of residual sub-blocks ``x + mixer(LN(x))`` then ``x + gated_mlp(LN(x))`` (MambaIRv2's
gated MLP with a depthwise conv); with ``layer_scale_init`` each branch gets a learned per-channel scale as
in MambaIRv2. Inputs are reflect-padded to a multiple of the attention window when a layer has one (as
SwinIR/MambaIRv2 do) and the output is cropped back.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from timm.layers import LayerScale
from torch import nn

from harness.families.restoration.config import RestorationModelParams
from harness.families.restoration.data import bicubic
from harness.families.variants import VariantSpec
from harness.modules.registry import create_mixer

#: MambaIRv2's gated MLP uses a 5x5 depthwise conv on the gated half (reference code, ``GatedMLP``).
GATED_MLP_KERNEL = 5


class GatedConvMLP(nn.Module):
    """``fc2(a * GELU(dwconv(b)))`` with ``[a, b] = fc1(x)``: MambaIRv2's gated MLP on a raster grid.

    Hand-written because timm's ``GluMlp`` has no spatial conv and its ``ConvMlp`` works on NCHW maps
    without the gate; this one takes ``(B, L, C)`` tokens plus the grid shape like the mixers.
    """

    def __init__(self, dim: int, hidden: int, kernel_size: int = GATED_MLP_KERNEL):
        super().__init__()
        self.fc1 = nn.Linear(dim, 2 * hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        a, b = self.fc1(x).chunk(2, dim=-1)
        B, L, C = b.shape
        b = self.dwconv(b.transpose(1, 2).reshape(B, C, *shape)).reshape(B, C, L).transpose(1, 2)
        return self.fc2(a * self.act(b))


class SubBlock(nn.Module):
    """``x + ls(mixer(LN(x)))`` then, with ``mlp_ratio > 0``, ``x + ls(gated_mlp(LN(x)))``."""

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float, layer_scale_init: float | None):
        super().__init__()
        scale = (lambda: LayerScale(dim, layer_scale_init)) if layer_scale_init else nn.Identity
        self.norm1, self.mixer, self.ls1 = nn.LayerNorm(dim), mixer, scale()
        self.mlp = GatedConvMLP(dim, int(dim * mlp_ratio)) if mlp_ratio > 0 else None
        if self.mlp is not None:
            self.norm2, self.ls2 = nn.LayerNorm(dim), scale()

    def forward(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        x = x + self.ls1(self.mixer(self.norm1(x), shape=shape))
        if self.mlp is not None:
            x = x + self.ls2(self.mlp(self.norm2(x), shape))
        return x


class Layer(nn.Module):
    """One layer: its sub-blocks in order (MambaIRv2: window attention, then the ASSM)."""

    def __init__(self, blocks: list[SubBlock]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, shape)
        return x


class Group(nn.Module):
    """Layers then a 3x3 conv, with a residual around the group (SwinIR's RSTB, MambaIR's RSSG)."""

    def __init__(self, dim: int, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y, shape)
        B, L, C = y.shape
        return x + self.conv(y.transpose(1, 2).reshape(B, C, *shape)).reshape(B, C, L).transpose(1, 2)


#: ``make_mixers(layer_index)`` -> the token mixers of that layer, in order (one SubBlock each).
MixerFactory = Callable[[int], list[nn.Module]]


class RestorationNet(nn.Module):
    """Image -> image: (B, 3, h, w) -> (B, 3, h*scale, w*scale); ``scale=1`` is denoising."""

    def __init__(
        self,
        make_mixers: MixerFactory,
        embed_dim: int,
        depths: tuple[int, ...],
        scale: int,
        mlp_ratio: float,
        layer_scale_init: float | None = None,
        pad_multiple: int = 1,
        channels: int = 3,
    ):
        super().__init__()
        self.scale, self.pad_multiple = scale, pad_multiple
        self.conv_first = nn.Conv2d(channels, embed_dim, 3, padding=1)
        index = iter(range(sum(depths)))
        self.groups = nn.ModuleList(
            Group(embed_dim, [
                Layer([SubBlock(embed_dim, m, mlp_ratio, layer_scale_init) for m in make_mixers(next(index))])
                for _ in range(depth)
            ])
            for depth in depths
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.reconstruct = nn.Conv2d(embed_dim, channels * scale**2, 3, padding=1)
        self.upsample = nn.PixelShuffle(scale) if scale > 1 else nn.Identity()
        nn.init.zeros_(self.reconstruct.weight)
        nn.init.zeros_(self.reconstruct.bias)

    def baseline(self, x: torch.Tensor) -> torch.Tensor:
        """The image the network refines: bicubic upsampling (SR) or the input itself (denoising)."""
        return bicubic(x, self.scale) if self.scale > 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.pad_multiple
        padded = F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="reflect") if (h % m or w % m) else x
        shape = tuple(padded.shape[-2:])
        feat = self.conv_first(padded)
        B, C = feat.shape[:2]
        tokens = feat.flatten(2).transpose(1, 2)
        for group in self.groups:
            tokens = group(tokens, shape)
        body = self.norm(tokens).transpose(1, 2).reshape(B, C, *shape)
        feat = feat + self.conv_after_body(body)
        out = self.upsample(self.reconstruct(feat))[..., : h * self.scale, : w * self.scale]
        return out + self.baseline(x)


# -- which mixers fill a layer (each variant's entry of the family's table) ------------------------------


def window_options(m: RestorationModelParams, layer: int) -> dict[str, Any]:
    """Window attention of layer ``layer``: shifted by half a window on every other layer (Swin)."""
    return dict(n_heads=m.n_heads, window=m.window_size, shift=layer % 2 == 1, pos="relative")


def layer_mixers(spec: VariantSpec, m: RestorationModelParams, layer: int) -> list[nn.Module]:
    """The token mixers of layer ``layer`` (global index) for variant ``spec``, in order (and made in order:
    the initialisation draws from one RNG stream): ``attn_branch``'s window attention, then the variant's own."""
    mixers = [create_mixer("attention", m.embed_dim, **window_options(m, layer))] if m.attn_branch else []
    mixers.append(spec.build(m, layer) if spec.build is not None else create_mixer(spec.mixer, m.embed_dim, **spec.options(m, layer)))
    return mixers


def has_attention(spec: VariantSpec, m: RestorationModelParams) -> bool:
    return spec.mixer == "attention" or m.attn_branch
