"""The chunked parallel selective scan equals the per-step recurrence (outputs, last state, gradients)."""

from functools import partial

import pytest
import torch

import harness.kernels.selective_scan as ss
from harness.kernels.ops import selective_scan
from harness.kernels.selective_scan import selective_scan_loop, selective_scan_ref, selective_scan_ref_bwd

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


# ---- the hand-written (analytic, reverse-scan) backward --------------------------------------------------


@pytest.mark.parametrize("discretization", ["zoh", "euler"])
@pytest.mark.parametrize("bc", ["bnl", "bgnl", "dn"])
@pytest.mark.parametrize("l,chunk", [(37, 8), (40, None), (16, 16)])
def test_analytic_backward_matches_loop_autograd(discretization, bc, l, chunk):
    """Every input's gradient (u, delta, A, B, C, D, z, delta_bias), through out and last_state."""
    shape = {"bnl": (B_, N_, l), "bgnl": (B_, 2, N_, l), "dn": (D_, N_)}[bc]
    ins = _inputs(l, shape, seed=3)
    if discretization == "euler":
        ins["delta"] = (ins["delta"].detach() * 0.2).requires_grad_()  # keep 1 + delta A a contraction
    _check(
        partial(selective_scan_ref, chunk_size=chunk, delta_softplus=True, discretization=discretization),
        partial(selective_scan_loop, delta_softplus=True, discretization=discretization),
        ins,
    )


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_gradient_of_last_state_alone(chunk):
    ins = _inputs(23, (B_, N_, 23), seed=4)
    _, last_a = selective_scan_ref(**ins, delta_softplus=True, return_last_state=True, chunk_size=chunk)
    _, last_b = selective_scan_loop(**ins, delta_softplus=True, return_last_state=True)
    w = torch.randn_like(last_b)
    ga = torch.autograd.grad((last_a * w).sum(), list(ins.values()), allow_unused=True)
    gb = torch.autograd.grad((last_b * w).sum(), list(ins.values()), allow_unused=True)
    for name, x, y in zip(ins, ga, gb):
        y = torch.zeros_like(ins[name]) if y is None else y
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5, msg=f"grad of {name}")


def test_bwd_function_returns_none_for_absent_inputs_and_input_dtypes():
    ins = {k: v.detach() for k, v in _inputs(12, (B_, N_, 12), with_opts=False).items()}
    ins["u"] = ins["u"].bfloat16()
    grads = selective_scan_ref_bwd(torch.randn(B_, D_, 12), None, **ins, chunk_size=4)
    assert grads[5:] == [None, None, None]
    assert grads[0].dtype == torch.bfloat16 and all(g.dtype == torch.float32 for g in grads[1:5])
    assert [tuple(g.shape) for g in grads[:5]] == [tuple(v.shape) for v in ins.values()]


def test_strong_decay_backward_is_finite_and_exact():
    ins = _inputs(64, (B_, N_, 64), seed=5)
    ins["delta"] = (ins["delta"].detach().abs() * 50).requires_grad_()
    _check(partial(selective_scan_ref, chunk_size=16), selective_scan_loop, ins)


@pytest.mark.parametrize("b,d,n,l", [(1, 8, 4, 300), (4, 64, 16, 24)])
def test_automatic_chunking_matches_loop(b, d, n, l):
    g = torch.Generator().manual_seed(6)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    ins = dict(u=r(b, d, l), delta=r(b, d, l), A=-torch.rand(d, n, generator=g) - 0.5, B=r(b, n, l),
               C=r(b, n, l), D=r(d), z=r(b, d, l), delta_bias=r(d))
    ins = {k: v.requires_grad_() for k, v in ins.items()}
    _check(partial(selective_scan_ref, delta_softplus=True), partial(selective_scan_loop, delta_softplus=True), ins)


# ---- the blocked scan: exact in fp64, over several blocks, kept states, fast softplus ----------------------


def _fp64(ins):
    return {k: v.detach().double().requires_grad_() for k, v in ins.items()}


@pytest.mark.parametrize("block_elems", [None, 1, 70])  # default: one block; 1: a block a step; 70: a few
@pytest.mark.parametrize("discretization", ["zoh", "euler"])
@pytest.mark.parametrize("bc", ["bnl", "bgnl", "dn"])
@pytest.mark.parametrize("l,chunk", [(37, 8), (29, None), (16, 16)])
def test_fp64_ref_equals_loop_to_rounding(monkeypatch, block_elems, discretization, bc, l, chunk):
    """In fp64 the chunked, blocked scan and its analytic backward agree with the per-step loop (and
    autograd through it) to 1e-10: the rewrite is the same arithmetic, only its order differs."""
    if block_elems is not None:
        monkeypatch.setattr(ss, "BLOCK_ELEMS", block_elems * B_ * N_ * D_)
    shape = {"bnl": (B_, N_, l), "bgnl": (B_, 2, N_, l), "dn": (D_, N_)}[bc]
    ins = _fp64(_inputs(l, shape, seed=7))
    if discretization == "euler":
        ins["delta"] = (ins["delta"].detach() * 0.2).requires_grad_()
    kw = dict(delta_softplus=True, discretization=discretization, return_last_state=True)
    out_a, last_a = selective_scan_ref(**ins, chunk_size=chunk, **kw)
    out_b, last_b = selective_scan_loop(**ins, **kw)
    assert out_a.dtype == last_a.dtype == torch.float64
    tol = dict(atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(out_a, out_b, **tol)
    torch.testing.assert_close(last_a, last_b, **tol)
    w, v = torch.randn_like(out_b), torch.randn_like(last_b)
    ga = torch.autograd.grad((out_a * w).sum() + (last_a * v).sum(), list(ins.values()))
    gb = torch.autograd.grad((out_b * w).sum() + (last_b * v).sum(), list(ins.values()))
    for name, x, y in zip(ins, ga, gb):
        torch.testing.assert_close(x, y, **tol, msg=f"grad of {name}")


@pytest.mark.parametrize("chunk", [None, 4])
def test_fp32_ref_over_many_blocks_matches_loop(monkeypatch, chunk):
    monkeypatch.setattr(ss, "BLOCK_ELEMS", 3 * B_ * N_ * D_)
    ins = _inputs(41, (B_, N_, 41), seed=8)
    _check(partial(selective_scan_ref, chunk_size=chunk, delta_softplus=True),
           partial(selective_scan_loop, delta_softplus=True), ins)


def test_kept_states_change_nothing():
    """The forward that keeps its states for the backward computes what the plain one does, bit for bit,
    and the backward from kept states equals the one that recomputes them."""
    ins = {k: v.detach() for k, v in _inputs(30, (B_, N_, 30), seed=9).items()}
    kw = dict(delta_softplus=True, chunk_size=8)
    out_a, last_a, kept = ss.selective_scan_ref_fwd(**ins, **kw, keep=True)
    out_b, last_b, empty = ss.selective_scan_ref_fwd(**ins, **kw, keep=False)
    assert torch.equal(out_a, out_b) and torch.equal(last_a, last_b)
    assert kept[0].shape == (2, 8, B_, 4, N_, D_) and kept[1].shape == (2, 8, B_, 4, D_)
    assert empty[0].numel() == empty[1].numel() == 0
    dout, dlast = torch.randn_like(out_a), torch.randn_like(last_a)
    for x, y in zip(selective_scan_ref_bwd(dout, dlast, **ins, **kw, kept=kept),
                    selective_scan_ref_bwd(dout, dlast, **ins, **kw)):
        torch.testing.assert_close(x, y, atol=0, rtol=0)


def test_the_op_keeps_states_only_when_autograd_will_use_them(monkeypatch):
    """The wrapper asks the op to keep its states exactly when a backward can follow, and the op obeys."""
    calls = []
    op = torch.ops.harness.selective_scan

    def spy(*args):
        res = op(*args)
        calls.append((args[-1], [tuple(t.shape) for t in res[2:]]))
        return res

    monkeypatch.setattr(torch.ops.harness, "selective_scan", spy)
    ins = _inputs(12, (B_, N_, 12), seed=10)
    selective_scan(**ins, delta_softplus=True, chunk_size=4).sum().backward()
    with torch.no_grad():
        selective_scan(**ins, delta_softplus=True, chunk_size=4)
    selective_scan(**{k: v.detach() for k, v in ins.items()}, delta_softplus=True, chunk_size=4)
    assert calls == [(True, [(2, 4, B_, 3, N_, D_), (2, 4, B_, 3, D_)]), (False, [(0,), (0,)]), (False, [(0,), (0,)])]


def test_softplus_equals_torch_to_fp32_rounding():
    """Over the whole range (denormal results, delta inits near -7, the threshold, large inputs)."""
    x = torch.cat([torch.linspace(-110, 110, 200_001), torch.tensor([-7.0, 19.999, 20.0, 20.001, 1e30, -1e30]),
                   torch.randn(100_000, generator=torch.Generator().manual_seed(11)) * 6 - 3])
    torch.testing.assert_close(ss.softplus(x), torch.nn.functional.softplus(x), atol=1e-44, rtol=5e-7)  # denormals
    exact = torch.nn.functional.softplus(x.double())
    ok = exact > torch.finfo(torch.float32).tiny  # normal fp32 results: within 2 ulps of the exact value
    assert ((ss.softplus(x).double() - exact).abs() / exact)[ok].max() < 2.5e-7


def test_states_too_large_to_keep_are_recomputed(monkeypatch):
    """Above KEEP_MAX_ELEMS the forward keeps nothing and the backward recomputes: same gradients."""
    ins = _inputs(20, (B_, N_, 20), seed=12)
    w = torch.randn(B_, D_, 20)
    kept = torch.autograd.grad((selective_scan(**ins, delta_softplus=True) * w).sum(), list(ins.values()))
    monkeypatch.setattr(ss, "KEEP_MAX_ELEMS", B_ * D_ * 20 * N_ - 1)
    assert not ss.keeps_states(ins["u"], ins["A"], True) and ss.keeps_states(ins["u"][:1], ins["A"], True)
    recomputed = torch.autograd.grad((selective_scan(**ins, delta_softplus=True) * w).sum(), list(ins.values()))
    for name, x, y in zip(ins, kept, recomputed):
        torch.testing.assert_close(x, y, atol=0, rtol=0, msg=f"grad of {name}")
