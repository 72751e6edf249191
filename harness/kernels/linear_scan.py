"""Diagonal linear recurrence ``h_t = a_t * h_{t-1} + x_t`` as a chunked parallel scan on CPU/GPU.

Why hand-written: PyTorch has no eager associative-scan op (``torch._higher_order_ops.associative_scan``
needs ``torch.compile``) and mamba_ssm's fused scan only builds with CUDA, so the reference selective scan
(Gu & Dao, arXiv 2312.00752, Sec. 3.3) needs its own parallel scan.

Algorithm: the sequence is cut into chunks of ``chunk_size``; inside every chunk (all chunks at once) a
Hillis-Steele doubling scan runs in log2(chunk_size) vectorised steps, combining only decays that are
products of factors in [0, 1] (never the exponential of a positive cumulative sum, so no overflow); a short
recurrence over the chunk ends then carries the state across chunks. The backward is the same scan run in
reverse (the adjoint of a linear recurrence is a linear recurrence), so autograd never stores the
log-depth intermediates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _scan(a: torch.Tensor, x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Forward scan without autograd. a, x: (b, l, m) -> h: (b, l, m)."""
    b, l, m = x.shape
    t = max(1, min(chunk_size, l))
    pad = (-l) % t
    if pad:  # padded steps come after the sequence, so they never touch its outputs
        a = F.pad(a, (0, 0, 0, pad))
        x = F.pad(x, (0, 0, 0, pad))
    nc = (l + pad) // t
    h, dec = x.reshape(b, nc, t, m), a.reshape(b, nc, t, m)  # views of the inputs: read, never written
    h_bufs, dec_bufs = [torch.empty_like(h), torch.empty_like(h)], [torch.empty_like(dec), torch.empty_like(dec)]
    k, step = 1, 0
    while k < t:  # Hillis-Steele: after step k, h[i] sums the last 2k inputs, dec[i] their decay product
        h_out, dec_out = h_bufs[step % 2], dec_bufs[step % 2]
        h_out[:, :, :k] = h[:, :, :k]
        torch.addcmul(h[:, :, k:], dec[:, :, k:], h[:, :, :-k], out=h_out[:, :, k:])
        dec_out[:, :, :k] = dec[:, :, :k]
        torch.mul(dec[:, :, k:], dec[:, :, :-k], out=dec_out[:, :, k:])
        h, dec = h_out, dec_out
        k, step = 2 * k, step + 1
    if step == 0:  # chunk length 1: nothing was computed, h still views the input
        h = h.clone()
    if nc > 1:  # carry: state entering chunk c, then add its decayed contribution to every position
        carry = h.new_zeros(b, nc, m)
        for c in range(1, nc):
            torch.addcmul(h[:, c - 1, -1], dec[:, c - 1, -1], carry[:, c - 1], out=carry[:, c])
        h.addcmul_(dec, carry[:, :, None])
    return h.reshape(b, nc * t, m)[:, :l]


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, x: torch.Tensor, chunk_size: int) -> torch.Tensor:
        h = _scan(a, x, chunk_size)
        ctx.save_for_backward(a, h)
        ctx.chunk_size = chunk_size
        return h

    @staticmethod
    def backward(ctx, dh: torch.Tensor):
        a, h = ctx.saved_tensors
        # g_t = dh_t + a_{t+1} g_{t+1}: the same recurrence, reversed in time.
        a_next = F.pad(a[:, 1:], (0, 0, 0, 1))
        g = _scan(a_next.flip(1), dh.flip(1), ctx.chunk_size).flip(1)
        h_prev = F.pad(h[:, :-1], (0, 0, 1, 0))
        return g * h_prev, g, None


def linear_scan(a: torch.Tensor, x: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + x_t`` with ``h_{-1} = 0``, differentiable in ``a`` and ``x``.

    a, x: (b, l, m) fp32, time on dim 1 -> h: (b, l, m).
    """
    return _LinearScan.apply(a.contiguous(), x.contiguous(), chunk_size)
