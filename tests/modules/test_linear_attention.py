"""Galerkin linear attention: the O(n d^2) form equals the explicit (Q K~^T) V~ / n, and it is an average."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.modules.linear_attention import GalerkinAttention
from harness.modules.registry import create_mixer


def naive_galerkin(m: GalerkinAttention, x: torch.Tensor) -> torch.Tensor:
    """Per batch and head: the n x n score matrix Q K~^T (no softmax), times V~, over n; then out_proj."""
    b, n, _ = x.shape
    q, k, v = m.qkv(x).chunk(3, dim=-1)
    heads = []
    for h in range(m.n_heads):
        cut = slice(h * m.head_dim, (h + 1) * m.head_dim)
        kh = F.layer_norm(k[..., cut], (m.head_dim,), eps=m.eps) * m.k_norm_weight[h] + m.k_norm_bias[h]
        vh = F.layer_norm(v[..., cut], (m.head_dim,), eps=m.eps) * m.v_norm_weight[h] + m.v_norm_bias[h]
        scores = q[..., cut] @ kh.transpose(1, 2)  # (B, n, n)
        heads.append(scores @ vh / n)
    return m.out_proj(torch.cat(heads, dim=-1))


def randomized(m: GalerkinAttention) -> GalerkinAttention:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


def test_matches_explicit_score_matrix():
    torch.manual_seed(0)
    m = randomized(create_mixer("galerkin", 16, n_heads=4)).double()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    torch.testing.assert_close(m(x), naive_galerkin(m, x))
    assert m.last_backend == "torch-matmul"


def test_is_a_domain_average_so_refining_the_grid_changes_nothing():
    # (K~^T V~) / n is a quadrature: repeating every token twice (same function, twice the points)
    # leaves each token's output unchanged, the discrete form of resolution invariance.
    torch.manual_seed(0)
    m = randomized(GalerkinAttention(8, n_heads=2)).double()
    x = torch.randn(3, 7, 8, dtype=torch.float64)
    torch.testing.assert_close(m(x.repeat_interleave(2, dim=1))[:, ::2], m(x))


def test_alias_and_2d_shape_and_gradients():
    m = create_mixer("linear_attention", 12, n_heads=3)
    x = torch.randn(2, 20, 12, requires_grad=True)
    y = m(x, shape=(4, 5))
    assert y.shape == x.shape
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and all(p.grad is not None for p in m.parameters())
