"""The gated_cnn mixer: equals timm's MambaOut GatedConvBlock minus norm/residual, 1-D convs are causal or
centered as asked, and cached-conv decoding equals the full causal forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.models.mambaout import GatedConvBlock
from torch import nn

from harness.modules.gated_cnn import GatedCNN
from harness.modules.registry import create_mixer

torch.manual_seed(0)


def test_2d_equals_timm_block_without_residual():
    mixer = create_mixer("gated_cnn", 12).eval()
    ref = GatedConvBlock(12, norm_layer=nn.Identity).eval()
    ref.load_state_dict(mixer.state_dict())  # same parameter names: timm weights load
    x = torch.randn(2, 5, 6, 12)
    expected = ref(x) - x
    torch.testing.assert_close(mixer(x.reshape(2, 30, 12), shape=(5, 6)), expected.reshape(2, 30, 12))
    assert mixer.last_backend == "torch"


def test_2d_needs_shape():
    with pytest.raises(ValueError, match="shape"):
        GatedCNN(8)(torch.randn(1, 4, 8))


def test_causal_conv_ignores_the_future():
    mixer = GatedCNN(8, causal=True, d_conv=3).eval()
    x = torch.randn(1, 9, 8)
    y = mixer(x)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 4, 8)
    torch.testing.assert_close(mixer(x2)[:, :5], y[:, :5])
    assert not torch.allclose(mixer(x2)[:, 5:], y[:, 5:])


def test_centered_1d_conv_matches_conv1d():
    mixer = GatedCNN(8, conv_dims=1, kernel_size=5).eval()
    c = torch.randn(2, 11, mixer.conv.in_channels)
    weight = mixer.conv.weight[:, :, 0, :]
    expected = F.conv1d(c.transpose(1, 2), weight, mixer.conv.bias, padding=2, groups=weight.shape[0]).transpose(1, 2)
    torch.testing.assert_close(mixer._conv(c, None), expected)


def test_decoding_equals_causal_forward(decode):
    mixer = GatedCNN(16, causal=True, d_conv=4).eval()
    x = torch.randn(2, 9, 16)
    full = mixer(x)
    steps, _ = decode(mixer, x)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


def test_invalid_configurations():
    with pytest.raises(ValueError, match="conv_dims=1"):
        GatedCNN(8, causal=True, conv_dims=2)
    with pytest.raises(ValueError, match="odd"):
        GatedCNN(8, conv_dims=1, kernel_size=4)
    with pytest.raises(RuntimeError, match="causal"):
        GatedCNN(8).init_state(1, 4, torch.device("cpu"), torch.float32)
