"""A token-sequence skeleton: embedding -> N residual blocks -> norm -> per-position head.

The mixer of each layer comes from a name pattern (``[mamba]`` repeated, or a hybrid such as
``[mamba, mamba, mamba, attention]`` cycled over the depth), so two variants differ in the mixer only.
Mixer options are passed to each mixer only if its constructor accepts them (one ``model:`` block serves
every variant of a pairing).
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
from torch import nn

from harness.modules.block import Block
from harness.modules.registry import MIXERS, create_mixer


def mixer_kwargs(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` the mixer's constructor accepts (None values dropped)."""
    params = inspect.signature(MIXERS.get(name).__init__).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in options.items() if v is not None and (accepts_any or k in params)}


class SequenceModel(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        pattern: Sequence[str],
        n_outputs: int,
        mixer_options: dict[str, Any] | None = None,
        mlp_ratio: float = 0.0,
        norm: str = "layernorm",
    ):
        super().__init__()
        options = dict(mixer_options or {})
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList(
            Block(d_model, create_mixer(name, d_model, **mixer_kwargs(name, options)), mlp_ratio=mlp_ratio, norm=norm)
            for name in (pattern[i % len(pattern)] for i in range(n_layers))
        )
        self.norm_f = nn.LayerNorm(d_model) if norm == "layernorm" else nn.RMSNorm(d_model)
        self.head = nn.Linear(d_model, n_outputs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) long -> logits (B, L, n_outputs)."""
        x = self.embedding(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm_f(x))
