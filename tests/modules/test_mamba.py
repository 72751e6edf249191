"""The ``mamba`` mixer: mamba_ssm's exact layout, special inits that survive wrappers, LTI mode, scan
orders, incremental decoding and backend reporting."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.modules.mamba import apply_init
from harness.modules.registry import create_mixer

# mamba_ssm.modules.mamba_simple.Mamba(d_model=32, d_state=8) state dict, from its source:
# d_inner = 64, dt_rank = ceil(32 / 16) = 2, d_conv = 4, bias=False, conv_bias=True.
MAMBA_SSM_LAYOUT = {
    "in_proj.weight": (128, 32),
    "conv1d.weight": (64, 1, 4),
    "conv1d.bias": (64,),
    "x_proj.weight": (18, 64),
    "dt_proj.weight": (64, 2),
    "dt_proj.bias": (64,),
    "A_log": (64, 8),
    "D": (64,),
    "out_proj.weight": (32, 64),
}


def test_state_dict_has_mamba_ssm_layout_and_loads_both_ways():
    m = create_mixer("mamba", 32, d_state=8)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == MAMBA_SSM_LAYOUT
    foreign = {k: torch.randn(s) for k, s in MAMBA_SSM_LAYOUT.items()}  # what a mamba_ssm Mamba would hold
    m.load_state_dict(foreign, strict=True)
    other = create_mixer("mamba", 32, d_state=8)
    other.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(1, 5, 32)
    torch.testing.assert_close(m(x), other(x))


def test_special_inits_and_their_survival_through_apply_init():
    dt_min, dt_max = 0.002, 0.05
    model = nn.Sequential(nn.Linear(16, 16), create_mixer("mamba", 16, d_state=6, dt_min=dt_min, dt_max=dt_max))
    mixer = model[1]

    def wrapper_init(mod):  # a typical model-level init: re-initialise every Linear and 1-D parameter
        if isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, std=0.02)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        for p in mod.parameters(recurse=False):
            if p.dim() <= 2 and not isinstance(mod, nn.Linear):
                nn.init.zeros_(p)

    apply_init(model, wrapper_init)
    dt = F.softplus(mixer.dt_proj.bias)
    assert dt.min() >= dt_min * 0.999 and dt.max() <= dt_max * 1.001
    assert torch.equal(mixer.A_log, torch.log(torch.arange(1, 7.0)).repeat(32, 1))
    assert torch.equal(mixer.D, torch.ones(32))
    bound = mixer.dt_rank**-0.5
    assert mixer.dt_proj.weight.abs().max() <= bound and mixer.dt_proj.weight.std() > 0.1 * bound
    assert mixer.in_proj.weight.std() < 0.03  # unprotected layers were re-initialised
    assert mixer.dt_proj.bias._no_reinit and mixer.A_log._no_weight_decay and mixer.D._no_weight_decay


@pytest.mark.parametrize("A_init,expected", [("s4d_real", lambda n: torch.arange(1, n + 1.0)), ("s4d_lin", lambda n: torch.full((n,), 0.5))])
def test_A_init(A_init, expected):
    m = create_mixer("mamba", 16, d_state=5, A_init=A_init)
    torch.testing.assert_close(torch.exp(m.A_log), expected(5).repeat(32, 1))


def _scan_inputs(m, x):
    """delta, B, C the scan receives, recorded from the mixer's own path."""
    u = m._conv(m.in_proj(x).transpose(1, 2).chunk(2, dim=1)[0])
    delta, B, C, bias = m._ssm_inputs(m, u)
    return F.softplus(delta + bias[:, None]).expand_as(u), B, C


def test_lti_mode_makes_delta_B_C_input_independent():
    torch.manual_seed(0)
    lti, sel = create_mixer("mamba", 16, d_state=4, selective=False), create_mixer("mamba", 16, d_state=4)
    x1, x2 = torch.randn(2, 9, 16), torch.randn(2, 9, 16)
    for a, b in zip(_scan_inputs(lti, x1), _scan_inputs(lti, x2)):
        assert torch.equal(a, b)
    assert not any(torch.allclose(a, b) for a, b in zip(_scan_inputs(sel, x1), _scan_inputs(sel, x2)))
    assert "x_proj.weight" not in lti.state_dict() and lti.B.shape == (32, 4)
    assert lti(x1).shape == x1.shape


@pytest.mark.parametrize("kw", [{}, {"selective": False}, {"discretization": "euler"}, {"A_init": "random", "d_conv": 3, "expand": 1}])
def test_step_equals_forward(kw, decode):
    torch.manual_seed(0)
    m = create_mixer("mamba", 16, d_state=4, **kw)
    x = torch.randn(2, 11, 16)
    full = m(x)
    steps, state = decode(m, x)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
    assert state["ssm"].shape == (2, m.d_inner, 4)  # constant memory


def test_scan_orders_run_and_sgn_identity_equals_raster():
    torch.manual_seed(0)
    x = torch.randn(2, 12, 16)
    raster = create_mixer("mamba", 16, d_state=4)
    sgn = create_mixer("mamba", 16, d_state=4, scan="sgn")
    sgn.load_state_dict(raster.state_dict())  # one direction: same layout
    identity = torch.arange(12).expand(2, 12)
    torch.testing.assert_close(sgn(x, perm=identity), raster(x), atol=1e-6, rtol=1e-5)
    perm = torch.stack([torch.randperm(12) for _ in range(2)])
    inv = torch.argsort(perm, dim=1)
    # scanning the sorted tokens == a raster scan of the pre-sorted sequence, un-sorted afterwards
    x_sorted = torch.gather(x, 1, perm[..., None].expand_as(x))
    expected = torch.gather(raster(x_sorted), 1, inv[..., None].expand_as(x))
    torch.testing.assert_close(sgn(x, perm=perm), expected, atol=1e-5, rtol=1e-5)
    for scan, n_dir in (("bidirectional", 2), ("cross4", 4)):
        m = create_mixer("mamba", 16, d_state=4, scan=scan)
        assert len(m.directions) == n_dir and "directions.1.A_log" in m.state_dict()
        y = m(x, shape=(3, 4))
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_bidirectional_is_reversal_symmetric():
    """Swapping the two directions' parameters and reversing the input reverses the output (causal=False conv
    is not needed: the shared causal conv runs along each direction's own order)."""
    torch.manual_seed(0)
    m = create_mixer("mamba", 16, d_state=4, scan="bidirectional")
    swapped = create_mixer("mamba", 16, d_state=4, scan="bidirectional")
    sd = m.state_dict()
    sd_sw = {k.replace("directions.0", "directions.X").replace("directions.1", "directions.0").replace("directions.X", "directions.1"): v for k, v in sd.items()}
    swapped.load_state_dict(sd_sw)
    x = torch.randn(1, 10, 16)
    torch.testing.assert_close(swapped(x.flip(1)), m(x).flip(1), atol=1e-5, rtol=1e-5)


def test_backend_reporting_and_fused_request_without_kernel():
    m = create_mixer("mamba", 16, d_state=4)
    m(torch.randn(1, 4, 16))
    assert m.last_backend == "reference"
    with pytest.raises(RuntimeError, match="fused"):
        create_mixer("mamba", 16, impl="fused")(torch.randn(1, 4, 16))
    with pytest.raises(ValueError, match="impl"):
        create_mixer("mamba", 16, impl="cuda")
    with pytest.raises(ValueError, match="incremental"):
        create_mixer("mamba", 16, scan="bidirectional").init_state(1, 4, torch.device("cpu"), torch.float32)


def test_gradients_reach_every_parameter():
    m = create_mixer("mamba", 16, d_state=4, scan="cross4")
    m(torch.randn(2, 12, 16), shape=(3, 4)).square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert math.isfinite(sum(p.grad.sum().item() for p in m.parameters()))


def test_a_model_lists_each_kernel_once_when_mixers_name_two():
    """A mamba layer on both fused kernels says ``mamba_ssm-cuda+causal_conv1d-cuda``; the row's backend
    lists each kernel once beside the other mixers' (a gated_cnn on the conv kernel alone)."""
    from torch import nn

    from harness.modules.registry import backends_of

    a, b, c = nn.Module(), nn.Module(), nn.Module()
    a.last_backend, b.last_backend, c.last_backend = "mamba_ssm-cuda+causal_conv1d-cuda", "causal_conv1d-cuda", ""
    assert backends_of(nn.Sequential(a, b, c)) == "causal_conv1d-cuda+mamba_ssm-cuda"


@pytest.mark.parametrize("kw", [
    {}, {"scan": "bidirectional"}, {"scan": "cross4"}, {"scan": "sgn"}, {"selective": False},
    {"discretization": "euler"}, {"causal": False, "scan": "bidirectional"},
])
def test_cpu_path_equals_the_per_step_loop(monkeypatch, kw):
    """The mixer on the CPU reference scan (custom op, kept states, analytic backward) computes what it
    computes on the per-step loop with autograd: outputs and every parameter's and the input's gradient,
    for each scan order the families use (the reverse and column orders of bidirectional and cross4, a
    per-sample sgn permutation), LTI and Euler."""
    import harness.modules.mamba as mamba_module
    from harness.kernels.selective_scan import selective_scan_loop

    torch.manual_seed(1)
    m = create_mixer("mamba", 16, d_state=4, **kw)
    x = torch.randn(3, 12, 16, requires_grad=True)
    perm = torch.stack([torch.randperm(12) for _ in range(3)]) if kw.get("scan") == "sgn" else None
    params = [x, *m.parameters()]

    def run():
        y = m(x, shape=(3, 4), perm=perm)
        return y, torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), params)

    y_ref, g_ref = run()

    def loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, *, backend, chunk_size,
             discretization):
        return selective_scan_loop(u, delta, A, B, C, D, z, delta_bias, delta_softplus, discretization=discretization)

    monkeypatch.setattr(mamba_module, "selective_scan", loop)
    y_loop, g_loop = run()
    torch.testing.assert_close(y_ref, y_loop, atol=1e-5, rtol=1e-5)
    for i, (a, b) in enumerate(zip(g_ref, g_loop)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=f"grad {i}")
