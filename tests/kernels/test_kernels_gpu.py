"""Fused mamba_ssm and causal_conv1d kernels and modules against our references (CUDA + mamba_ssm only)."""

import pytest
import torch

from harness.benchmarks import conformance
from harness.kernels import fused_path, short_conv
from harness.kernels.selective_scan import selective_scan_fn
from harness.kernels.ssd import ssd_fn

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.skipif(selective_scan_fn is None or ssd_fn is None, reason="needs mamba_ssm"),
]


def test_selective_scan_kernel_matches_reference():
    fwd, bwd = conformance.selective_scan_errors()
    assert fwd < 1e-4 and bwd < 1e-3


def test_ssd_kernel_matches_reference():
    fwd, bwd = conformance.ssd_errors()
    assert fwd < 5e-3 and bwd < 1e-2  # Triton SSD uses TF32 matmuls (10-bit mantissa): 1.5e-3 seen on an H100


@pytest.mark.parametrize("kind", ["mamba", "mamba2"])
def test_mamba_ssm_state_dict_loads_into_ours_with_same_output(kind):
    fwd, bwd = conformance.module_errors(kind)
    assert fwd < 1e-3 and bwd < 1e-2


def test_auto_uses_the_fused_kernel_on_cuda():
    from harness.modules.registry import create_mixer

    for name, kw in (("mamba", {}), ("mamba2", {"headdim": 16})):
        m = create_mixer(name, 32, **kw).cuda()
        m(torch.randn(1, 64, 32, device="cuda"))
        expected = "mamba_ssm-cuda" if short_conv.causal_conv1d_fn is None else fused_path.FUSED_PATH_BACKEND
        assert expected in m.last_backend.split("+")


needs_causal_conv1d = pytest.mark.skipif(short_conv.causal_conv1d_fn is None, reason="needs causal_conv1d")


@needs_causal_conv1d
def test_causal_conv1d_kernel_matches_torch_conv():
    fwd, bwd = conformance.short_conv_errors()
    assert fwd < 1e-5 and bwd < 1e-4


@needs_causal_conv1d
@pytest.mark.parametrize("name,kw", [("mamba", {}), ("mamba", {"scan": "bidirectional"}), ("mamba2", {"headdim": 16}),
                                     ("gated_cnn", {"causal": True, "d_conv": 4})])
def test_mixers_run_the_short_conv_on_causal_conv1d_with_the_same_output_and_flops(name, kw):
    """The fused conv changes the kernel, not the layer: same output and gradients as torch's conv, the
    backend column names it, and the FLOP counts match (up to the torch path's K - 1 padded outputs).
    The SSM mixers keep their unfused path here (their fused path, which calls the conv kernel inside, is
    tested in tests/modules/test_fused_path.py)."""
    from harness.measure.flops import count_flops
    from harness.modules.registry import create_mixer

    torch.manual_seed(0)
    m = create_mixer(name, 64, **kw).cuda()
    x = torch.randn(2, 128, 64, device="cuda")
    shape = (8, 16) if kw.get("scan") else None

    def run():
        m.zero_grad()
        with fused_path.unfused_only():
            y = m(x, shape) if shape else m(x)
        y.square().mean().backward()
        return y.detach(), [p.grad.clone() for p in m.parameters()]

    y_fused, g_fused = run()
    assert short_conv.FUSED_CONV_BACKEND in m.last_backend.split("+")
    with short_conv.torch_conv_only():
        y_torch, g_torch = run()
        assert short_conv.FUSED_CONV_BACKEND not in m.last_backend
        torch_counts = count_flops(m, (x,), lambda: m(x).square().mean())
    assert conformance.max_rel_err(y_fused, y_torch) < 1e-4
    assert max(conformance.max_rel_err(a, b) for a, b in zip(g_fused, g_torch)) < 1e-3
    fused_counts = count_flops(m, (x,), lambda: m(x).square().mean())
    assert fused_counts.flops_fwd == pytest.approx(torch_counts.flops_fwd, rel=0.01)
    assert fused_counts.flops_train_step == pytest.approx(torch_counts.flops_train_step, rel=0.01)
    assert not [s for s in fused_counts.skipped if "conv" in s.lower()], fused_counts.skipped
    if fused_counts.macs_fwd_fvcore is not None and torch_counts.macs_fwd_fvcore is not None:
        assert fused_counts.macs_fwd_fvcore == pytest.approx(torch_counts.macs_fwd_fvcore, rel=0.01)
