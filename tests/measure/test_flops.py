"""Both FLOP counters against closed-form counts (1% tolerance, in practice exact), causal attention
counted as the pairs it attends, einsum counted exactly, and unknown compute ops recorded as skipped."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.measure.flops import causal_pairs, count_flops, count_fwd_flops, counted_flops, sdpa_formulas
from harness.modules.attention import Attention
from harness.modules.gated_cnn import GatedCNN


class Bound(nn.Module):
    """A mixer with its 2-D shape bound, so tracers see ``model(x)``."""

    def __init__(self, mixer: nn.Module, shape: tuple[int, int] | None):
        super().__init__()
        self.mixer, self.shape = mixer, shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x, shape=self.shape)


def assert_counts(model: nn.Module, x: torch.Tensor, expected_macs: float) -> None:
    counts = count_flops(model, (x,))
    assert counts.skipped == []
    assert counts.flops_fwd == pytest.approx(2 * expected_macs, rel=0.01)
    assert counts.macs_fwd_fvcore == pytest.approx(expected_macs, rel=0.01)


def test_causal_pairs():
    assert causal_pairs(4, 4) == 10
    assert causal_pairs(2, 5) == 3  # top-left aligned: row i sees keys 0..i
    assert causal_pairs(5, 2) == 3 + 3 * 2
    assert causal_pairs(5, 2) == int(torch.ones(5, 2).tril().sum())


@pytest.mark.parametrize("B,L", [(1, 5), (3, 12)])
def test_linear_stack(B, L):
    dims = [8, 24, 16, 4]
    model = nn.Sequential(*(nn.Linear(a, b) for a, b in zip(dims, dims[1:])))
    x = torch.randn(B, L, dims[0])
    macs = B * L * sum(a * b for a, b in zip(dims, dims[1:]))
    assert_counts(model, x, macs)
    # train step: every layer's weight gradient, and input gradients for all but the first layer
    counts = count_flops(model, (x,), lambda: model(x).sum())
    dx = B * L * sum(a * b for a, b in zip(dims[1:], dims[2:]))
    assert counts.flops_train_step == 2 * (2 * macs + dx)


def attention_macs(attn: Attention, B: int, L: int, D: int, pairs_per_head: int) -> int:
    proj = B * L * D * 3 * attn.inner + B * L * attn.inner * D
    return proj + B * attn.n_heads * pairs_per_head * 2 * attn.head_dim


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("B,L,D,H", [(2, 10, 32, 4), (1, 33, 48, 3)])
def test_global_attention(causal, B, L, D, H):
    attn = Attention(D, n_heads=H, causal=causal)
    pairs = causal_pairs(L, L) if causal else L * L
    assert_counts(attn, torch.randn(B, L, D), attention_macs(attn, B, L, D, pairs))


def test_causal_attention_train_step():
    B, L, D, H = 2, 16, 32, 4
    attn = Attention(D, n_heads=H, causal=True)
    x = torch.randn(B, L, D)
    counts = count_flops(attn, (x,), lambda: attn(x).sum())
    qkv, proj = 2 * B * L * D * 3 * D, 2 * B * L * D * D
    sdpa = 2 * B * H * causal_pairs(L, L) * 2 * (D // H)
    # qkv: weight grad only (x needs no grad); proj: both; SDPA backward = recompute + 4 products = 2.5x
    assert counts.flops_train_step == 2 * qkv + 3 * proj + sdpa + sdpa * 5 // 2


@pytest.mark.parametrize("shift,pos", [(False, "none"), (True, "relative")])
@pytest.mark.parametrize("shape,window", [((8, 8), 4), ((4, 12), 2)])
def test_window_attention(shape, window, shift, pos):
    B, D, L = 2, 16, shape[0] * shape[1]
    attn = Attention(D, n_heads=2, window=window, shift=shift, pos=pos)
    # every query attends to the N = window^2 keys of its window (masks are computed in full)
    assert_counts(Bound(attn, shape), torch.randn(B, L, D), attention_macs(attn, B, L, D, L * window * window))


@pytest.mark.parametrize("kwargs,shape,L", [({}, (6, 5), 30), ({"causal": True, "d_conv": 4}, None, 17),
                                            ({"conv_dims": 1, "kernel_size": 5}, None, 9)])
def test_gated_cnn(kwargs, shape, L):
    B, D = 2, 12
    mixer = GatedCNN(D, **kwargs)
    hidden, channels = mixer.fc2.in_features, mixer.conv.in_channels
    taps = math.prod(mixer.conv.kernel_size)
    macs = B * L * (D * 2 * hidden + channels * taps + hidden * D)
    assert_counts(Bound(mixer, shape), torch.randn(B, L, D), macs)


class Einsum(nn.Module):
    def __init__(self, equation: str):
        super().__init__()
        self.equation = equation

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, a, b)


def test_einsum_contraction_counted_exactly():
    a, b = torch.randn(2, 5, 6), torch.randn(6, 7)
    counts = count_flops(Einsum("bld,de->ble"), (a, b))
    assert counts.macs_fwd_fvcore == 2 * 5 * 6 * 7
    assert counts.flops_fwd == 2 * 2 * 5 * 6 * 7


def test_einsum_outer_product_conventions():
    """No summed index: fvcore counts 1 FLOP per multiply (half a MAC), FlopCounterMode none (elementwise)."""
    counts = count_flops(Einsum("bd,bn->bdn"), (torch.randn(2, 6), torch.randn(2, 7)))
    assert counts.macs_fwd_fvcore == 2 * 6 * 7 / 2
    assert counts.flops_fwd == 0


@torch.library.custom_op("harness_test::opaque_mm", mutates_args=())
def opaque_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b


class Opaque(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return opaque_mm(x, x.transpose(-1, -2))


def test_ops_without_formula_are_recorded():
    counts = count_flops(Opaque(), (torch.randn(4, 4),))
    assert "flop_counter:harness_test.opaque_mm" in counts.skipped
    assert "fvcore:harness_test::opaque_mm" in counts.skipped
    assert counts.as_row()["flops_skipped"] == ",".join(counts.skipped)


def test_mamba_scan_is_counted():
    formulas = pytest.importorskip("harness.kernels.flop_formulas")
    from harness.modules.registry import create_mixer

    B, L, D = 2, 8, 16
    mamba = create_mixer("mamba", D)
    di, n, r, k = mamba.d_inner, mamba.d_state, mamba.dt_rank, mamba.d_conv
    conv_len = L + k - 1  # the conv pads both sides and is sliced to the causal part, as in mamba_ssm
    macs = B * L * (D * 2 * di + di * (r + 2 * n) + r * di + di * D) + B * di * k * conv_len
    scan = formulas.selective_scan_flops(B, di, L, n, has_D=True, has_z=True)
    x = torch.randn(B, L, D)
    counts = count_flops(mamba, (x,))
    assert counts.skipped == []
    assert counts.flops_fwd == pytest.approx(2 * macs + scan, rel=0.01)
    assert counts.macs_fwd_fvcore == pytest.approx(macs + scan / 2, rel=0.01)
    assert count_fwd_flops(mamba, (x,)) == counts.flops_fwd


@pytest.mark.parametrize("packet", list(sdpa_formulas()), ids=str)
def test_every_sdpa_kernel_formula_is_causal_aware(packet):
    """The GPU kernels' formulas bind their own schemas (checked here on meta tensors, no GPU needed)."""
    B, H, Lq, Lk, d = 2, 3, 6, 6, 8
    shapes = {"query": (B, H, Lq, d), "key": (B, H, Lk, d), "value": (B, H, Lk, d), "grad_out": (B, H, Lq, d),
              "grad_out_": (B, H, Lq, d)}
    formula = sdpa_formulas()[packet]
    counts = {}
    for causal in (False, True):
        kwargs = {a.name: torch.empty(shapes[a.name], device="meta") if a.name in shapes else None
                  for a in packet.default._schema.arguments}
        kwargs["is_causal"] = causal
        counts[causal] = formula(**kwargs)
    backward = "backward" in str(packet)
    expected = 2 * B * H * Lq * Lk * 2 * d * (5 / 2 if backward else 1)
    assert counts[False] == expected
    assert counts[True] == expected * causal_pairs(Lq, Lk) / (Lq * Lk)


def test_fft_flops_follow_the_cooley_tukey_count():
    """5 N log2 N per complex N-point transform, half for real input (rfft) or real output (irfft)."""
    x = torch.randn(4, 3, 64)
    flops, skipped = counted_flops(lambda: torch.fft.irfft(torch.fft.rfft(x), n=64))
    assert skipped == []
    assert flops == 2 * (4 * 3) * 2.5 * 64 * 6
    z = torch.randn(2, 8, 16, 16, dtype=torch.complex64)
    flops, _ = counted_flops(lambda: torch.fft.fftn(z, dim=(-2, -1)))
    assert flops == (2 * 8) * 5 * 256 * 8


@pytest.mark.parametrize(("groups", "transposed"), [(64, False), (4, False), (1, False), (8, True)])
def test_conv_backward_is_twice_the_forward_for_grouped_convs(groups: int, transposed: bool) -> None:
    # input gradient and weight gradient each repeat the forward's multiply-adds; torch's own formula
    # counts a grouped conv's weight gradient `groups` times over (64x for the depthwise conv of a Mamba block)
    conv_cls = nn.ConvTranspose1d if transposed else nn.Conv1d
    conv = conv_cls(64, 64, 4, groups=groups, stride=2 if transposed else 1, padding=0 if transposed else 3)
    x = torch.randn(2, 64, 16, requires_grad=True)
    with torch.no_grad():
        fwd, _ = counted_flops(lambda: conv(x))
    positions = 16 if transposed else conv(x).shape[-1]
    assert fwd == 2 * 2 * positions * conv.weight.numel()  # closed form: 2 x batch x positions x weights
    train, _ = counted_flops(lambda: conv(x).sum().backward())
    assert train == 3 * fwd
    x.requires_grad_(False)  # a first layer: weight gradient only
    assert counted_flops(lambda: conv(x).sum().backward())[0] == 2 * fwd


def test_fvcore_counts_neuraloperator_models_and_lists_only_real_skips():
    """neuraloperator puts a ``_metadata`` dict in its state dict, which JIT tracing (fvcore) used to fail
    on; the count now matches FlopCounterMode's but for the FFTs, which fvcore lists as skipped. Bilinear
    upsampling is interpolation, not a skipped matmul."""
    from neuralop.models import FNO

    torch.manual_seed(0)
    fno = FNO(n_modes=(8,), hidden_channels=16, in_channels=2, out_channels=1, n_layers=2)
    x = torch.randn(2, 2, 32)
    counts = count_flops(fno, (x,))
    assert counts.macs_fwd_fvcore is not None, counts.skipped
    assert not [s for s in counts.skipped if "failed" in s]
    assert {"fvcore:aten::fft_rfftn", "fvcore:aten::fft_irfftn"} <= set(counts.skipped)
    fft_flops, _ = counted_flops(lambda: torch.fft.irfftn(torch.fft.rfftn(torch.randn(2, 16, 32), dim=[-1]), s=[32], dim=[-1]))
    assert counts.macs_fwd_fvcore == pytest.approx((counts.flops_fwd - 2 * fft_flops) / 2, rel=0.02)
    up = torch.nn.Upsample(scale_factor=2, mode="bilinear")
    assert count_flops(up, (torch.randn(1, 2, 4, 4),)).skipped == []
