"""The mixer-agnostic residual block (mamba_ssm's ``Block``): which mixer goes where is a name, not an ``if``.

    block = MixerBlock(256, create_mixer("mamba", 256), mlp_ratio=0.0, norm="rmsnorm")

``x + mixer(norm(x))`` then, if ``mlp_ratio > 0``, ``x + mlp(norm2(x))`` (timm's ``Mlp``). Incremental
decoding passes through to the mixer's ``init_state``/``step``.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import DropPath, Mlp
from torch import nn


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(dim)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim)
    raise ValueError(f"unknown norm {kind!r}; use layernorm or rmsnorm")


class MixerBlock(nn.Module):
    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float = 0.0, norm: str = "layernorm", drop_path: float = 0.0):
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.mixer = mixer
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = None
        if mlp_ratio > 0:
            self.norm2 = make_norm(norm, dim)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.mixer(self.norm(x), shape=shape))
        if self.mlp is not None:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x

    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> Any:
        return self.mixer.init_state(batch_size, max_len, device, dtype)

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One token ``x_t: (B, D)`` through the block using the mixer's cached state."""
        y, state = self.mixer.step(self.norm(x_t), state)
        x_t = x_t + y
        if self.mlp is not None:
            x_t = x_t + self.mlp(self.norm2(x_t))
        return x_t, state
