"""The reference scans as ``torch.library`` custom ops, and the ``impl`` dispatch the mixers use.

Why custom ops: a plain Python reference is invisible as a unit to FLOP counters (FlopCounterMode would
count its inner einsums, fvcore's JIT trace would see scattered elementwise ops), and mamba_ssm's
autograd Functions show up to fvcore as an opaque ``prim::PythonOp`` that it silently skips (state-spaces/
mamba issues 110, 303, 559). As ``harness::selective_scan`` / ``harness::ssd_scan`` (and their ``*_bwd``
ops, so the backward is visible too) the scans are single nodes that both counters see, with the closed
forms of ``harness.kernels.flop_formulas`` registered for them here (this module imports the formulas,
never the other way round). On the fused backend, ``selective_scan`` / ``ssd_scan`` add the same closed
forms for mamba_ssm's kernels, which no FLOP counter sees.

The selective-scan backward is the reference's analytic reverse scan (``selective_scan_ref_bwd``) on the
states and decays the forward kept: the forward op returns them as two extra outputs when autograd will
need them (empty otherwise), and its autograd context saves them. The SSD backward recomputes the forward
through ``ssd_ref`` under ``torch.enable_grad`` and returns ``torch.autograd.grad``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from harness.kernels import flop_formulas
from harness.kernels.selective_scan import (
    chunk_length, compute_dtype, keeps_states, selective_scan_fn, selective_scan_ref_bwd, selective_scan_ref_fwd,
)
from harness.kernels.ssd import ssd_fn, ssd_ref

IMPLS = ("auto", "fused", "ref")
FUSED_BACKEND, REF_BACKEND = "mamba_ssm-cuda", "reference"
#: device types mamba_ssm's and causal_conv1d's kernels run on (tests add "cpu" beside stand-in kernels)
KERNEL_DEVICE_TYPES = ("cuda",)


def _empty_like_or_placeholder(t: Optional[Tensor], like: Tensor) -> Tensor:
    return torch.empty_like(t) if t is not None else like.new_empty(0)


def _grads(outputs, inputs, grad_outputs) -> list[Tensor]:
    """autograd.grad over the present inputs; absent (None) inputs get an empty placeholder."""
    present = [t for t in inputs if t is not None]
    got = iter(torch.autograd.grad(outputs, present, grad_outputs, allow_unused=True))
    res = []
    for t in inputs:
        if t is None:
            res.append(outputs[0].new_empty(0))
            continue
        g = next(got)
        res.append(torch.zeros_like(t) if g is None else g)
    return res


@contextmanager
def _autograd_reenabled():
    """Record autograd inside a custom op's kernel.

    Custom-op kernels run below the Autograd dispatch key (its keys are in the thread-local exclude set), so
    ``torch.enable_grad`` alone records nothing there; we lift that exclusion for the recompute. Private
    dispatcher API (stable since torch 1.13); the only way to differentiate through a reference inside a
    backward op that FLOP counters can still see as one node.
    """
    exclude = torch._C._dispatch_tls_local_exclude_set()
    for key in ("AutogradFunctionality", "AutogradOther", "AutogradNestedTensor", "ADInplaceOrView"):
        exclude = exclude.remove(getattr(torch._C.DispatchKey, key))
    with torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), exclude), torch.enable_grad():
        yield


def _leaves(*ts):
    return [None if t is None else t.detach().requires_grad_(t.is_floating_point()) for t in ts]


# ---- selective scan (Mamba-1) ---------------------------------------------------------------------------


@torch.library.custom_op("harness::selective_scan", mutates_args=())
def selective_scan_op(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor], z: Optional[Tensor],
    delta_bias: Optional[Tensor], delta_softplus: bool, euler: bool, chunk_size: int, keep: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """-> out, last_state, and, with ``keep``, the states and decays, and delta' and delta' u, that the
    backward reuses (``selective_scan_ref_fwd``'s ``kept``; empty tensors without). ``keep`` is decided by
    the caller: inside the op autograd is off whether or not a backward will follow."""
    out, last, (big, small) = selective_scan_ref_fwd(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size or None, "euler" if euler else "zoh",
        keep=keep,
    )
    return out, last.contiguous(), big, small


@selective_scan_op.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus, euler, chunk_size, keep):
    (b, d, l), n, dt = u.shape, A.shape[1], compute_dtype(u)
    if keep:
        T = chunk_length(b, d, n, l, chunk_size or None)
        nc = -(-l // T)
        big, small = u.new_empty(2, T, b, nc, n, d, dtype=dt), u.new_empty(2, T, b, nc, d, dtype=dt)
    else:
        big, small = u.new_empty(0, dtype=dt), u.new_empty(0, dtype=dt)
    return torch.empty_like(u), u.new_empty(b, d, n, dtype=dt), big, small


@torch.library.custom_op("harness::selective_scan_bwd", mutates_args=())
def selective_scan_bwd_op(
    dout: Tensor, dlast: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Optional[Tensor], z: Optional[Tensor], delta_bias: Optional[Tensor], delta_softplus: bool, euler: bool,
    chunk_size: int, kept_big: Tensor, kept_small: Tensor,
) -> list[Tensor]:
    grads = selective_scan_ref_bwd(
        dout, dlast, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size or None,
        "euler" if euler else "zoh", kept=(kept_big, kept_small),
    )
    return [u.new_empty(0) if g is None else g for g in grads]


@selective_scan_bwd_op.register_fake
def _(dout, dlast, u, delta, A, B, C, D, z, delta_bias, delta_softplus, euler, chunk_size, kept_big, kept_small):
    return [_empty_like_or_placeholder(t, u) for t in (u, delta, A, B, C, D, z, delta_bias)]


def _ss_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:8], *output[2:])
    ctx.flags = inputs[8:11]


def _ss_backward(ctx, dout, dlast, _dbig, _dsmall):
    u, delta, A, B, C, D, z, delta_bias, big, small = ctx.saved_tensors
    grads = torch.ops.harness.selective_scan_bwd(
        dout, dlast, u, delta, A, B, C, D, z, delta_bias, *ctx.flags, big, small
    )
    present = (u, delta, A, B, C, D, z, delta_bias)
    return (*(g if t is not None else None for g, t in zip(grads, present)), None, None, None, None)


selective_scan_op.register_autograd(_ss_backward, setup_context=_ss_setup)


# ---- SSD (Mamba-2) --------------------------------------------------------------------------------------


@torch.library.custom_op("harness::ssd_scan", mutates_args=())
def ssd_op(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int, D: Optional[Tensor],
    z: Optional[Tensor], dt_bias: Optional[Tensor], dt_softplus: bool, initial_states: Optional[Tensor],
) -> tuple[Tensor, Tensor]:
    y, final = ssd_ref(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, initial_states, True)
    return y, final.contiguous()


@ssd_op.register_fake
def _(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, initial_states):
    b, _, h, p = x.shape
    return torch.empty_like(x), x.new_empty(b, h, p, B.shape[-1], dtype=torch.float32)


@torch.library.custom_op("harness::ssd_scan_bwd", mutates_args=())
def ssd_bwd_op(
    dy: Tensor, dfinal: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int,
    D: Optional[Tensor], z: Optional[Tensor], dt_bias: Optional[Tensor], dt_softplus: bool,
    initial_states: Optional[Tensor],
) -> list[Tensor]:
    with _autograd_reenabled():
        x, dt, A, B, C, D, z, dt_bias, s0 = ins = _leaves(x, dt, A, B, C, D, z, dt_bias, initial_states)
        y, final = ssd_ref(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, s0, True)
        return _grads((y, final), ins, (dy, dfinal))


@ssd_bwd_op.register_fake
def _(dy, dfinal, x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, initial_states):
    return [_empty_like_or_placeholder(t, x) for t in (x, dt, A, B, C, D, z, dt_bias, initial_states)]


def _ssd_setup(ctx, inputs, output):
    x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, s0 = inputs
    ctx.save_for_backward(x, dt, A, B, C, D, z, dt_bias, s0)
    ctx.chunk_size, ctx.dt_softplus = chunk_size, dt_softplus


def _ssd_backward(ctx, dy, dfinal):
    x, dt, A, B, C, D, z, dt_bias, s0 = saved = ctx.saved_tensors
    g = torch.ops.harness.ssd_scan_bwd(dy, dfinal, x, dt, A, B, C, ctx.chunk_size, D, z, dt_bias, ctx.dt_softplus, s0)
    g = [gi if t is not None else None for gi, t in zip(g, saved)]
    return g[0], g[1], g[2], g[3], g[4], None, g[5], g[6], g[7], None, g[8]


ssd_op.register_autograd(_ssd_backward, setup_context=_ssd_setup)


# ---- their closed-form FLOPs (FlopCounterMode; fvcore's handles are in flop_formulas) ---------------------


def _ss_flops(u, delta, A, B, C, D, z, *args, **kwargs) -> int:
    return flop_formulas.selective_scan_flops(u[0], u[1], u[2], A[1], D is not None, z is not None)


def _ssd_flops(x, dt, A, B, C, chunk_size, D, z, *args, **kwargs) -> int:
    return 2 * flop_formulas.ssd_macs(x[0], x[1], x[2], x[3], B[-1], chunk_size, D is not None, z is not None)


@register_flop_formula(torch.ops.harness.selective_scan)
def _(*args, out_shape=None, **kwargs) -> int:
    return _ss_flops(*args)


@register_flop_formula(torch.ops.harness.selective_scan_bwd)
def _(dout, dlast, *args, out_shape=None, **kwargs) -> int:
    return flop_formulas.BACKWARD_FACTOR * _ss_flops(*args)


@register_flop_formula(torch.ops.harness.ssd_scan)
def _(*args, out_shape=None, **kwargs) -> int:
    return _ssd_flops(*args)


@register_flop_formula(torch.ops.harness.ssd_scan_bwd)
def _(dy, dfinal, *args, out_shape=None, **kwargs) -> int:
    return flop_formulas.BACKWARD_FACTOR * _ssd_flops(*args)


# ---- impl dispatch used by the mixers -------------------------------------------------------------------


def resolve_impl(impl: str, device: torch.device, fused_available: bool, fused_supported: bool = True) -> str:
    """The backend that will run: ``FUSED_BACKEND`` or ``REF_BACKEND``; ``fused`` raises when impossible."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; use one of {IMPLS}")
    usable = fused_available and fused_supported and device.type in KERNEL_DEVICE_TYPES
    if impl == "fused" and not usable:
        why = (
            "mamba_ssm is not installed (pip install 'harness[gpu]')" if not fused_available
            else "the input is not on CUDA" if device.type != "cuda"
            else "this configuration is not supported by the fused kernel (use impl='ref')"
        )
        raise RuntimeError(f"impl='fused' requested but the fused kernel cannot run: {why}")
    if impl == "ref":
        return REF_BACKEND
    return FUSED_BACKEND if usable else REF_BACKEND


def selective_scan(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False, *,
    backend: str = REF_BACKEND, chunk_size: int = 0, discretization: str = "zoh",
):
    """``selective_scan_fn`` semantics on the chosen backend (see ``resolve_impl``); shapes as the ref."""
    if backend == FUSED_BACKEND:
        res = selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
        b, d, l = u.shape
        flops = flop_formulas.selective_scan_flops(b, d, l, A.shape[1], D is not None, z is not None)
        flop_formulas.count_fused(torch.ops.harness.selective_scan, torch.ops.harness.selective_scan_bwd, flops,
                                  res[0] if return_last_state else res)
        return res
    ins = (u, delta, A, B.contiguous(), C.contiguous(), D, z, delta_bias)
    keep = keeps_states(u, A, torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ins))
    out, last, _, _ = torch.ops.harness.selective_scan(
        *ins, delta_softplus, discretization == "euler", chunk_size, keep
    )
    return (out, last) if return_last_state else out


def ssd_scan(
    x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False, initial_states=None,
    return_final_states=False, *, backend: str = REF_BACKEND,
):
    """``mamba_chunk_scan_combined`` semantics on the chosen backend; shapes as ``ssd_ref``."""
    if backend == FUSED_BACKEND:
        res = ssd_fn(
            x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus,
            initial_states=initial_states, return_final_states=return_final_states,
        )
        flops = 2 * flop_formulas.ssd_macs(*x.shape, B.shape[-1], chunk_size, D is not None, z is not None)
        flop_formulas.count_fused(torch.ops.harness.ssd_scan, torch.ops.harness.ssd_scan_bwd, flops,
                                  res[0] if return_final_states else res)
        return res
    y, final = torch.ops.harness.ssd_scan(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, initial_states)
    return (y, final) if return_final_states else y

