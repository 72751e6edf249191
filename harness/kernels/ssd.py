"""Mamba-2's state-space duality (SSD) scan (Dao & Gu, arXiv 2405.21060, Sec. 6 / Listing 1).

    h_t = exp(dt_t A_h) h_{t-1} + dt_t x_t B_t^T,   y_t = h_t C_t + D x_t   (per head h; A is a scalar per head)

``ssd_fn`` is mamba_ssm's Triton ``mamba_chunk_scan_combined`` (``None`` when mamba_ssm is missing).
``ssd_ref`` has its signature and computes the chunked algorithm of the paper's minimal listing
(mamba_ssm ``ssd_minimal.py``): quadratic attention-like form inside chunks through a masked segment-sum
(exponents are sums of non-positive terms, so every exp is <= 1), a recurrence over chunk states, and the
state-to-output term. ``ssd_loop`` is the per-step recurrence, the ground truth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # the fused kernel: only importable where mamba_ssm (and Triton on CUDA) is installed
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined as ssd_fn
except ImportError:
    ssd_fn = None


def segsum(x: torch.Tensor) -> torch.Tensor:
    """x: (..., T) -> (..., T, T) with out[i, j] = sum(x[j+1 .. i]) for j <= i, -inf above the diagonal."""
    t = x.shape[-1]
    xx = x[..., None].expand(*x.shape, t)  # xx[..., i, j] = x[i]
    strict = torch.ones(t, t, dtype=torch.bool, device=x.device).tril(-1)
    out = xx.masked_fill(~strict, 0).cumsum(dim=-2)
    return out.masked_fill(~strict.logical_or(torch.eye(t, dtype=torch.bool, device=x.device)), float("-inf"))


def _prepare(x, dt, A, B, C, dt_bias, dt_softplus):
    x, dt, A = x.float(), dt.float(), A.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    if dt_softplus:
        dt = F.softplus(dt)
    h = x.shape[2]
    B = B.float().repeat_interleave(h // B.shape[2], dim=2)  # group g serves heads g*(h/g) .. (g+1)*(h/g)-1
    C = C.float().repeat_interleave(h // C.shape[2], dim=2)
    return x, dt, A, B, C


def _finish(y, x, D, z, dtype):
    if D is not None:
        y = y + x * (D.float()[:, None] if D.dim() == 1 else D.float())
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


def ssd_ref(
    x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False, initial_states=None,
    return_final_states=False,
):
    """Chunked SSD with the signature of mamba_ssm's ``mamba_chunk_scan_combined``.

    x: (b, l, h, p)   dt: (b, l, h)   A: (h,)   B, C: (b, l, g, n) (g divides h)
    D: (h,) or (h, p)   z: (b, l, h, p)   dt_bias: (h,)   initial_states: (b, h, p, n)
    -> y: (b, l, h, p) in x's dtype; with ``return_final_states`` also final_states: (b, h, p, n) fp32.
    """
    dtype_in = x.dtype
    x, dt, A, B, C = _prepare(x, dt, A, B, C, dt_bias, dt_softplus)
    b, l, h, p = x.shape
    t = max(1, min(chunk_size, l))
    pad = (-l) % t  # padded steps (dt = 0: decay 1, no input) leave outputs and the final state unchanged
    xs, dts, Bs, Cs = (F.pad(v, (0, 0) * (v.dim() - 2) + (0, pad)) for v in (x, dt, B, C))
    nc = (l + pad) // t
    X = (xs * dts[..., None]).view(b, nc, t, h, p)
    Bc, Cc = Bs.view(b, nc, t, h, -1), Cs.view(b, nc, t, h, -1)
    Ad = (dts * A).view(b, nc, t, h).permute(0, 3, 1, 2)  # (b, h, c, t), all <= 0
    A_cum = Ad.cumsum(-1)
    # 1. inside chunks: y = (C B^T o L) X with L[i, j] = exp(sum Ad[j+1..i])
    scores = torch.einsum("bclhn,bcshn->bhcls", Cc, Bc) * torch.exp(segsum(Ad))
    y_diag = torch.einsum("bhcls,bcshp->bclhp", scores, X)
    # 2. state at the end of each chunk from its own inputs
    decay_to_end = torch.exp(A_cum[..., -1:] - A_cum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bc, decay_to_end, X)
    # 3. recurrence over chunks
    init = x.new_zeros(b, 1, h, p, Bc.shape[-1]) if initial_states is None else initial_states.float()[:, None]
    states = torch.cat([init, states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final = states[:, :-1], states[:, -1]
    # 4. contribution of the state entering each chunk
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", Cc, states, torch.exp(A_cum))
    y = (y_diag + y_off).reshape(b, nc * t, h, p)[:, :l]
    out = _finish(y, x, D, z, dtype_in)
    return (out, final) if return_final_states else out


def ssd_loop(
    x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, initial_states=None,
    return_final_states=False,
):
    """Per-step SSD recurrence; shapes as ``ssd_ref`` (no chunk_size).

    x, z: (b, l, h, p)   dt: (b, l, h)   A: (h,)   B, C: (b, l, g, n)   initial_states: (b, h, p, n)
    -> y: (b, l, h, p) [, final_states: (b, h, p, n)].
    """
    dtype_in = x.dtype
    x, dt, A, B, C = _prepare(x, dt, A, B, C, dt_bias, dt_softplus)
    b, l, h, p = x.shape
    state = x.new_zeros(b, h, p, B.shape[-1]) if initial_states is None else initial_states.float()
    ys = []
    for i in range(l):
        decay = torch.exp(dt[:, i] * A)[..., None, None]  # (b, h, 1, 1)
        state = decay * state + (dt[:, i, :, None] * x[:, i])[..., None] * B[:, i, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, C[:, i]))
    out = _finish(torch.stack(ys, dim=1), x, D, z, dtype_in)
    return (out, state) if return_final_states else out
