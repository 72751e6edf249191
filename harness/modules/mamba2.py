"""The ``mamba2`` mixer: mamba_ssm's ``Mamba2`` (Dao & Gu, arXiv 2405.21060) on the SSD scan.

With ``scan="raster"`` parameter names and shapes are mamba_ssm's (in_proj -> [z, x, B, C, dt], conv1d over
xBC, dt_bias (softplus^-1 of dt log-uniform in [dt_min, dt_max]), A_log (log of U(A_init_range)), D, norm
(gated RMSNorm, ``norm_before_gate=False``, one group per B/C group), out_proj), so state dicts load both
ways. Used by AiM (arXiv 2408.12245) for autoregressive image generation, hence ``init_state``/``step``
(constant memory per token, no KV cache).

Several scan directions (``scan``: bidirectional | cross4 | sgn, ``harness.modules.scan_order``) share
in_proj, the conv (run along each order), the gated norm and out_proj; each keeps its own dt_bias, A_log
and D under ``directions.<k>.``. dt_bias, A_log and D are marked ``_no_reinit``: initialise models with
``harness.modules.mamba.apply_init``. The conv runs on causal_conv1d's CUDA kernel where installed, as in
mamba_ssm (``harness.kernels.short_conv``; ``impl='ref'`` keeps torch's). In raster order, where mamba_ssm's
kernels run, everything after in_proj is mamba_ssm's ``mamba_split_conv1d_scan_combined`` on this module's
parameters, as in its ``Mamba2`` (``harness.kernels.fused_path``; ``last_backend`` ``mamba_ssm-fused``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.kernels import fused_path
from harness.kernels.ops import IMPLS, resolve_impl, ssd_scan
from harness.kernels.short_conv import FUSED_CONV_BACKEND, causal_conv1d, fused_conv_usable
from harness.kernels.ssd import ssd_fn
from harness.modules.mamba import _protect, inv_softplus_dt
from harness.modules.scan_order import invert, num_directions, reorder, scan_orders


class GatedRMSNorm(nn.Module):
    """mamba_ssm's ``RMSNormGated`` (norm_before_gate=False): rmsnorm(x * silu(z)) per group, times weight."""

    def __init__(self, dim: int, eps: float = 1e-5, group_size: int | None = None):
        super().__init__()
        self.eps, self.group_size = eps, group_size or dim
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float() * F.silu(z.float())
        g = x.unflatten(-1, (-1, self.group_size))
        g = g * torch.rsqrt(g.square().mean(-1, keepdim=True) + self.eps)
        return (g.flatten(-2) * self.weight.float()).to(dtype)


def _add_head_params(m: nn.Module, nheads: int, A_init_range, dt_min, dt_max, dt_init_floor) -> None:
    lo, hi = A_init_range
    if not (lo > 0 and hi >= lo):
        raise ValueError(f"A_init_range must satisfy 0 < lo <= hi, got {A_init_range}")
    m.dt_bias = nn.Parameter(inv_softplus_dt(nheads, dt_min, dt_max, dt_init_floor))
    m.A_log = nn.Parameter(torch.log(torch.empty(nheads).uniform_(lo, hi)))
    m.D = nn.Parameter(torch.ones(nheads))
    _protect(m.dt_bias, m.A_log, m.D)


class Mamba2(nn.Module):
    """Mamba-2 mixer: (B, L, dim) -> (B, L, dim)."""

    def __init__(
        self, dim: int, d_state: int = 64, d_conv: int = 4, expand: int = 2, headdim: int = 64, ngroups: int = 1,
        chunk_size: int = 256, A_init_range: tuple[float, float] = (1, 16), dt_min: float = 0.001,
        dt_max: float = 0.1, dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False,
        scan: str = "raster", impl: str = "auto",
    ):
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; use one of {IMPLS}")
        self.d_model, self.d_state, self.d_conv, self.expand = dim, d_state, d_conv, expand
        self.d_inner = expand * dim
        if self.d_inner % headdim or ngroups <= 0 or (self.d_inner // headdim) % ngroups:
            raise ValueError(f"expand*dim={self.d_inner} must split into heads of {headdim} and {ngroups} groups")
        self.headdim, self.nheads, self.ngroups, self.chunk_size = headdim, self.d_inner // headdim, ngroups, chunk_size
        self.scan, self.impl = scan, impl
        self.last_backend: str | None = None
        k = num_directions(scan)

        self.in_proj = nn.Linear(dim, 2 * self.d_inner + 2 * ngroups * d_state + self.nheads, bias=bias)
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, padding=d_conv - 1,
                                bias=conv_bias)
        head_kw = dict(nheads=self.nheads, A_init_range=A_init_range, dt_min=dt_min, dt_max=dt_max,
                       dt_init_floor=dt_init_floor)
        self.directions = None
        if k == 1:
            _add_head_params(self, **head_kw)
        else:
            self.directions = nn.ModuleList(nn.Module() for _ in range(k))
            for d in self.directions:
                _add_head_params(d, **head_kw)
        self.norm = GatedRMSNorm(self.d_inner, eps=1e-5, group_size=self.d_inner // ngroups)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=bias)

    def _direction(self, k: int) -> nn.Module:
        return self if self.directions is None else self.directions[k]

    def _conv(self, x: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """Causal depthwise conv + SiLU. x: (B, conv_dim, L) -> (B, conv_dim, L)."""
        if fused:
            return causal_conv1d(x, self.conv1d.weight[:, 0], self.conv1d.bias, "silu")
        return F.silu(self.conv1d(x)[..., :x.shape[-1]])

    def _split(self, zxbcdt: torch.Tensor):
        return torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None, perm: torch.Tensor | None = None) -> torch.Tensor:
        b, l, _ = x.shape
        backend = resolve_impl(self.impl, x.device, ssd_fn is not None)
        orders = scan_orders(self.scan, l, shape, perm, x.device)
        fused_conv = fused_conv_usable(x, self.d_conv, impl=self.impl)
        if self.scan == "raster" and fused_path.usable(fused_path.mamba_split_conv1d_scan_combined, backend, fused_conv):
            self.last_backend = fused_path.FUSED_PATH_BACKEND
            return self._fused_forward(x)
        self.last_backend = f"{backend}+{FUSED_CONV_BACKEND}" if fused_conv else backend
        z, xBC, dt = self._split(self.in_proj(x))
        y = 0
        for k, order in enumerate(orders):
            p = self._direction(k)
            xk = self._conv(reorder(xBC, order, dim=1).transpose(1, 2), fused_conv).transpose(1, 2)
            xs, B, C = torch.split(xk, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
            yk = ssd_scan(
                xs.unflatten(-1, (self.nheads, self.headdim)), reorder(dt, order, dim=1), -torch.exp(p.A_log.float()),
                B.unflatten(-1, (self.ngroups, self.d_state)), C.unflatten(-1, (self.ngroups, self.d_state)),
                self.chunk_size, D=p.D, dt_bias=p.dt_bias, dt_softplus=True, backend=backend,
            )
            y = y + reorder(yk.flatten(-2), None if order is None else invert(order), dim=1)
        return self.out_proj(self.norm(y, z))

    def _fused_forward(self, x: torch.Tensor) -> torch.Tensor:
        """in_proj, then ``mamba_split_conv1d_scan_combined`` on this module's conv, dt_bias, A, D, gated norm
        (``norm_before_gate=False``, one group per B/C group) and out_proj."""
        return fused_path.mamba_split_conv1d_scan_combined(
            self.in_proj(x), self.conv1d.weight[:, 0], self.conv1d.bias, self.dt_bias, -torch.exp(self.A_log.float()),
            self.D, self.chunk_size, activation="silu", rmsnorm_weight=self.norm.weight, rmsnorm_eps=self.norm.eps,
            outproj_weight=self.out_proj.weight, outproj_bias=self.out_proj.bias, headdim=self.headdim,
            ngroups=self.ngroups, norm_before_gate=False,
        )

    # ---- incremental decoding (raster only) ------------------------------------------------------------

    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """Constant-size decoding state: conv window (B, conv_dim, d_conv), SSM state (B, H, P, N) fp32."""
        if self.scan != "raster":
            raise ValueError("incremental decoding needs scan='raster'")
        return {
            "conv": torch.zeros(batch_size, self.conv_dim, self.d_conv, device=device, dtype=dtype),
            "ssm": torch.zeros(batch_size, self.nheads, self.headdim, self.d_state, device=device, dtype=torch.float32),
        }

    def step(self, x_t: torch.Tensor, state: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """One token: x_t (B, dim) -> (y_t (B, dim), new state); equals the matching row of ``forward``."""
        self.last_backend = "reference"
        z, xBC, dt = self._split(self.in_proj(x_t))
        conv = torch.cat([state["conv"][..., 1:], xBC[..., None].to(state["conv"].dtype)], dim=-1)
        xBC = (conv * self.conv1d.weight[:, 0]).sum(-1)
        if self.conv1d.bias is not None:
            xBC = xBC + self.conv1d.bias
        xs, B, C = torch.split(F.silu(xBC).float(), [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        rep = self.nheads // self.ngroups
        B = B.unflatten(-1, (self.ngroups, self.d_state)).repeat_interleave(rep, dim=1)  # (B, H, N)
        C = C.unflatten(-1, (self.ngroups, self.d_state)).repeat_interleave(rep, dim=1)
        xs = xs.unflatten(-1, (self.nheads, self.headdim))  # (B, H, P)
        dt = F.softplus(dt.float() + self.dt_bias.float())  # (B, H)
        decay = torch.exp(dt * -torch.exp(self.A_log.float()))[..., None, None]
        h = decay * state["ssm"] + (dt[..., None] * xs)[..., None] * B[:, :, None, :]
        y = torch.einsum("bhpn,bhn->bhp", h, C) + self.D.float()[:, None] * xs
        y = self.norm(y.flatten(-2).to(x_t.dtype), z)
        return self.out_proj(y), {"conv": conv, "ssm": h}
