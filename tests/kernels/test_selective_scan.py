"""The chunked parallel selective scan equals the per-step recurrence (outputs, last state, gradients)."""

from functools import partial

import pytest
import torch

from harness.kernels.ops import selective_scan
from harness.kernels.selective_scan import selective_scan_loop, selective_scan_ref

B_, D_, N_ = 2, 6, 4


def _inputs(l, bc_shape, seed=0, with_opts=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    t = dict(
        u=r(B_, D_, l), delta=r(B_, D_, l).abs() * 0.5, A=-(torch.rand(D_, N_, generator=g) * 2 + 0.1),
        B=r(*bc_shape), C=r(*bc_shape),
    )
    if with_opts:
        t.update(D=r(D_), z=r(B_, D_, l), delta_bias=r(D_) * 0.1)
    return {k: v.requires_grad_() for k, v in t.items()}


def _check(fn_a, fn_b, ins):
    out_a, last_a = fn_a(**ins, return_last_state=True)
    out_b, last_b = fn_b(**ins, return_last_state=True)
    torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last_a, last_b, atol=1e-5, rtol=1e-5)
    w = torch.randn_like(out_b)
    leaves = list(ins.values())
    ga = torch.autograd.grad((out_a * w).sum() + last_a.sum(), leaves)
    gb = torch.autograd.grad((out_b * w).sum() + last_b.sum(), leaves)
    for name, x, y in zip(ins, ga, gb):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5, msg=f"grad of {name}")


@pytest.mark.parametrize("l,chunk", [(1, 4), (13, 4), (32, 8), (50, 64)])
@pytest.mark.parametrize("bc", ["bnl", "bgnl", "dn"])
@pytest.mark.parametrize("with_opts", [True, False])
def test_ref_matches_loop(l, chunk, bc, with_opts):
    shape = {"bnl": (B_, N_, l), "bgnl": (B_, 2, N_, l), "dn": (D_, N_)}[bc]
    ins = _inputs(l, shape, with_opts=with_opts)
    _check(
        partial(selective_scan_ref, chunk_size=chunk, delta_softplus=with_opts),
        partial(selective_scan_loop, delta_softplus=with_opts),
        ins,
    )


def test_euler_matches_loop():
    ins = _inputs(20, (B_, N_, 20))
    out_a = selective_scan_ref(**ins, delta_softplus=True, chunk_size=8, discretization="euler")
    out_b = selective_scan_loop(**ins, delta_softplus=True, discretization="euler")
    torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out_a, selective_scan_ref(**ins, delta_softplus=True))


def test_custom_op_matches_loop_forward_and_backward():
    ins = _inputs(21, (B_, N_, 21))

    def op(**kw):
        return selective_scan(**kw, delta_softplus=True, chunk_size=8)

    def loop(**kw):
        return selective_scan_loop(**kw, delta_softplus=True)

    _check(op, loop, ins)


def test_low_precision_inputs_keep_dtype_and_compute_in_fp32():
    ins = {k: v.detach() for k, v in _inputs(16, (B_, N_, 16)).items()}
    half = {k: (v.bfloat16() if k in ("u", "delta", "z") else v) for k, v in ins.items()}
    out = selective_scan_ref(**half, delta_softplus=True)
    assert out.dtype == torch.bfloat16
    ref = selective_scan_loop(**{k: v.float() for k, v in half.items()}, delta_softplus=True)
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


def test_strong_decay_is_stable():
    """Large delta*|A| (decays underflow to 0) must not produce inf/nan: no exp of positive sums."""
    ins = {k: v.detach() for k, v in _inputs(64, (B_, N_, 64)).items()}
    ins["delta"] = ins["delta"].abs() * 50
    out = selective_scan_ref(**ins, chunk_size=16)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, selective_scan_loop(**ins), atol=1e-4, rtol=1e-5)
