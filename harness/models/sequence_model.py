"""A token-sequence skeleton: embedding -> N residual blocks -> norm -> per-position head.

The mixer of each layer comes from a pattern of ``(mixer name, options)`` (``[mamba]`` repeated, or a
hybrid such as ``[mamba, mamba, mamba, attention]`` cycled over the depth), so two variants differ in the
mixer only. Which options each mixer gets is the family's variant table's business, not this module's.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from harness.modules.block import MixerBlock
from harness.modules.registry import create_mixer


class SequenceModel(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        pattern: Sequence[tuple[str, dict[str, Any]]],
        n_outputs: int,
        mlp_ratio: float = 0.0,
        norm: str = "layernorm",
    ):
        """``pattern``: ``(mixer name, its kwargs)`` per layer, cycled over ``n_layers``."""
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(
            MixerBlock(d_model, create_mixer(name, d_model, **options), mlp_ratio=mlp_ratio, norm=norm)
            for name, options in (pattern[i % len(pattern)] for i in range(n_layers))
        )
        self.norm_f = nn.LayerNorm(d_model) if norm == "layernorm" else nn.RMSNorm(d_model)
        self.head = nn.Linear(d_model, n_outputs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) long -> logits (B, L, n_outputs)."""
        x = self.embedding(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm_f(x))
