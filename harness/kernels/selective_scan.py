"""Mamba's selective scan (Gu & Dao, arXiv 2312.00752, Alg. 2): fused kernel, parallel reference, loop.

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,   y_t = C_t h_t + D u_t,   out = y * silu(z)

``selective_scan_fn`` is mamba_ssm's CUDA kernel (``None`` when mamba_ssm is missing: it only builds with
CUDA). ``selective_scan_ref`` has its signature and shapes and runs anywhere as a chunked parallel scan
with a hand-written backward; ``selective_scan_loop`` is the per-step recurrence of mamba_ssm's own
``selective_scan_ref``, kept as the ground truth the parallel reference is tested against.

``discretization="euler"`` (keyword beyond mamba_ssm's signature, reference only) replaces the ZOH decay
``exp(delta A)`` by ``1 + delta A`` for the discretization ablation; the input term is ``delta B u`` in both
cases, as in mamba_ssm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


try:  # the fused kernel: only importable where mamba_ssm was built (CUDA)
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
except ImportError:
    selective_scan_fn = None

DISCRETIZATIONS = ("zoh", "euler")
AUTO_SINGLE_CHUNK_SLAB, AUTO_CHUNK = 16384, 16  # chunk_size=None: see ``_chunk`` (tuned on CPU, 1 thread)


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


def _check_discretization(discretization: str) -> bool:
    """True for Euler, False for ZOH."""
    if discretization not in DISCRETIZATIONS:
        raise ValueError(f"unknown discretization {discretization!r}; use one of {DISCRETIZATIONS}")
    return discretization == "euler"


def _time_major(M: torch.Tensor, d: int) -> torch.Tensor:
    """B or C as (b, l, d, n) or a broadcastable view: from (d, n), (b, n, l) or (b, g, n, l)."""
    M = M.float()
    if M.dim() == 2:
        return M[None, None]
    if M.dim() == 3:
        return M.transpose(1, 2)[:, :, None, :]
    return M.permute(0, 3, 1, 2).repeat_interleave(d // M.shape[1], dim=2)  # channel = g * (d/g) + i


# ---- chunked two-pass scan (see module docstring) --------------------------------------------------------


class _Plan:
    """Chunked time-major layout: position ``l = c * T + t`` lives at ``[t, :, c]``; states are (b, nc, n, d).

    Every per-step op then works on one contiguous (b, nc, n, d) slab (all chunks at once) that stays in
    cache; nothing of size (b, L, d, n) is materialised in the forward.
    """

    def __init__(self, u, dl, A, B, C, T):
        b, d, L = u.shape
        self.b, self.d, self.n, self.L = b, d, A.shape[1], L
        self.T = T = max(1, min(T, L))
        self.nc = -(-L // T)
        self.pad = self.nc * T - L  # padded steps (delta = 0: decay 1, input 0) come last: they change nothing
        self.g = B.shape[1] if B.dim() == 4 else (C.shape[1] if C.dim() == 4 else 1)
        self.dl, self.du = self.tm(dl), self.tm(dl * u)
        self.AT = A.t().contiguous()  # (n, d)
        self.B, self.C = self.mat(B), self.mat(C)

    def tm(self, X: torch.Tensor) -> torch.Tensor:
        """(b, k, L) -> (T, b, nc, k) contiguous (via a 2-D transpose: ATen's fast blocked path)."""
        if self.pad:
            X = F.pad(X, (0, self.pad))
        b, k, Lp = X.shape
        Y = X.reshape(b * k, Lp).t().contiguous()  # (nc * T, b * k)
        return Y.view(self.nc, self.T, b, k).permute(1, 2, 0, 3).contiguous()

    def from_tm(self, Y: torch.Tensor) -> torch.Tensor:
        """(T, b, nc, k) -> (b, k, L) contiguous."""
        T, b, nc, k = Y.shape
        Z = Y.permute(2, 0, 1, 3).reshape(nc * T, b * k).t().contiguous().view(b, k, nc * T)
        return Z[..., : self.L]

    def mat(self, M: torch.Tensor):
        """B or C as (kind, tensor): 'bnl' (T, b, nc, n), 'bgnl' (T, b, nc, n, g) or 'dn' (n, d)."""
        M = M.float()
        if M.dim() == 3:
            return "bnl", self.tm(M)
        if M.dim() == 4:
            Mt = self.tm(M.reshape(self.b, -1, M.shape[-1])).view(self.T, self.b, self.nc, self.g, self.n)
            return "bgnl", Mt.transpose(-1, -2).contiguous()
        return "dn", M.t().contiguous()

    def sg(self, S: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., g, d/g)
        return S.view(*S.shape[:-1], self.g, self.d // self.g)

    def decay(self, t: int, out: torch.Tensor, euler: bool, sl=slice(None)) -> torch.Tensor:
        torch.mul(self.dl[t, :, sl, None, :], self.AT, out=out)
        return out.add_(1.0) if euler else out.exp_()

    def outer_(self, S, M, t: int, w, sl=slice(None)) -> None:
        """S (b, nc', n, d) += M_t[n] * w[d] (w: (b, nc', d)), M in B/C form."""
        kind, Mv = M
        if kind == "bnl":
            S.addcmul_(Mv[t, :, sl, :, None], w[:, :, None, :])
        elif kind == "bgnl":
            self.sg(S).addcmul_(Mv[t, :, sl, :, :, None], self.sg(w[:, :, None, :]))
        else:
            S.addcmul_(Mv, w[:, :, None, :])

    def contract_n(self, S, M, t: int, out) -> None:
        """out (b, nc, d) = sum_n M_t[n] S[n, d]."""
        kind, Mv = M
        if kind == "bnl":
            torch.matmul(Mv[t, :, :, None, :], S, out=out[:, :, None, :])
        elif kind == "bgnl":
            torch.sum(self.sg(S) * Mv[t, ..., None], dim=2, out=self.sg(out))
        else:
            torch.sum(S * Mv, dim=2, out=out)

    def contract_d(self, S, M, t: int, w, acc) -> None:
        """Gradient of M_t: sum over the channels d of S[n, d] * w[d], into acc (see ``grad_buffer``)."""
        kind = M[0]
        if kind == "bnl":
            torch.matmul(S, w[..., None], out=acc[t, ..., None])
        elif kind == "bgnl":
            torch.sum(self.sg(S) * self.sg(w[:, :, None, :]), dim=-1, out=acc[t])
        else:
            acc.addcmul_(S, w[:, :, None, :])

    def grad_buffer(self, M, like):
        kind = M[0]
        if kind == "bnl":
            return like.new_empty(self.T, self.b, self.nc, self.n)
        if kind == "bgnl":
            return like.new_empty(self.T, self.b, self.nc, self.n, self.g)
        return like.new_zeros(self.b, self.nc, self.n, self.d)

    def grad_finish(self, M, acc):
        kind = M[0]
        if kind == "bnl":
            return self.from_tm(acc)
        if kind == "bgnl":
            T, b, nc = acc.shape[:3]
            return self.from_tm(acc.transpose(-1, -2).reshape(T, b, nc, -1)).reshape(b, self.g, self.n, self.L)
        return acc.sum((0, 1)).t()

    def chunk_decay(self, euler: bool) -> torch.Tensor:
        """(b, nc, n, d): product of the decays over each chunk (exp of a non-positive sum for ZOH)."""
        if not euler:
            return torch.exp(self.dl.sum(0)[:, :, None, :] * self.AT)
        Pc = self.dl.new_ones(self.b, self.nc, self.n, self.d)
        a = torch.empty_like(Pc)
        for t in range(self.T):
            Pc.mul_(self.decay(t, a, euler))
        return Pc


def _forward_states(P: _Plan, euler: bool, want_y: bool = True, store_h: bool = False, dy=None, dC=None):
    """Pass 1 (local chunk-end states), carry across chunks, pass 2 (true states, y, optional dC).

    -> y (T, b, nc, d) | None, state after the last step (b, nc, n, d), chunk entry states H0, h_all | None.
    """
    b, nc, n, d, T = P.b, P.nc, P.n, P.d, P.T
    new = P.dl.new_empty
    H0 = P.dl.new_zeros(b, nc, n, d)
    if nc > 1:  # the last chunk's end state is never needed
        sl = slice(0, nc - 1)
        S, a1 = P.dl.new_zeros(b, nc - 1, n, d), new(b, nc - 1, n, d)
        for t in range(T):
            if t:
                S.mul_(P.decay(t, a1, euler, sl))
            P.outer_(S, P.B, t, P.du[t, :, sl], sl)
        Pc = P.chunk_decay(euler)
        for c in range(1, nc):
            torch.addcmul(S[:, c - 1], Pc[:, c - 1], H0[:, c - 1], out=H0[:, c])
    a = new(b, nc, n, d)
    y = new(T, b, nc, d) if want_y else None
    h_all = new(T, b, nc, n, d) if store_h else None
    S = prev = H0
    for t in range(T):
        P.decay(t, a, euler)
        if store_h:
            S = torch.mul(a, prev, out=h_all[t])
            prev = S
        elif t:
            S.mul_(a)
        else:
            S = torch.mul(a, H0)
        P.outer_(S, P.B, t, P.du[t])
        if want_y:
            P.contract_n(S, P.C, t, y[t])
        if dC is not None:
            P.contract_d(S, P.C, t, dy[t], dC)
    return y, S, H0, h_all


def _prepare_delta(delta, delta_bias, delta_softplus):
    """delta' = softplus(delta + bias) (or without either) in fp32, and the pre-activation (for the backward)."""
    pre = delta.float()
    if delta_bias is not None:
        pre = pre + delta_bias[..., None].float()
    return (F.softplus(pre) if delta_softplus else pre), pre


def _chunk(b: int, d: int, n: int, L: int, chunk_size) -> int:
    """Chunk length: ``chunk_size`` when given, else one chunk (a single pass) when a step's (b, d, n) slab is
    big enough to hide the per-op overhead, else short chunks (two passes over slabs of all chunks at once)."""
    if chunk_size:
        return int(chunk_size)
    if b * d * n >= AUTO_SINGLE_CHUNK_SLAB:
        return L
    return AUTO_CHUNK if L <= 1024 else 2 * AUTO_CHUNK


def _ref_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size, euler):
    if A.is_complex():
        raise NotImplementedError("complex A is not supported by the reference scans")
    dtype_in = u.dtype
    uf = u.float()
    dl, _ = _prepare_delta(delta, delta_bias, delta_softplus)
    P = _Plan(uf, dl, A.float(), B, C, _chunk(*u.shape[:2], A.shape[1], u.shape[-1], chunk_size))
    y, S, _, _ = _forward_states(P, euler)
    out = P.from_tm(y)
    if D is not None:
        out = out + uf * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    return out.contiguous().to(dtype_in), S[:, -1].transpose(1, 2).contiguous()


def selective_scan_ref_bwd(
    dout, dlast, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
    chunk_size=None, discretization: str = "zoh",
):
    """Analytic backward of ``selective_scan_ref`` (returning ``(out, last_state)``): the adjoint state
    ``g_t = exp(delta_{t+1} A) g_{t+1} + C_t dy_t`` is the same chunked two-pass scan run in reverse time.

    dout: (b, d, l) or None, dlast: (b, d, n) or None -> grads of (u, delta, A, B, C, D, z, delta_bias), each
    None where that input is None, in the input's dtype. The states are recomputed (nothing is saved).
    """
    euler = _check_discretization(discretization)
    b, d, L = u.shape
    uf = u.float()
    dl, pre = _prepare_delta(delta, delta_bias, delta_softplus)
    P = _Plan(uf, dl, A.float(), B, C, _chunk(b, d, A.shape[1], L, chunk_size))
    nc, n, T = P.nc, P.n, P.T
    g = uf.new_zeros(b, d, L) if dout is None else dout.float()
    dz = None
    if z is not None:
        zf = z.float()
        sz = torch.sigmoid(zf)
        g_pre = g * (zf * sz)
    else:
        g_pre = g
    dy = P.tm(g_pre)
    dC = P.grad_buffer(P.C, dy)
    y, _, H0, h_all = _forward_states(P, euler, want_y=z is not None, store_h=True, dy=dy, dC=dC)
    if z is not None:
        out_pre = P.from_tm(y)
        if D is not None:
            out_pre = out_pre + uf * D.float()[:, None]
        dz = g * out_pre * sz * (1 + zf * (1 - sz))
    # reverse carry: E[:, c] is the adjoint flowing into chunk c from its right
    E = uf.new_zeros(b, nc, n, d)
    if dlast is not None:
        E[:, -1] = dlast.float().transpose(1, 2)
    if nc > 1:
        sl = slice(1, None)
        Fl, a1 = uf.new_zeros(b, nc - 1, n, d), uf.new_empty(b, nc - 1, n, d)
        for t in range(T - 1, -1, -1):
            P.outer_(Fl, P.C, t, dy[t, :, sl], sl)
            Fl.mul_(P.decay(t, a1, euler, sl))
        Pc = P.chunk_decay(euler)
        for c in range(nc - 1, 0, -1):
            torch.addcmul(Fl[:, c - 1], Pc[:, c], E[:, c], out=E[:, c - 1])
    G = E
    ddl, ddu = uf.new_empty(T, b, nc, d), uf.new_empty(T, b, nc, d)
    dB = P.grad_buffer(P.B, dy)
    dA = uf.new_zeros(b, nc, n, d)
    a, q, tmp = uf.new_empty(b, nc, n, d), uf.new_empty(b, nc, n, d), uf.new_empty(b, nc, n, d)
    for t in range(T - 1, -1, -1):
        P.outer_(G, P.C, t, dy[t])  # G = g_t
        P.contract_n(G, P.B, t, ddu[t])
        P.contract_d(G, P.B, t, P.du[t], dB)
        torch.mul(G, h_all[t - 1] if t else H0, out=q)
        P.decay(t, a, euler)
        if not euler:
            q.mul_(a)  # d decay / d(delta A) = decay
        torch.mul(q, P.AT, out=tmp)
        torch.sum(tmp, dim=2, out=ddl[t])
        dA.addcmul_(q, P.dl[t, :, :, None, :])
        G.mul_(a)
    ddu = P.from_tm(ddu)
    d_dl = P.from_tm(ddl) + ddu * uf
    du = ddu * dl
    dD = None
    if D is not None:
        du = du + g_pre * D.float()[:, None]
        dD = (g_pre * uf).sum((0, 2))
    d_pre = d_dl * torch.sigmoid(pre) if delta_softplus else d_dl
    dbias = None if delta_bias is None else d_pre.sum((0, 2))
    grads = (du, d_pre, dA.sum((0, 1)).t(), P.grad_finish(P.B, dB), P.grad_finish(P.C, dC), dD, dz, dbias)
    ins = (u, delta, A, B, C, D, z, delta_bias)
    return [None if x is None else gr.contiguous().to(x.dtype) for gr, x in zip(grads, ins)]


class _SelectiveScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size, euler):
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        ctx.flags = (delta_softplus, chunk_size, "euler" if euler else "zoh")
        return _ref_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size, euler)

    @staticmethod
    def backward(ctx, dout, dlast):
        grads = selective_scan_ref_bwd(dout, dlast, *ctx.saved_tensors, *ctx.flags)
        return (*grads, None, None, None)


def selective_scan_ref(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
    chunk_size: int | None = None, discretization: str = "zoh",
):
    """Chunked parallel selective scan with the signature of mamba_ssm's ``selective_scan_fn``.

    u: (b, d, l)   delta: (b, d, l)   A: (d, n) real
    B, C: (b, n, l) | (b, g, n, l) (input-dependent, g divides d) | (d, n) (time-invariant)
    D: (d,)   z: (b, d, l)   delta_bias: (d,)
    -> out: (b, d, l) in u's dtype; with ``return_last_state`` also last_state: (b, d, n) fp32.
    ``chunk_size``: time steps per chunk (``None``: ``_chunk``'s choice by ``l``). All arithmetic is fp32.
    Differentiable through an analytic backward (``selective_scan_ref_bwd``); unlike the fused kernel,
    gradients also flow through ``last_state``.
    """
    euler = _check_discretization(discretization)
    out, last = _SelectiveScanFn.apply(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size, euler
    )
    return (out, last) if return_last_state else out


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
