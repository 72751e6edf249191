"""The ``galerkin`` mixer: Galerkin-type linear attention (Cao, "Choose a Transformer: Fourier or Galerkin",
arXiv 2105.14995), the attention of the Galerkin Transformer operator that the Mamba Neural Operator
(Cheng et al., arXiv 2410.02113) swaps for a bidirectional scan.

Softmax-free: per head, keys and values are layer-normalised over the head dimension (each head with its
own affine), and the output is ``Q (K~^T V~) / n`` for ``n`` tokens, a Petrov-Galerkin projection whose
cost is linear in ``n`` (``O(n d^2)``): the ``(d, d)`` matrix ``K~^T V~ / n`` is a quadrature of an integral
over the domain, so the mixer is resolution-invariant. Non-causal by construction (every token sees the
whole domain), so there is no incremental decoding.

Written here because no installed library has it (Cao's ``galerkin-transformer`` is not on PyPI).

    mixer = create_mixer("galerkin", 64, n_heads=4)
    y = mixer(x)                      # x: (B, L, 64); a 2-D ``shape`` is accepted and not needed
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GalerkinAttention(nn.Module):
    """``(B, L, D) -> (B, L, D)``: ``out_proj(concat_h Q_h (LN_h(K_h)^T LN_h(V_h)) / L)``."""

    def __init__(self, dim: int, n_heads: int | None = None, head_dim: int | None = None, qkv_bias: bool = True,
                 eps: float = 1e-5):
        super().__init__()
        if head_dim is None:
            n_heads = n_heads or max(1, dim // 64)
            head_dim = max(1, dim // n_heads)
        n_heads = n_heads or max(1, dim // head_dim)
        self.n_heads, self.head_dim, self.eps = n_heads, head_dim, eps
        inner = n_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        # Per-head LayerNorm affine of K and V (Cao's code keeps one nn.LayerNorm(head_dim) per head).
        self.k_norm_weight = nn.Parameter(torch.ones(n_heads, 1, head_dim))
        self.k_norm_bias = nn.Parameter(torch.zeros(n_heads, 1, head_dim))
        self.v_norm_weight = nn.Parameter(torch.ones(n_heads, 1, head_dim))
        self.v_norm_bias = nn.Parameter(torch.zeros(n_heads, 1, head_dim))
        self.out_proj = nn.Linear(inner, dim)
        self.last_backend: str | None = None

    def _norm(self, t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(t, (self.head_dim,), eps=self.eps) * weight + bias

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, H, L, dh)
        k = self._norm(k, self.k_norm_weight, self.k_norm_bias)
        v = self._norm(v, self.v_norm_weight, self.v_norm_bias)
        kv = k.transpose(-2, -1) @ v / n  # (B, H, dh, dh)
        out = (q @ kv).transpose(1, 2).reshape(b, n, self.n_heads * self.head_dim)
        self.last_backend = "torch-matmul"
        return self.out_proj(out)
