"""The chunked SSD reference equals the per-step Mamba-2 recurrence (outputs, final state, gradients)."""

import pytest
import torch

from harness.kernels.ops import ssd_scan
from harness.kernels.ssd import ssd_loop, ssd_ref

b, h, p, n = 2, 4, 3, 5


def _inputs(l, g, d_shape, with_opts, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)
    t = dict(x=r(b, l, h, p), dt=r(b, l, h).abs() * 0.5, A=-(torch.rand(h, generator=gen) + 0.2), B=r(b, l, g, n), C=r(b, l, g, n))
    if with_opts:
        t.update(D=r(*d_shape), z=r(b, l, h, p), dt_bias=r(h) * 0.1, initial_states=r(b, h, p, n))
    return {k: v.requires_grad_() for k, v in t.items()}


@pytest.mark.parametrize("l,chunk", [(1, 4), (13, 4), (24, 8), (30, 64)])
@pytest.mark.parametrize("g", [1, 2])
@pytest.mark.parametrize("with_opts,d_shape", [(True, (h,)), (True, (h, p)), (False, None)])
def test_ref_matches_loop(l, chunk, g, with_opts, d_shape):
    ins = _inputs(l, g, d_shape, with_opts)
    ya, fa = ssd_ref(**ins, chunk_size=chunk, dt_softplus=with_opts, return_final_states=True)
    yb, fb = ssd_loop(**ins, dt_softplus=with_opts, return_final_states=True)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fa, fb, atol=1e-5, rtol=1e-5)
    w = torch.randn(yb.shape, generator=torch.Generator().manual_seed(l * 100 + g))
    ga = torch.autograd.grad((ya * w).sum() + fa.sum(), list(ins.values()))
    gb = torch.autograd.grad((yb * w).sum() + fb.sum(), list(ins.values()))
    for name, x, y in zip(ins, ga, gb):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5, msg=f"grad of {name}")


def test_custom_op_matches_loop_forward_and_backward():
    ins = _inputs(19, 2, (h,), True)
    ya, fa = ssd_scan(**ins, chunk_size=8, dt_softplus=True, return_final_states=True)
    yb, fb = ssd_loop(**ins, dt_softplus=True, return_final_states=True)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    ga = torch.autograd.grad(ya.square().sum() + fa.sum(), list(ins.values()))
    gb = torch.autograd.grad(yb.square().sum() + fb.sum(), list(ins.values()))
    for name, x, y in zip(ins, ga, gb):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5, msg=f"grad of {name}")
