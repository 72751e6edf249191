"""Both FLOP counters see the scans inside the Mamba / Mamba2 mixers and agree with the closed form.

Closed form of one mixer forward, in MACs: its Linear layers + the depthwise conv (output length
L + d_conv - 1 before the causal slice) + the scan (``harness.kernels.flop_formulas``). fvcore reports
MACs; FlopCounterMode reports FLOPs = 2 * MACs.
"""

import math

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch.utils.flop_counter import FlopCounterMode

from harness.kernels.flop_formulas import FVCORE_HANDLES, selective_scan_flops, ssd_macs
from harness.modules.registry import create_mixer


def _counts(model, x):
    fa = FlopCountAnalysis(model, (x,)).set_op_handle(**FVCORE_HANDLES)
    fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with FlopCounterMode(display=False) as fc:
        model(x)
    return fa.total(), fc.get_total_flops()


def _check(fv_macs, fc_flops, macs):
    assert fv_macs == pytest.approx(macs, rel=0.01)
    assert fc_flops == pytest.approx(2 * macs, rel=0.01)


@pytest.mark.parametrize("b,l,dim,n", [(1, 16, 16, 4), (2, 40, 32, 8), (2, 7, 24, 16)])
def test_mamba_counts_match_closed_form(b, l, dim, n):
    m = create_mixer("mamba", dim, d_state=n, impl="ref")
    di, r, k = 2 * dim, math.ceil(dim / 16), 4
    lin = b * l * (dim * 2 * di + di * (r + 2 * n) + r * di + di * dim)
    conv = b * (l + k - 1) * di * k
    scan = selective_scan_flops(b, di, l, n, has_D=True, has_z=True) / 2
    _check(*_counts(m, torch.randn(b, l, dim)), lin + conv + scan)


@pytest.mark.parametrize("b,l,dim,n,headdim,chunk", [(1, 16, 16, 8, 8, 8), (2, 37, 32, 4, 16, 16), (1, 9, 16, 16, 4, 64)])
def test_mamba2_counts_match_closed_form(b, l, dim, n, headdim, chunk):
    m = create_mixer("mamba2", dim, d_state=n, headdim=headdim, chunk_size=chunk, impl="ref")
    di, k = 2 * dim, 4
    h = di // headdim
    lin = b * l * (dim * (2 * di + 2 * n + h) + di * dim)
    conv = b * (l + k - 1) * (di + 2 * n) * k
    scan = ssd_macs(b, l, h, headdim, n, chunk, has_D=True, has_z=False)
    _check(*_counts(m, torch.randn(b, l, dim)), lin + conv + scan)


def test_backward_scan_is_counted_as_twice_forward():
    m = create_mixer("mamba", 16, d_state=4, impl="ref")
    with FlopCounterMode(display=False) as fc:
        m(torch.randn(2, 12, 16)).sum().backward()
    counts = fc.get_flop_counts()["Global"]
    fwd = counts[torch.ops.harness.selective_scan]
    assert fwd == selective_scan_flops(2, 32, 12, 4, True, True)
    assert counts[torch.ops.harness.selective_scan_bwd] == 2 * fwd
