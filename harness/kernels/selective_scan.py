"""Mamba's selective scan (Gu & Dao, arXiv 2312.00752, Alg. 2): fused kernel, parallel reference, loop.

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,   y_t = C_t h_t + D u_t,   out = y * silu(z)

``selective_scan_fn`` is mamba_ssm's CUDA kernel (``None`` when mamba_ssm is missing: it only builds with
CUDA). ``selective_scan_ref`` has its signature and shapes and runs anywhere as a chunked parallel scan
(``harness.kernels.linear_scan``); ``selective_scan_loop`` is the per-step recurrence of mamba_ssm's own
``selective_scan_ref``, kept as the ground truth the parallel reference is tested against.

``discretization="euler"`` (keyword beyond mamba_ssm's signature, reference only) replaces the ZOH decay
``exp(delta A)`` by ``1 + delta A`` for the discretization ablation; the input term is ``delta B u`` in both
cases, as in mamba_ssm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.kernels.linear_scan import linear_scan

try:  # the fused kernel: only importable where mamba_ssm was built (CUDA)
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
except ImportError:
    selective_scan_fn = None

DISCRETIZATIONS = ("zoh", "euler")


def _prepare(u, delta, A, delta_bias, delta_softplus):
    if A.is_complex():
        raise NotImplementedError("complex A is not supported by the reference scans")
    u, delta, A = u.float(), delta.float(), A.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    return u, delta, A


def _decay(delta_a: torch.Tensor, discretization: str) -> torch.Tensor:
    if discretization == "zoh":
        return torch.exp(delta_a)
    if discretization == "euler":
        return 1.0 + delta_a
    raise ValueError(f"unknown discretization {discretization!r}; use one of {DISCRETIZATIONS}")


def _time_major(M: torch.Tensor, d: int) -> torch.Tensor:
    """B or C as (b, l, d, n) or a broadcastable view: from (d, n), (b, n, l) or (b, g, n, l)."""
    M = M.float()
    if M.dim() == 2:
        return M[None, None]
    if M.dim() == 3:
        return M.transpose(1, 2)[:, :, None, :]
    return M.permute(0, 3, 1, 2).repeat_interleave(d // M.shape[1], dim=2)  # channel = g * (d/g) + i


def selective_scan_ref(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
    chunk_size: int = 64, discretization: str = "zoh",
):
    """Chunked parallel selective scan with the signature of mamba_ssm's ``selective_scan_fn``.

    u: (b, d, l)   delta: (b, d, l)   A: (d, n) real
    B, C: (b, n, l) | (b, g, n, l) (input-dependent, g divides d) | (d, n) (time-invariant)
    D: (d,)   z: (b, d, l)   delta_bias: (d,)
    -> out: (b, d, l) in u's dtype; with ``return_last_state`` also last_state: (b, d, n) fp32.
    All arithmetic is fp32. Unlike the fused kernel, gradients also flow through ``last_state``.
    """
    dtype_in = u.dtype
    u, delta, A = _prepare(u, delta, A, delta_bias, delta_softplus)
    b, d, l = u.shape
    n = A.shape[1]
    delta_t = delta.transpose(1, 2)  # (b, l, d)
    a = _decay(delta_t[..., None] * A, discretization)  # (b, l, d, n)
    x = (delta_t * u.transpose(1, 2))[..., None] * _time_major(B, d)
    h = linear_scan(a.reshape(b, l, d * n), x.expand(b, l, d, n).reshape(b, l, d * n), chunk_size)
    h = h.view(b, l, d, n)
    if C.dim() == 3:  # one C per position: a batched matvec, no (b, l, d, n) temporary
        y = torch.matmul(h, C.float().transpose(1, 2)[..., None])[..., 0]
    else:
        y = (h * _time_major(C, d)).sum(-1)
    y = y.transpose(1, 2)  # (b, d, l)
    out = y if D is None else y + u * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    out = out.to(dtype_in)
    return (out, h[:, -1]) if return_last_state else out


def selective_scan_loop(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
    discretization: str = "zoh",
):
    """The per-step recurrence (one Python step per time step); same shapes as ``selective_scan_ref``.

    u, delta, z: (b, d, l)   A: (d, n)   B, C: (b, n, l) | (b, g, n, l) | (d, n)   D, delta_bias: (d,)
    -> out: (b, d, l) [, last_state: (b, d, n)].
    """
    dtype_in = u.dtype
    u, delta, A = _prepare(u, delta, A, delta_bias, delta_softplus)
    b, d, l = u.shape
    Bt, Ct = _time_major(B, d), _time_major(C, d)
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for i in range(l):
        Bi = Bt[:, min(i, Bt.shape[1] - 1)]  # (b|1, d|1, n)
        Ci = Ct[:, min(i, Ct.shape[1] - 1)]
        a = _decay(delta[:, :, i, None] * A, discretization)
        h = a * h + (delta[:, :, i] * u[:, :, i])[..., None] * Bi
        ys.append((h * Ci).sum(-1))
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    out = out.to(dtype_in)
    return (out, h) if return_last_state else out
