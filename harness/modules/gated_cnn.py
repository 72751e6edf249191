"""The ``gated_cnn`` mixer: MambaOut's Gated CNN token mixer, i.e. a Mamba block with the SSM removed.

MambaOut (Yu & Wang, arXiv 2405.07992): ``fc1 (D -> 2*hidden, hidden = 8D/3)`` split into a gate ``g``,
an identity part ``i`` and conv channels ``c``; a depthwise conv on ``c``; ``y = fc2(act(g) * [i, conv(c)])``.
It is the "no SSM" arm of every pairing: if it matches Mamba, the task did not need the SSM.

Reuses timm's ``GatedConvBlock`` (``timm.models.mambaout``) for the layers and their names (``fc1``,
``conv``, ``fc2``), so a timm MambaOut block's weights load into it (its ``norm.*`` belong to our block's
norm). Re-stated here: the forward, because timm's adds the norm and residual that the mixer contract
leaves to ``harness.modules.block.MixerBlock``, and works on ``(B, H, W, C)`` grids only; and the 1-D conv,
because timm only has the symmetric 2-D ``k x k`` kernel, while sequences need a ``1 x k`` kernel that
is either centered or causal (left padding ``k - 1``, as in Mamba's ``d_conv`` conv), and causal
decoding needs a cached conv window (``init_state``/``step``). The causal 1-D conv runs on causal_conv1d's
CUDA kernel where installed, as Mamba's does (``harness.kernels.short_conv``): the pair keeps one conv.

    mixer = create_mixer("gated_cnn", 96)                          # 7x7 conv, forward(x, shape=(H, W))
    mixer = create_mixer("gated_cnn", 256, causal=True, d_conv=4)  # 1-D causal, decodes token by token
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from timm.models.mambaout import GatedConvBlock
from torch import nn

from harness.kernels.short_conv import FUSED_CONV_BACKEND, causal_conv1d, fused_conv_usable


class GatedCNN(GatedConvBlock):
    """Gated CNN mixer ``(B, L, D) -> (B, L, D)``; no norm, no residual.

    ``conv_dims``: 2 = ``kernel_size x kernel_size`` depthwise conv over the grid given as ``shape``
    (MambaOut); 1 = a 1-D conv along the sequence (raster order for images), causal with kernel
    ``d_conv`` when ``causal`` else centered with ``kernel_size``. Default: 1 if ``causal`` else 2.
    """

    def __init__(
        self,
        dim: int,
        expansion_ratio: float = 8 / 3,
        kernel_size: int = 7,
        conv_ratio: float = 1.0,
        causal: bool = False,
        d_conv: int = 4,
        conv_dims: Literal[1, 2] | None = None,
        act_layer: type[nn.Module] = nn.GELU,
    ):
        super().__init__(dim, expansion_ratio=expansion_ratio, kernel_size=kernel_size, conv_ratio=conv_ratio,
                         norm_layer=nn.Identity, act_layer=act_layer)
        self.conv_dims = conv_dims or (1 if causal else 2)
        if self.conv_dims not in (1, 2):
            raise ValueError(f"conv_dims must be 1 or 2, got {conv_dims!r}")
        if causal and self.conv_dims == 2:
            raise ValueError("a causal gated_cnn convolves along the sequence: use conv_dims=1")
        self.causal = causal
        if self.conv_dims == 1:
            k = d_conv if causal else kernel_size
            if not causal and k % 2 == 0:
                raise ValueError(f"a centered 1-D conv needs an odd kernel_size, got {k}")
            channels = self.conv.in_channels
            # A (1, k) Conv2d keeps timm's module type and parameter name; padding is applied in _conv.
            self.conv = nn.Conv2d(channels, channels, kernel_size=(1, k), groups=channels)
        self.last_backend = ""

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        g, i, c = torch.split(self.fc1(x), self.split_indices, dim=-1)
        fused = self.conv_dims == 1 and fused_conv_usable(c, self.conv.kernel_size[1], self.causal)
        y = self.fc2(self.act(g) * torch.cat((i, self._conv(c, shape, fused)), dim=-1))
        self.last_backend = FUSED_CONV_BACKEND if fused else "torch"
        return y

    def _conv(self, c: torch.Tensor, shape: tuple[int, int] | None, fused: bool = False) -> torch.Tensor:
        """Depthwise conv of ``c: (B, L, C)`` -> ``(B, L, C)``; ``fused``: causal_conv1d's kernel."""
        if fused:
            return causal_conv1d(c.transpose(1, 2), self.conv.weight.flatten(1), self.conv.bias).transpose(1, 2)
        B, L, C = c.shape
        if self.conv_dims == 2:
            if shape is None:
                raise ValueError("this gated_cnn has a 2-D kernel and needs the input's shape (or build it with conv_dims=1)")
            grid = c.transpose(1, 2).reshape(B, C, *shape)
            return self.conv(grid).reshape(B, C, L).transpose(1, 2)
        k = self.conv.kernel_size[1]
        left = k - 1 if self.causal else k // 2
        seq = F.pad(c.transpose(1, 2)[:, :, None, :], (left, k - 1 - left))
        return self.conv(seq)[:, :, 0, :].transpose(1, 2)

    # -- incremental decoding (causal only) -------------------------------------------------------
    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The last ``d_conv - 1`` conv inputs ``(B, C, d_conv - 1)``, zeros before the first token."""
        if not self.causal:
            raise RuntimeError("incremental decoding needs a causal gated_cnn")
        return torch.zeros(batch_size, self.conv.in_channels, self.conv.kernel_size[1] - 1, device=device, dtype=dtype)

    def step(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One token ``x_t: (B, D)``; equals the next row of the causal forward."""
        g, i, c = torch.split(self.fc1(x_t), self.split_indices, dim=-1)
        window = torch.cat((state, c[:, :, None].to(state.dtype)), dim=-1)  # (B, C, d_conv)
        conv = (window * self.conv.weight[:, 0, 0, :]).sum(-1).to(c.dtype)
        if self.conv.bias is not None:
            conv = conv + self.conv.bias
        self.last_backend = "torch"
        return self.fc2(self.act(g) * torch.cat((i, conv), dim=-1)), window[:, :, 1:]
