"""One vision backbone whose token mixer is a name: MambaOut's layout with Mamba, attention or Gated CNN blocks.

MambaOut (Yu & Wang, arXiv 2405.07992) asks whether vision needs Mamba's SSM. To pair the variants fairly,
everything but the token mixer is shared: timm's MambaOut stem (two stride-2 3x3 convs), its stride-2 conv
downsampling between stages, the channels-last ``(B, H, W, C)`` layout and the stage depths/widths of
timm's ``mambaout_*`` sizes (``MAMBAOUT_SIZES``). The blocks differ:

- ``gated_cnn``: timm's ``MambaOutStage`` of ``GatedConvBlock`` s, i.e. MambaOut itself (reused, not copied).
- any other registered mixer (``mamba``, ``mamba2``, ``attention``): ``harness.modules.block.MixerBlock`` =
  norm -> mixer(x flattened to ``(B, H*W, C)``, ``shape=(H, W)``) -> residual (-> optional MLP), so
  Mamba's block is "the Gated CNN block with the SSM restored" as in the paper's Figure 1.

``layout="isotropic"`` is the ViT / Vim arrangement: a ``patch_size`` patch embedding then one stage of
``sum(depths)`` blocks at width ``dims[0]`` (no downsampling, no absolute positions: the mixers carry
position, so any resolution runs).

Like timm backbones it exposes ``feature_info`` (channels and reduction per stage), ``forward_features``
(last stage, NHWC) and ``forward_intermediates`` (every stage, NCHW) so dense heads reuse it unchanged, and
``token_stats(h, w)`` gives each stage's token count and width for MambaOut's L/(6D) criterion.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm, PatchEmbed, trunc_normal_
from timm.models.mambaout import Downsample, MambaOutStage, MlpHead, Stem
from torch import nn

from harness.modules.block import MixerBlock
from harness.modules.registry import create_mixer

# timm's mambaout_{femto,kobe,tiny,small,base}: (depths, dims)
MAMBAOUT_SIZES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "femto": ((3, 3, 9, 3), (48, 96, 192, 288)),
    "kobe": ((3, 3, 15, 3), (48, 96, 192, 288)),
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 576)),
    "small": ((3, 4, 27, 3), (96, 192, 384, 576)),
    "base": ((3, 4, 27, 3), (128, 256, 512, 768)),
}

MixerKwargs = Callable[[int, int], dict[str, Any]]  # (stage index, block index) -> mixer options


def _timm_init(module: nn.Module) -> None:
    """MambaOut's init (timm ``MambaOut._init_weights``) for the parts timm builds; mixers keep their own."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class WindowPadded(nn.Module):
    """Zero-pads the grid to a multiple of a window mixer's window and crops back (Swin's padding, after
    the norm): the ``attention`` mixer needs grids that tile into windows, images need not."""

    def __init__(self, mixer: nn.Module, window: int):
        super().__init__()
        self.mixer, self.window = mixer, window

    @property
    def last_backend(self) -> str:
        return self.mixer.last_backend

    def forward(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        (h, w), b, c = shape, x.shape[0], x.shape[-1]
        # an axis shorter than the window is one (shrunk) window already: no padding there
        ph = (-h) % self.window if h > self.window else 0
        pw = (-w) % self.window if w > self.window else 0
        if not (ph or pw):
            return self.mixer(x, shape=shape)
        x = F.pad(x.reshape(b, h, w, c), (0, 0, 0, pw, 0, ph))
        y = self.mixer(x.reshape(b, -1, c), shape=(h + ph, w + pw))
        return y.reshape(b, h + ph, w + pw, c)[:, :h, :w].reshape(b, h * w, c)


def _make_mixer(name: str, dim: int, kwargs: dict[str, Any]) -> nn.Module:
    """``create_mixer``; windowed mixers get ``WindowPadded`` so any image size runs."""
    mixer = create_mixer(name, dim, **kwargs)
    window = kwargs.get("window")
    return WindowPadded(mixer, window) if window else mixer


class MixerStage(nn.Module):
    """Optional downsampling, then ``depth`` harness ``MixerBlock`` s over the flattened ``(B, H*W, C)`` tokens."""

    def __init__(self, dim_in: int, dim_out: int, blocks: list[MixerBlock], downsample: bool):
        super().__init__()
        self.downsample = Downsample(dim_in, dim_out, norm_layer=LayerNorm) if downsample else nn.Identity()
        if downsample:
            _timm_init(self.downsample)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        for block in self.blocks:
            x = block(x, shape=(h, w))
        return x.reshape(b, h, w, c)


class VisionBackbone(nn.Module):
    """Stem + stages; ``mixer`` names the token mixer (``gated_cnn`` builds timm's MambaOut stages).

    ``mixer_kwargs(stage, block)`` gives each block's mixer options (the family decides, e.g., window
    attention in early stages and global attention late; for ``gated_cnn`` the stage's first entry is
    passed to ``MambaOutStage``: expansion_ratio, kernel_size, conv_ratio).
    """

    def __init__(
        self,
        mixer: str,
        depths: tuple[int, ...],
        dims: tuple[int, ...],
        *,
        layout: str = "hierarchical",
        in_chans: int = 3,
        patch_size: int = 16,
        mlp_ratio: float = 0.0,
        norm: str = "layernorm",
        drop_path: float = 0.0,
        mixer_kwargs: MixerKwargs | None = None,
    ):
        super().__init__()
        if layout not in ("hierarchical", "isotropic"):
            raise ValueError(f"unknown layout {layout!r}; use hierarchical or isotropic")
        if layout == "hierarchical" and len(depths) != len(dims):
            raise ValueError(f"depths {tuple(depths)} and dims {tuple(dims)} must have the same length")
        kwargs_of = mixer_kwargs or (lambda stage, block: {})
        self.mixer_name, self.layout = mixer, layout
        if layout == "isotropic":
            depths, dims = (sum(depths),), (dims[0],)
            self.stem = PatchEmbed(
                img_size=None, patch_size=patch_size, in_chans=in_chans, embed_dim=dims[0],
                output_fmt="NHWC", strict_img_size=False, dynamic_img_pad=True,
            )
            reductions = [patch_size]
        else:
            self.stem = Stem(in_chans, dims[0], norm_layer=LayerNorm)
            reductions = [4 * 2**i for i in range(len(dims))]
        _timm_init(self.stem)
        rates = torch.linspace(0, drop_path, sum(depths)).tolist()
        self.stages = nn.Sequential()
        prev = dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            dp = rates[sum(depths[:i]) : sum(depths[: i + 1])]
            if mixer == "gated_cnn":
                stage = MambaOutStage(
                    dim=prev, dim_out=dim, depth=depth, downsample="conv" if i > 0 else "",
                    drop_path=dp, **kwargs_of(i, 0),
                )
                _timm_init(stage)
                stage.last_backend = "torch"  # plain torch ops, recorded like the gated_cnn mixer's backend
            else:
                blocks = [
                    MixerBlock(dim, _make_mixer(mixer, dim, kwargs_of(i, j)), mlp_ratio=mlp_ratio, norm=norm, drop_path=dp[j])
                    for j in range(depth)
                ]
                stage = MixerStage(prev, dim, blocks, downsample=i > 0)
            self.stages.append(stage)
            prev = dim
        self.feature_info = [
            dict(num_chs=dim, reduction=red, module=f"stages.{i}") for i, (dim, red) in enumerate(zip(dims, reductions))
        ]
        self.num_features = dims[-1]

    def token_stats(self, height: int, width: int) -> list[tuple[int, int]]:
        """(tokens L, width D) of each stage at an input of ``height x width`` (stride-2 convs round up)."""
        stats = []
        for i, info in enumerate(self.feature_info):
            if self.layout == "isotropic":
                h, w = math.ceil(height / info["reduction"]), math.ceil(width / info["reduction"])
            else:  # stem and downsamples are stride-2, pad-1, 3x3 convs: out = ceil(in / 2)
                h, w = height, width
                for _ in range(2 + i):
                    h, w = math.ceil(h / 2), math.ceil(w / 2)
            stats.append((h * w, info["num_chs"]))
        return stats

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output, NCHW, matching ``feature_info``."""
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x.permute(0, 3, 1, 2).contiguous())
        return feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output, NHWC (what timm's MambaOut head pools)."""
        return self.stages(self.stem(x))


class ImageClassifier(nn.Module):
    """Backbone + MambaOut's classification head (timm ``MlpHead``: pool, norm, fc, GELU, norm, fc)."""

    def __init__(self, backbone: VisionBackbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = MlpHead(backbone.num_features, num_classes, norm_layer=LayerNorm)
        _timm_init(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_features(x))
