"""The ``mamba`` mixer: mamba_ssm's ``Mamba`` (Gu & Dao, arXiv 2312.00752) plus the knobs the SSM
ablations need, on the fused kernel where present and the reference scan everywhere else.

With ``scan="raster"`` (default) parameter names, shapes and inits are exactly mamba_ssm's, so state
dicts load both ways: in_proj, conv1d, x_proj, dt_proj (weight uniform +-dt_rank^-0.5*dt_scale, bias =
softplus^-1(dt), dt log-uniform in [dt_min, dt_max]), A_log (S4D-real: log(1..N)), D (ones), out_proj.

Ablation knobs:
* ``selective=False``: an LTI SSM: Delta, B, C are learned parameters (``dt_bias`` (d_inner,), ``B`` and
  ``C`` (d_inner, d_state)) instead of x_proj outputs, so they do not depend on the input (S4D-style).
* ``A_init``: ``s4d_real`` (A_n = -(n+1)), ``s4d_lin`` (real part of S4D-Lin, A_n = -1/2) or ``random``
  (A = -exp(N(0, 1))), the variants of the Mamba paper's A-initialisation ablation.
* ``discretization``: ``zoh`` (exp(Delta A)) or ``euler`` (1 + Delta A; reference scan only).
* ``scan``: raster | bidirectional | cross4 | sgn (``harness.modules.scan_order``). Several directions
  share in_proj, the causal conv (run along each direction's order), the z gate and out_proj; each
  direction keeps its own x_proj, dt_proj, A_log and D (VMamba's split), under ``directions.<k>.``.
* ``causal=False``: the short conv is centred instead of causal (the scan itself stays one-directional
  per scan path; use ``scan`` for non-causal mixing).

The causal short conv runs on causal_conv1d's CUDA kernel where installed (``harness.kernels.short_conv``;
``impl='ref'`` keeps torch's), as in mamba_ssm's blocks; ``last_backend`` then names both kernels. Where
mamba_ssm's fast path covers the configuration (raster, causal, selective, zoh) and its kernels run, the
whole mixer after in_proj is mamba_ssm's ``mamba_inner_fn`` on this module's parameters, as in its
``Mamba`` (``harness.kernels.fused_path``; ``last_backend`` ``mamba_ssm-fused``).

Special inits and wrapper inits: dt_proj.weight/bias, A_log and D are marked ``_no_reinit`` (mamba_ssm
marks dt_proj.bias); model code must initialise through ``apply_init(model, fn)``, which runs
``model.apply(fn)`` and then restores every ``_no_reinit`` parameter.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.kernels import fused_path
from harness.kernels.ops import IMPLS, resolve_impl, selective_scan
from harness.kernels.selective_scan import DISCRETIZATIONS, selective_scan_fn
from harness.kernels.short_conv import FUSED_CONV_BACKEND, causal_conv1d, fused_conv_usable
from harness.modules.scan_order import invert, num_directions, reorder, scan_orders

A_INITS = ("s4d_real", "s4d_lin", "random")


def apply_init(model: nn.Module, init_fn: Callable[[nn.Module], None]) -> nn.Module:
    """``model.apply(init_fn)`` that keeps every parameter marked ``_no_reinit`` (special SSM inits)."""
    keep = {n: p.detach().clone() for n, p in model.named_parameters() if getattr(p, "_no_reinit", False)}
    model.apply(init_fn)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in keep:
                p.copy_(keep[n])
    return model


def _protect(*params: nn.Parameter, no_weight_decay: bool = True) -> None:
    for p in params:
        p._no_reinit = True
        if no_weight_decay:
            p._no_weight_decay = True


def inv_softplus_dt(n: int, dt_min: float, dt_max: float, dt_init_floor: float) -> torch.Tensor:
    """softplus^-1 of dt log-uniform in [dt_min, dt_max] (mamba_ssm's dt bias init), shape (n,)."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))


def a_log_init(kind: str, d_inner: int, d_state: int) -> torch.Tensor:
    """A_log (d_inner, d_state) fp32 with A = -exp(A_log)."""
    if kind == "s4d_real":
        return torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1)
    if kind == "s4d_lin":
        return torch.full((d_inner, d_state), math.log(0.5))
    if kind == "random":
        return torch.randn(d_inner, d_state)
    raise ValueError(f"unknown A_init {kind!r}; use one of {A_INITS}")


def _add_ssm_params(m: nn.Module, d_inner: int, d_state: int, dt_rank: int, selective: bool, A_init: str,
                    dt_min: float, dt_max: float, dt_init: str, dt_scale: float, dt_init_floor: float) -> None:
    """Register one direction's SSM parameters on ``m`` with mamba_ssm's names and inits."""
    if selective:
        m.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        m.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        std = dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(m.dt_proj.weight, std)
        elif dt_init == "random":
            nn.init.uniform_(m.dt_proj.weight, -std, std)
        else:
            raise ValueError(f"unknown dt_init {dt_init!r}; use random or constant")
        with torch.no_grad():
            m.dt_proj.bias.copy_(inv_softplus_dt(d_inner, dt_min, dt_max, dt_init_floor))
        _protect(m.dt_proj.weight, no_weight_decay=False)
        _protect(m.dt_proj.bias)
    else:
        m.dt_bias = nn.Parameter(inv_softplus_dt(d_inner, dt_min, dt_max, dt_init_floor))
        m.B = nn.Parameter(torch.ones(d_inner, d_state))
        m.C = nn.Parameter(torch.randn(d_inner, d_state) * d_state**-0.5)
        _protect(m.dt_bias, m.B, m.C)
    m.A_log = nn.Parameter(a_log_init(A_init, d_inner, d_state))
    m.D = nn.Parameter(torch.ones(d_inner))
    _protect(m.A_log, m.D)


class Mamba(nn.Module):
    """Mamba mixer: (B, L, dim) -> (B, L, dim); see the module docstring for the knobs."""

    def __init__(
        self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank: int | str = "auto",
        dt_min: float = 0.001, dt_max: float = 0.1, dt_init: str = "random", dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False, scan: str = "raster",
        impl: str = "auto", causal: bool = True, selective: bool = True, A_init: str = "s4d_real",
        discretization: str = "zoh", chunk_size: int = 0,
    ):
        super().__init__()
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"unknown discretization {discretization!r}; use one of {DISCRETIZATIONS}")
        self.d_model, self.d_state, self.d_conv, self.expand = dim, d_state, d_conv, expand
        self.d_inner = int(expand * dim)
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else int(dt_rank)
        self.scan, self.impl, self.causal, self.selective = scan, impl, causal, selective
        self.discretization, self.chunk_size = discretization, chunk_size
        self.last_backend: str | None = None
        k = num_directions(scan)
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; use one of {IMPLS}")

        self.in_proj = nn.Linear(dim, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=conv_bias)
        ssm_kw = dict(d_inner=self.d_inner, d_state=d_state, dt_rank=self.dt_rank, selective=selective,
                      A_init=A_init, dt_min=dt_min, dt_max=dt_max, dt_init=dt_init, dt_scale=dt_scale,
                      dt_init_floor=dt_init_floor)
        self.directions = None
        if k == 1:
            _add_ssm_params(self, **ssm_kw)
        else:
            self.directions = nn.ModuleList(nn.Module() for _ in range(k))
            for d in self.directions:
                _add_ssm_params(d, **ssm_kw)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=bias)

    def _direction(self, k: int) -> nn.Module:
        return self if self.directions is None else self.directions[k]

    def _conv(self, x: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """Depthwise short conv + SiLU along the last dim. x: (B, d_inner, L) -> (B, d_inner, L)."""
        if fused:
            return causal_conv1d(x, self.conv1d.weight[:, 0], self.conv1d.bias, "silu")
        l = x.shape[-1]
        start = 0 if self.causal else (self.d_conv - 1) // 2
        return F.silu(self.conv1d(x)[..., start:start + l])

    def _ssm_inputs(self, p: nn.Module, x: torch.Tensor):
        """delta, B, C, delta_bias for the scan. x: (B, d_inner, L)."""
        if not self.selective:
            return torch.zeros_like(x), p.B, p.C, p.dt_bias.float()
        x_dbl = p.x_proj(x.transpose(1, 2))  # (B, L, dt_rank + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, p.dt_proj.weight).transpose(1, 2)  # (B, d_inner, L); bias goes in the scan
        return delta, B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), p.dt_proj.bias.float()

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None, perm: torch.Tensor | None = None) -> torch.Tensor:
        l = x.shape[1]
        backend = resolve_impl(self.impl, x.device, selective_scan_fn is not None, self.discretization == "zoh")
        orders = scan_orders(self.scan, l, shape, perm, x.device)
        fused_conv = fused_conv_usable(x, self.d_conv, self.causal, self.impl)
        if (self.scan == "raster" and self.causal and self.selective and self.discretization == "zoh"
                and fused_path.usable(fused_path.mamba_inner_fn, backend, fused_conv)):
            self.last_backend = fused_path.FUSED_PATH_BACKEND
            return self._fused_forward(x)
        self.last_backend = f"{backend}+{FUSED_CONV_BACKEND}" if fused_conv else backend
        xz = self.in_proj(x).transpose(1, 2)  # (B, 2*d_inner, L)
        xi, z = xz.chunk(2, dim=1)
        gate_in_scan = orders == [None]  # raster: z is fused into the scan as in mamba_ssm
        y = 0
        for k, order in enumerate(orders):
            p = self._direction(k)
            u = self._conv(reorder(xi, order, dim=-1), fused_conv)
            delta, B, C, delta_bias = self._ssm_inputs(p, u)
            yk = selective_scan(
                u, delta, -torch.exp(p.A_log.float()), B, C, p.D.float(), z if gate_in_scan else None,
                delta_bias, True, backend=backend, chunk_size=self.chunk_size, discretization=self.discretization,
            )
            y = y + (yk if order is None else reorder(yk, invert(order), dim=-1))
        if not gate_in_scan:
            y = y * F.silu(z)
        return self.out_proj(y.transpose(1, 2))

    def _fused_forward(self, x: torch.Tensor) -> torch.Tensor:
        """in_proj, then ``mamba_inner_fn`` on this module's conv, x_proj, dt_proj, A, D and out_proj.

        in_proj is computed as ``W @ x^T`` so that xz comes out (B, 2*d_inner, L) with L contiguous, the
        layout the kernels read (``in_proj(x).transpose(1, 2)`` would cost the function a full copy).
        """
        b, l, _ = x.shape
        xz = self.in_proj.weight @ x.reshape(b * l, -1).t()  # (2*d_inner, B*L)
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias.to(xz.dtype)[:, None]
        xz = xz.view(-1, b, l).transpose(0, 1)
        return fused_path.mamba_inner_fn(
            xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight, self.dt_proj.weight, self.out_proj.weight,
            self.out_proj.bias, -torch.exp(self.A_log.float()), None, None, self.D.float(),
            delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
        )

    # ---- incremental decoding (raster, causal only) ---------------------------------------------------

    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """Constant-size decoding state: the conv window and the SSM state (fp32), whatever ``max_len``."""
        if self.scan != "raster" or not self.causal:
            raise ValueError("incremental decoding needs scan='raster' and causal=True")
        return {
            "conv": torch.zeros(batch_size, self.d_inner, self.d_conv, device=device, dtype=dtype),
            "ssm": torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=torch.float32),
        }

    def step(self, x_t: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """One token: x_t (B, dim) -> (y_t (B, dim), new state); equals the matching row of ``forward``."""
        self.last_backend = "reference"
        xi, z = self.in_proj(x_t).chunk(2, dim=-1)  # (B, d_inner) each
        conv = torch.cat([state["conv"][..., 1:], xi[..., None].to(state["conv"].dtype)], dim=-1)
        u = (conv * self.conv1d.weight[:, 0]).sum(-1)
        if self.conv1d.bias is not None:
            u = u + self.conv1d.bias
        u = F.silu(u).float()
        if self.selective:
            dt, B, C = torch.split(self.x_proj(u.to(x_t.dtype)), [self.dt_rank, self.d_state, self.d_state], dim=-1)
            delta = F.softplus(F.linear(dt, self.dt_proj.weight).float() + self.dt_proj.bias.float())
            B, C = B.float()[:, None, :], C.float()[:, None, :]  # (B, 1, N)
        else:
            delta = F.softplus(self.dt_bias.float()).expand_as(u)
            B, C = self.B.float(), self.C.float()
        dA = delta[..., None] * -torch.exp(self.A_log.float())
        decay = torch.exp(dA) if self.discretization == "zoh" else 1.0 + dA
        h = decay * state["ssm"] + (delta * u)[..., None] * B
        y = (h * C).sum(-1) + self.D.float() * u
        y = (y * F.silu(z.float())).to(x_t.dtype)
        return self.out_proj(y), {"conv": conv, "ssm": h}
