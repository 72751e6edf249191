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


class _Invisible(torch.autograd.Function):
    """Stands in for a mamba_ssm kernel: runs ``fn`` where no FLOP counter sees it, forward and backward."""

    @staticmethod
    def forward(ctx, fn, *inputs):
        from torch.utils._python_dispatch import _disable_current_modes

        ctx.shapes = [t.shape if isinstance(t, torch.Tensor) else None for t in inputs]
        with _disable_current_modes(), torch.no_grad():
            return fn(*inputs)

    @staticmethod
    def backward(ctx, grad):
        return (None, *[torch.zeros(s) if s is not None else None for s in ctx.shapes])


@pytest.mark.parametrize("kind", ["selective_scan", "ssd"])
def test_fused_kernels_count_the_same_flops_as_the_reference(monkeypatch, kind):
    """mamba_ssm's kernels never reach the dispatcher; the fused path adds the closed forms itself."""
    from harness.kernels import ops
    from harness.kernels.selective_scan import selective_scan_ref
    from harness.measure.flops import counted_flops

    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, requires_grad=True)  # noqa: E731
    if kind == "selective_scan":
        ins = (r(2, 8, 24), r(2, 8, 24), -torch.rand(8, 4, generator=g), r(2, 4, 24), r(2, 4, 24), r(8), r(2, 8, 24), r(8))
        monkeypatch.setattr(ops, "selective_scan_fn", lambda *a: _Invisible.apply(selective_scan_ref, *a))
        call = lambda backend: ops.selective_scan(*ins, delta_softplus=True, backend=backend)  # noqa: E731
    else:
        ins = (r(2, 24, 4, 8), r(2, 24, 4), -torch.rand(4, generator=g), r(2, 24, 1, 8), r(2, 24, 1, 8))
        monkeypatch.setattr(ops, "ssd_fn", lambda x, dt, A, B, C, chunk, **kw: _Invisible.apply(
            lambda *t: ops.ssd_ref(*t, chunk, dt_softplus=True), x, dt, A, B, C))
        call = lambda backend: ops.ssd_scan(*ins, 8, dt_softplus=True, backend=backend)  # noqa: E731
    for phase in (lambda y: None, lambda y: y.sum().backward()):
        fused = counted_flops(lambda: phase(call(ops.FUSED_BACKEND)))[0]
        ref = counted_flops(lambda: phase(call(ops.REF_BACKEND)))[0]
        assert fused == ref > 0


@pytest.mark.parametrize("kind,kw", [("mamba", {"scan": "bidirectional"}), ("mamba2", {"chunk_size": 4})])
def test_fvcore_reads_mamba_ssm_functions_by_argument(standin_kernels, kind, kw):
    """A JIT trace keeps only the tensor arguments of an autograd Function as its inputs (None, chunk_size
    and flags go elsewhere): counted by position among the tensors, a scan without z (bidirectional Mamba)
    counted z's gate from delta_bias, and Mamba-2's chunk size could not be read at all. With the stand-in
    kernels (named and called as mamba_ssm's), fvcore's MACs are FlopCounterMode's FLOPs / 2, nothing skipped."""
    from harness.measure.flops import count_flops

    m = create_mixer(kind, 16, d_state=4, **({"headdim": 8} if kind == "mamba2" else {}), **kw)
    x = torch.randn(2, 12, 16)
    counts = count_flops(m, (x,))
    assert "mamba_ssm-cuda" in m.last_backend and not counts.skipped
    assert counts.macs_fwd_fvcore == counts.flops_fwd / 2
