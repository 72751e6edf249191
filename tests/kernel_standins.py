"""Pure-torch stand-ins for mamba_ssm's and causal_conv1d's CUDA functions, so the kernel dispatch runs on CPU.

Each has its original's signature and semantics (the arguments the harness never passes raise
NotImplementedError rather than being ignored) and is written from those semantics with the harness
references (``selective_scan_ref``, ``ssd_ref``) and plain torch, not with the mixers' own code, so a
mixer that passes a wrong parameter or layout gets a different answer. Like the real kernels (pybind
calls and Triton launches), they are invisible to dispatch modes, forward and backward, and a JIT trace
(fvcore) records each as one ``prim::PythonOp`` named as the real autograd Function: the FLOP counters
see nothing of them, as of the real ones, and the harness must add closed forms.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._python_dispatch import _disable_current_modes

from harness.kernels.selective_scan import selective_scan_ref
from harness.kernels.ssd import ssd_ref


class _Graph:
    """What the backward needs, out of the trace's sight (a trace turns tensors set on ``ctx`` into constants)."""

    def __init__(self, leaves: list[Any], out: Tensor):
        self.leaves, self.out = leaves, out


def _hidden_function(name: str, compute: Callable[..., Tensor]) -> type[torch.autograd.Function]:
    """An autograd Function named ``name`` (fvcore names a ``PythonOp`` by its class, and has handles for the
    real ones) whose ``apply(*args)`` runs ``compute(*args)`` where no dispatch mode sees it, with compute's
    own gradients in the backward. Arguments in the real Function's order."""

    def forward(ctx: Any, *args: Any) -> Tensor:
        track = not torch.is_inference_mode_enabled()
        tracing = torch._C._get_tracing_state()  # a JIT trace (fvcore) records the Function, not its inside
        torch._C._set_tracing_state(None)
        try:
            with _disable_current_modes(), torch.enable_grad() if track else torch.no_grad():
                leaves = [a.detach().requires_grad_() if track and isinstance(a, Tensor) and a.requires_grad else a
                          for a in args]
                out = compute(*leaves)
                like = dict(size=tuple(out.shape), dtype=out.dtype, device=out.device)
        finally:
            torch._C._set_tracing_state(tracing)
        result = torch.empty(**like)  # allocated in the trace's sight, as a kernel allocates its output
        with _disable_current_modes(), torch.no_grad():
            torch._C._set_tracing_state(None)
            try:
                result.copy_(out)
            finally:
                torch._C._set_tracing_state(tracing)
        ctx.graph = _Graph(leaves, out)
        return result

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        leaves, out = ctx.graph.leaves, ctx.graph.out
        wrt = [a for a in leaves if isinstance(a, Tensor) and a.requires_grad]
        with _disable_current_modes():
            got = iter(torch.autograd.grad(out, wrt, grad, allow_unused=True))
        return tuple(next(got) if isinstance(a, Tensor) and a.requires_grad else None for a in leaves)

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


def _causal_depthwise(x: Tensor, weight: Tensor, bias: Tensor | None, silu: bool) -> Tensor:
    """x (B, C, L), weight (C, K): y[t] = sum_k weight[k] x[t - K + 1 + k] (zeros before the start)."""
    k = weight.shape[-1]
    y = F.conv1d(F.pad(x, (k - 1, 0)), weight[:, None].to(x.dtype), None if bias is None else bias.to(x.dtype),
                 groups=x.shape[1])
    return F.silu(y) if silu else y


def causal_conv1d_fn(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
                     final_states_out=None, activation=None):
    """causal_conv1d's ``causal_conv1d_fn``: x (B, C, L), weight (C, K), bias (C,) -> (B, C, L)."""
    if seq_idx is not None or initial_states is not None or return_final_states or final_states_out is not None:
        raise NotImplementedError("stand-in: no seq_idx / states")
    assert activation in (None, "silu", "swish")
    return _CausalConv1dFn.apply(x, weight, bias, seq_idx, initial_states, return_final_states, final_states_out,
                                 activation)


_CausalConv1dFn = _hidden_function(
    "CausalConv1dFn", lambda x, w, b, seq_idx, s0, ret, s_out, act: _causal_depthwise(x, w, b, act is not None))


def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                      return_last_state=False):
    """mamba_ssm's ``selective_scan_fn`` (the harness reference has its signature)."""
    if return_last_state:
        raise NotImplementedError("stand-in: no last state")
    return _SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


_SelectiveScanFn = _hidden_function("SelectiveScanFn", lambda *a: selective_scan_ref(*a[:9]))


def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                              seq_idx=None, cu_seqlens=None, dt_softplus=False, dt_limit=(0.0, float("inf")),
                              return_final_states=False, return_varlen_states=False, state_dtype=None):
    """mamba_ssm's Triton ``mamba_chunk_scan_combined`` (the harness reference has its signature)."""
    if (initial_states is not None or seq_idx is not None or cu_seqlens is not None or return_final_states
            or return_varlen_states or dt_limit != (0.0, float("inf"))):
        raise NotImplementedError("stand-in: plain scan only")
    return _MambaChunkScanCombinedFn.apply(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus)


_MambaChunkScanCombinedFn = _hidden_function(
    "MambaChunkScanCombinedFn",
    lambda x, dt, A, B, C, chunk, D, z, dt_bias, softplus: ssd_ref(x, dt, A, B, C, chunk, D, z, dt_bias, softplus))


def mamba_inner_fn(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight,
                   out_proj_bias, A, B=None, C=None, D=None, delta_bias=None, B_proj_bias=None, C_proj_bias=None,
                   delta_softplus=True, checkpoint_lvl=1, b_rms_weight=None, c_rms_weight=None, dt_rms_weight=None,
                   b_c_dt_rms_eps=1e-6):
    """mamba_ssm's ``mamba_inner_fn``: xz (B, 2*D, L) = [x; z], conv1d_weight (D, 1, K) -> (B, L, d_model).

    x -> silu(causal conv) -> x_dbl = x_proj(x) = [dt, B, C] -> delta = dt_proj weight (no bias) @ dt ->
    selective scan with D, the z gate, delta_bias and softplus -> out_proj.
    """
    if B is not None or C is not None or B_proj_bias is not None or C_proj_bias is not None or any(
            w is not None for w in (b_rms_weight, c_rms_weight, dt_rms_weight)):
        raise NotImplementedError("stand-in: input-dependent B and C without biases or norms only")
    assert conv1d_weight.dim() == 3 and conv1d_weight.shape[1] == 1, conv1d_weight.shape

    return _MambaInnerFn.apply(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight,
                               out_proj_bias, A, D, delta_bias, delta_softplus)


def _mamba_inner(xz, cw, cb, xw, dw, ow, ob, A, D, db, delta_softplus):
    x, z = xz.chunk(2, dim=1)
    x = _causal_depthwise(x, cw[:, 0], cb, silu=True)
    rank, n = dw.shape[1], A.shape[1]
    dt, Bs, Cs = torch.split(torch.einsum("bdl,ed->bel", x, xw.to(x.dtype)), [rank, n, n], dim=1)
    delta = torch.einsum("dr,brl->bdl", dw.to(x.dtype), dt)
    y = selective_scan_ref(x, delta, A, Bs, Cs, D, z, db, delta_softplus)
    return F.linear(y.transpose(1, 2), ow.to(y.dtype), None if ob is None else ob.to(y.dtype))


_MambaInnerFn = _hidden_function("MambaInnerFn", _mamba_inner)


def mamba_split_conv1d_scan_combined(zxbcdt, conv1d_weight, conv1d_bias, dt_bias, A, D, chunk_size,
                                     initial_states=None, seq_idx=None, dt_limit=(0.0, float("inf")),
                                     return_final_states=False, activation="silu", rmsnorm_weight=None,
                                     rmsnorm_eps=1e-6, outproj_weight=None, outproj_bias=None, headdim=None,
                                     ngroups=1, norm_before_gate=True, state_dtype=None):
    """mamba_ssm's ``mamba_split_conv1d_scan_combined``: zxbcdt (B, L, [z, xBC, dt]) -> (B, L, out).

    xBC -> silu(causal conv) -> [x, B, C] -> SSD with D, dt_bias and softplus -> gated RMSNorm per group
    (``norm_before_gate``: rmsnorm(y) * silu(z), else rmsnorm(y * silu(z))) -> outproj.
    """
    if initial_states is not None or seq_idx is not None or return_final_states or dt_limit != (0.0, float("inf")):
        raise NotImplementedError("stand-in: plain scan only")
    assert D.dim() == 1 and headdim is not None and rmsnorm_weight is not None and activation == "silu"
    nheads, dim = D.shape[0], D.shape[0] * headdim
    n = (conv1d_weight.shape[0] - dim) // ngroups // 2
    assert zxbcdt.shape[-1] == 2 * dim + 2 * ngroups * n + nheads, "stand-in: no extra MLP channels"
    return _MambaSplitConv1dScanCombinedFn.apply(
        zxbcdt, conv1d_weight, conv1d_bias, dt_bias, A, D, chunk_size, rmsnorm_weight, rmsnorm_eps, outproj_weight,
        outproj_bias, headdim, ngroups, norm_before_gate)


def _split_conv1d_scan(zxbcdt, cw, cb, dt_bias, A, D, chunk_size, nw, eps, ow, ob, headdim, ngroups, norm_before_gate):
    nheads, dim = D.shape[0], D.shape[0] * headdim
    n = (cw.shape[0] - dim) // ngroups // 2
    z, xBC, dt = torch.split(zxbcdt, [dim, dim + 2 * ngroups * n, nheads], dim=-1)
    xBC = _causal_depthwise(xBC.transpose(1, 2), cw, cb, silu=True).transpose(1, 2)
    x, Bs, Cs = torch.split(xBC, [dim, ngroups * n, ngroups * n], dim=-1)
    b, l = x.shape[:2]
    y = ssd_ref(x.reshape(b, l, nheads, headdim), dt, A, Bs.reshape(b, l, ngroups, n), Cs.reshape(b, l, ngroups, n),
                chunk_size, D=D, dt_bias=dt_bias, dt_softplus=True).reshape(b, l, dim).float()
    gate = F.silu(z.float())
    y = y if norm_before_gate else y * gate
    g = y.reshape(b, l, ngroups, dim // ngroups)
    y = (g / torch.sqrt(g.pow(2).mean(-1, keepdim=True) + eps)).reshape(b, l, dim) * nw.float()
    y = (y * gate if norm_before_gate else y).to(zxbcdt.dtype)
    return F.linear(y, ow.to(y.dtype), None if ob is None else ob.to(y.dtype))


_MambaSplitConv1dScanCombinedFn = _hidden_function("MambaSplitConv1dScanCombinedFn", _split_conv1d_scan)
