"""The attention mixer: exact equivalence to reference attention (global, causal, Swin windows with shift
and relative bias), KV-cache decoding equal to the full causal forward, and honest backend names."""

from __future__ import annotations

import math

import pytest
import torch
from timm.models.swin_transformer import WindowAttention, get_relative_position_index

from harness.modules.attention import Attention
from harness.modules.positions import RelativePositionBias, apply_rope, grid_coords, rope_angles
from harness.modules.registry import create_mixer

torch.manual_seed(0)


def dense_reference(attn: Attention, x: torch.Tensor, allowed: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Plain softmax attention with an explicit (L, L) allowed-pairs matrix and optional (H, L, L) bias."""
    B, L, _ = x.shape
    q, k, v = attn.qkv(x).view(B, L, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim)
    if bias is not None:
        scores = scores + bias
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = scores.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(B, L, attn.inner))


@pytest.mark.parametrize("causal", [False, True])
def test_global_attention_matches_reference(causal):
    attn = create_mixer("attention", 32, n_heads=4, causal=causal).eval()
    x = torch.randn(2, 10, 32)
    allowed = torch.ones(10, 10, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    torch.testing.assert_close(attn(x), dense_reference(attn, x, allowed), atol=1e-5, rtol=1e-5)
    assert attn.last_backend.startswith("sdpa-") and attn.last_backend.endswith("-cpu")


def test_relative_index_equals_swin():
    bias = RelativePositionBias(2, (3, 4))
    coords = grid_coords((3, 4))
    assert torch.equal(bias.index(coords, coords), get_relative_position_index(3, 4))


def test_window_attention_matches_timm_swin():
    torch.manual_seed(1)
    attn = Attention(16, n_heads=2, window=2, pos="relative").eval()
    ref = WindowAttention(16, num_heads=2, window_size=(2, 2)).eval()
    ref.qkv.load_state_dict(attn.qkv.state_dict())
    ref.proj.load_state_dict(attn.proj.state_dict())
    ref.relative_position_bias_table.data.copy_(attn.rel_bias.table.data)
    x = torch.randn(2, 4 * 6, 16)
    windows = x.view(2, 2, 2, 3, 2, 16).permute(0, 1, 3, 2, 4, 5).reshape(12, 4, 16)
    expected = ref(windows).view(2, 2, 3, 2, 2, 16).permute(0, 1, 3, 2, 4, 5).reshape(2, 24, 16)
    torch.testing.assert_close(attn(x, shape=(4, 6)), expected, atol=1e-5, rtol=1e-5)


def test_shifted_window_attention_matches_bruteforce():
    """Shifted windows: each pixel sees the pixels of its rolled window that came from its own region."""
    H = W = 4
    w, s = 2, 1
    attn = Attention(8, n_heads=2, window=w, shift=True, pos="relative").eval()
    with torch.no_grad():
        attn.rel_bias.table.normal_()
    x = torch.randn(1, H * W, 8)
    pix = grid_coords((H, W))
    rolled = (pix - s) % torch.tensor([H, W])  # where each pixel lands after torch.roll(-s)

    def region(r: torch.Tensor, n: int) -> torch.Tensor:
        return (r >= n - w).long() + (r >= n - s).long()

    label = region(rolled[:, 0], H) * 3 + region(rolled[:, 1], W)
    window_id = (rolled // w) @ torch.tensor([W // w, 1])
    allowed = (window_id[:, None] == window_id[None]) & (label[:, None] == label[None])
    bias = attn.rel_bias(rolled % w)
    expected = dense_reference(attn, x, allowed, bias)
    torch.testing.assert_close(attn(x, shape=(H, W)), expected, atol=1e-5, rtol=1e-5)


def test_window_needs_divisible_grid_and_shape():
    attn = Attention(8, n_heads=2, window=4)
    with pytest.raises(ValueError, match="multiple of the attention window"):
        attn(torch.randn(1, 6 * 8, 8), shape=(6, 8))
    with pytest.raises(ValueError, match="needs the 2-D shape"):
        attn(torch.randn(1, 16, 8))


def test_rope_scores_depend_on_offsets_only():
    q, k = torch.randn(8), torch.randn(8)
    coords = torch.tensor([[0, 0], [2, 1], [5, 7], [7, 8]])
    rot = apply_rope(torch.stack([q, k, q, k])[None], rope_angles(coords, 8))[0]
    torch.testing.assert_close(rot[0] @ rot[1], rot[2] @ rot[3])


@pytest.mark.parametrize("pos", ["none", "rope", "relative"])
def test_kv_cache_decoding_equals_causal_forward(pos, decode):
    attn = Attention(32, n_heads=4, causal=True, pos=pos).eval()
    if attn.rel_bias is not None:
        with torch.no_grad():
            attn.rel_bias.table.normal_()
    x = torch.randn(2, 7, 32)
    full = attn(x)
    steps, _ = decode(attn, x)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


def test_decoding_needs_causal():
    with pytest.raises(RuntimeError, match="causal"):
        Attention(16).init_state(1, 4, torch.device("cpu"), torch.float32)


def test_xformers_is_gpu_only():
    attn = Attention(16, backend="xformers")
    with pytest.raises(RuntimeError, match="GPU-only"):
        attn(torch.randn(1, 4, 16))


def test_head_defaults():
    attn = Attention(128)
    assert (attn.n_heads, attn.head_dim) == (2, 64)
    attn = Attention(48)
    assert (attn.n_heads, attn.head_dim) == (1, 48)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_backend_names_follow_forced_kernel():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    attn = Attention(128, n_heads=2, causal=True).cuda().half()
    x = torch.randn(2, 64, 128, device="cuda", dtype=torch.half)
    for backend, name in [(SDPBackend.MATH, "sdpa-math"), (SDPBackend.EFFICIENT_ATTENTION, "sdpa-efficient"),
                          (SDPBackend.FLASH_ATTENTION, "sdpa-flash")]:
        with sdpa_kernel(backend):
            attn(x)
        assert attn.last_backend == name
