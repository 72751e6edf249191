"""The mixers' fused path (mamba_ssm's ``mamba_inner_fn`` / ``mamba_split_conv1d_scan_combined``): which
configurations take it, that it computes what the unfused path computes from the same parameters, that
the backend column names it, and that FLOPs do not depend on it. On CPU through stand-in kernels with the
real functions' signatures (``tests/kernel_standins.py``); the ``gpu`` tests run the real kernels."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from harness.kernels import fused_path
from harness.kernels.short_conv import torch_conv_only
from harness.measure.flops import count_flops
from harness.modules.registry import create_mixer

FUSED, KERNELS = "mamba_ssm-fused", "mamba_ssm-cuda+causal_conv1d-cuda"
TINY = {"mamba": {"d_state": 4}, "mamba2": {"d_state": 8, "headdim": 8, "chunk_size": 8}}


def _run(m, x, shape=None):
    """Output, input gradient and parameter gradients of one forward/backward, and the backend that ran."""
    m.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    y = m(x, shape) if shape else m(x)
    y.square().mean().backward()
    return y.detach(), [x.grad, *(p.grad for p in m.parameters())], m.last_backend


# what ran, per configuration, with every kernel available (stand-ins on CPU)
DISPATCH = [
    ("mamba", {}, nullcontext, FUSED),
    ("mamba", {"impl": "fused"}, nullcontext, FUSED),
    ("mamba", {"bias": True, "conv_bias": False}, nullcontext, FUSED),
    ("mamba", {"scan": "bidirectional"}, nullcontext, KERNELS),
    ("mamba", {"causal": False}, nullcontext, "mamba_ssm-cuda"),  # centred conv: neither the conv kernel nor the fused path
    ("mamba", {"selective": False}, nullcontext, KERNELS),  # mamba_inner_fn computes delta, B, C from x_proj
    ("mamba", {"discretization": "euler"}, nullcontext, "reference+causal_conv1d-cuda"),
    ("mamba", {"d_conv": 5}, nullcontext, "mamba_ssm-cuda"),  # causal_conv1d takes 2-4 taps
    ("mamba", {"impl": "ref"}, nullcontext, "reference"),
    ("mamba", {}, torch_conv_only, "mamba_ssm-cuda"),
    ("mamba", {}, fused_path.unfused_only, KERNELS),
    ("mamba2", {}, nullcontext, FUSED),
    ("mamba2", {"ngroups": 2, "bias": True}, nullcontext, FUSED),
    ("mamba2", {"scan": "bidirectional"}, nullcontext, KERNELS),
    ("mamba2", {"d_conv": 5}, nullcontext, "mamba_ssm-cuda"),
    ("mamba2", {"impl": "ref"}, nullcontext, "reference"),
    ("mamba2", {}, torch_conv_only, "mamba_ssm-cuda"),
    ("mamba2", {}, fused_path.unfused_only, KERNELS),
]


@pytest.mark.parametrize("kind,kw,context,backend", DISPATCH)
def test_dispatch_table_and_the_fused_path_computes_the_unfused_result(standin_kernels, kind, kw, context, backend):
    """Each configuration runs what the table says; whatever ran, output and every gradient equal the
    reference path's on the same parameters (so the fused path passes the module's own parameters, in the
    layout the functions expect)."""
    torch.manual_seed(0)
    m = create_mixer(kind, 16, **{**TINY[kind], **kw})
    ref = create_mixer(kind, 16, **{**TINY[kind], **kw, "impl": "ref"})
    ref.load_state_dict(m.state_dict())
    x = torch.randn(2, 12, 16)
    shape = (3, 4) if kw.get("scan") else None
    with context():
        y, grads, ran = _run(m, x, shape)
    assert ran == backend
    y_ref, grads_ref, _ = _run(ref, x, shape)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-4)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind,fn", [("mamba", "mamba_inner_fn"), ("mamba2", "mamba_split_conv1d_scan_combined")])
def test_without_the_fused_function_the_kernels_run_apart(standin_kernels, monkeypatch, kind, fn):
    monkeypatch.setattr(fused_path, fn, None)
    m = create_mixer(kind, 16, **TINY[kind])
    m(torch.randn(1, 8, 16))
    assert m.last_backend == KERNELS


@pytest.mark.parametrize("kind", ["mamba", "mamba2"])
def test_flops_do_not_depend_on_the_fused_path(standin_kernels, kind):
    """The stand-ins, like the real kernels, are invisible to both counters: the fused path must not run while
    one counts, or the counts would lose the scan and the conv."""
    torch.manual_seed(0)
    m = create_mixer(kind, 16, **TINY[kind])
    x = torch.randn(2, 12, 16)
    loss = lambda: m(x).square().mean()  # noqa: E731
    fused = count_flops(m, (x,), loss)
    m(x)
    assert m.last_backend == FUSED  # the counters' own calls did not leave the label of the unfused path behind
    with fused_path.unfused_only():
        unfused = count_flops(m, (x,), loss)
    assert (fused.flops_fwd, fused.flops_train_step, fused.macs_fwd_fvcore) == (
        unfused.flops_fwd, unfused.flops_train_step, unfused.macs_fwd_fvcore)
    assert not fused.skipped and fused.macs_fwd_fvcore == fused.flops_fwd / 2
    reference = count_flops(create_mixer(kind, 16, **TINY[kind], impl="ref"), (x,), None)
    assert fused.flops_fwd == pytest.approx(reference.flops_fwd, rel=0.02)  # the conv kernel counts L, torch L + K - 1


def test_the_measured_row_names_the_fused_path(standin_kernels):
    from harness.config.sections import MeasureConfig
    from harness.measure import measure_model

    cfg = MeasureConfig(warmup_iters=1, warmup_s=0.0, min_iters=2, min_time_s=0.0, max_iters=3)
    m = create_mixer("mamba", 16, d_state=4)
    row = measure_model(m, (torch.randn(2, 12, 16),), None, cfg, "cpu")
    assert row["backend"] == FUSED and row["measure_status"] == "ok"


# ---- the real kernels (CUDA, mamba_ssm, causal_conv1d) -------------------------------------------------------

def real_kernels(test):
    for mark in (pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
                 pytest.mark.skipif(fused_path.mamba_inner_fn is None or fused_path.mamba_split_conv1d_scan_combined
                                    is None, reason="needs mamba_ssm and causal_conv1d")):
        test = mark(test)
    return test


@pytest.mark.parametrize("kind,fwd_tol,bwd_tol", [("mamba", 1e-4, 1e-3), ("mamba2", 5e-3, 1e-2)])  # SSD: TF32
@real_kernels
def test_real_fused_path_matches_the_reference(kind, fwd_tol, bwd_tol):
    from harness.benchmarks import conformance

    fwd, bwd = conformance.fused_path_errors(kind)
    assert fwd < fwd_tol and bwd < bwd_tol


@pytest.mark.parametrize("kind", ["mamba", "mamba2"])
@pytest.mark.parametrize("autocast", [False, True])
@real_kernels
def test_real_fused_path_matches_the_unfused_kernels_and_counts_the_same_flops(kind, autocast):
    """At suite-like widths, in fp32 and under bf16 autocast (the protocol's): same output and gradients
    as the scan and conv kernels apart, within the precision, and the same FLOPs."""
    from harness.benchmarks.conformance import max_rel_err

    torch.manual_seed(0)
    kw = {"d_state": 16} if kind == "mamba" else {"d_state": 64, "headdim": 64}
    m = create_mixer(kind, 256, **kw).cuda()
    x = torch.randn(2, 512, 256, device="cuda")
    with torch.autocast("cuda", torch.bfloat16, enabled=autocast):
        y, grads, ran = _run(m, x)
        with fused_path.unfused_only():
            y_ref, grads_ref, ran_ref = _run(m, x)
    assert (ran, ran_ref) == (FUSED, KERNELS)
    tol = 3e-2 if autocast else (1e-4 if kind == "mamba" else 5e-3)
    assert max_rel_err(y, y_ref) < tol
    assert max(max_rel_err(g, g_ref) for g, g_ref in zip(grads, grads_ref, strict=True)) < 10 * tol
    loss = lambda: m(x).square().mean()  # noqa: E731
    fused = count_flops(m, (x,), loss)
    with fused_path.unfused_only():
        unfused = count_flops(m, (x,), loss)
    assert (fused.flops_fwd, fused.flops_train_step, fused.macs_fwd_fvcore) == (
        unfused.flops_fwd, unfused.flops_train_step, unfused.macs_fwd_fvcore)
