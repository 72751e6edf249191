"""The ``mamba2`` mixer: mamba_ssm's exact layout, inits, scan orders, incremental decoding, backend."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.modules.mamba import apply_init
from harness.modules.registry import create_mixer

# mamba_ssm.modules.mamba2.Mamba2(d_model=32, d_state=8, headdim=16) state dict, from its source:
# d_inner = 64, nheads = 4, ngroups = 1, in_proj out = 2*64 + 2*1*8 + 4 = 148, conv_dim = 64 + 16 = 80.
MAMBA2_SSM_LAYOUT = {
    "dt_bias": (4,),
    "A_log": (4,),
    "D": (4,),
    "in_proj.weight": (148, 32),
    "conv1d.weight": (80, 1, 4),
    "conv1d.bias": (80,),
    "norm.weight": (64,),
    "out_proj.weight": (32, 64),
}


def test_state_dict_has_mamba_ssm_layout_and_loads_both_ways():
    m = create_mixer("mamba2", 32, d_state=8, headdim=16)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == MAMBA2_SSM_LAYOUT
    m.load_state_dict({k: torch.randn(s) for k, s in MAMBA2_SSM_LAYOUT.items()}, strict=True)
    other = create_mixer("mamba2", 32, d_state=8, headdim=16)
    other.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(1, 5, 32)
    torch.testing.assert_close(m(x), other(x))


def test_special_inits_survive_apply_init():
    m = create_mixer("mamba2", 16, d_state=4, headdim=8, dt_min=0.01, dt_max=0.02, A_init_range=(2, 3))

    def zero_everything(mod):
        for p in mod.parameters(recurse=False):
            nn.init.zeros_(p)

    apply_init(m, zero_everything)
    dt = F.softplus(m.dt_bias)
    assert dt.min() >= 0.01 * 0.999 and dt.max() <= 0.02 * 1.001
    A = torch.exp(m.A_log)
    assert A.min() >= 2 and A.max() <= 3
    assert torch.equal(m.D, torch.ones(4))
    assert torch.count_nonzero(m.in_proj.weight) == 0


@pytest.mark.parametrize("kw", [{}, {"ngroups": 2}, {"d_conv": 2, "expand": 1, "headdim": 4}])
def test_step_equals_forward(kw, decode):
    torch.manual_seed(0)
    m = create_mixer("mamba2", 16, d_state=4, headdim=kw.pop("headdim", 8), chunk_size=4, **kw)
    x = torch.randn(2, 11, 16)
    full = m(x)
    steps, _ = decode(m, x)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


def test_chunk_size_does_not_change_the_output():
    torch.manual_seed(0)
    a = create_mixer("mamba2", 16, d_state=4, headdim=8, chunk_size=3)
    b = create_mixer("mamba2", 16, d_state=4, headdim=8, chunk_size=64)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 10, 16)
    torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=1e-5)


def test_scan_orders():
    torch.manual_seed(0)
    x = torch.randn(2, 12, 16)
    raster = create_mixer("mamba2", 16, d_state=4, headdim=8)
    sgn = create_mixer("mamba2", 16, d_state=4, headdim=8, scan="sgn")
    sgn.load_state_dict(raster.state_dict())
    torch.testing.assert_close(sgn(x, perm=torch.arange(12).expand(2, 12)), raster(x), atol=1e-6, rtol=1e-5)
    for scan, n_dir in (("bidirectional", 2), ("cross4", 4)):
        m = create_mixer("mamba2", 16, d_state=4, headdim=8, scan=scan)
        assert len(m.directions) == n_dir and f"directions.{n_dir - 1}.D" in m.state_dict()
        y = m(x, shape=(3, 4))
        y.sum().backward()
        assert y.shape == x.shape and all(p.grad is not None for p in m.parameters())


def test_backend_reporting_and_fused_request_without_kernel():
    m = create_mixer("mamba2", 16, d_state=4, headdim=8)
    m(torch.randn(1, 4, 16))
    assert m.last_backend == "reference"
    with pytest.raises(RuntimeError, match="fused"):
        create_mixer("mamba2", 16, headdim=8, impl="fused")(torch.randn(1, 4, 16))
    with pytest.raises(ValueError, match="heads"):
        create_mixer("mamba2", 16, headdim=12)
