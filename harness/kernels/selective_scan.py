"""Mamba's selective scan (Gu & Dao, arXiv 2312.00752, Alg. 2): fused kernel, parallel reference, loop.

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,   y_t = C_t h_t + D u_t,   out = y * silu(z)

``selective_scan_fn`` is mamba_ssm's CUDA kernel (``None`` when mamba_ssm is missing: it only builds with
CUDA). ``selective_scan_ref`` has its signature and shapes and runs anywhere as a chunked parallel scan
with a hand-written backward; ``selective_scan_loop`` is the per-step recurrence of mamba_ssm's own
``selective_scan_ref``, kept as the ground truth the parallel reference is tested against.

``discretization="euler"`` (keyword beyond mamba_ssm's signature, reference only) replaces the ZOH decay
``exp(delta A)`` by ``1 + delta A`` for the discretization ablation; the input term is ``delta B u`` in both
cases, as in mamba_ssm.

The reference cuts the sequence into nc chunks of T steps and runs every per-step op on one (b, nc, n, d)
slab holding all chunks, so Python loops over T steps, not l. Pass 1 runs the recurrence from zero states
(the chunks' local end states), a carry over the chunks turns those into each chunk's entry state, and
pass 2 reruns the recurrence from the true entry states and contracts with C. Per element of (l, d, n)
that is one decay (``delta A`` then one exp2, computed in pass 1 and stored for pass 2), two multiply-adds
per pass and one bmm row: 7 slab ops. On one CPU thread at l=4096, d=64, n=16 the forward spends ~25% in
the exp2, ~35% in the other slab ops, ~20% in softplus(delta), silu(z) and the layout transposes, and the
rest in per-op overhead (Python, views, the carry's small ops).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


try:  # the fused kernel: only importable where mamba_ssm was built (CUDA)
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
except ImportError:
    selective_scan_fn = None

DISCRETIZATIONS = ("zoh", "euler")
LOG2E = 1.4426950408889634
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
    """Chunked step-major layout of one call's inputs, and the per-step views the scans loop over.

    Position ``l = c * T + t`` (chunk ``c``, step ``t``) lives at ``[t, :, c]`` of a (T, b, nc, k) tensor, so
    step ``t`` of every chunk is one contiguous (b, nc, k) block: each per-step op is a single vectorised op
    on a (b, nc, n, d) state slab covering all chunks, and Python loops over T steps, not L. The per-step
    views are made once per tensor (``unbind``), not once per step: view creation is a visible cost here.
    """

    def __init__(self, u, dl, A, B, C, T, euler):
        b, d, L = u.shape
        self.b, self.d, self.n, self.L, self.euler = b, d, A.shape[1], L, euler
        self.T = T = max(1, min(T, L))
        self.nc = -(-L // T)
        self.pad = self.nc * T - L  # padded steps (delta = 0: decay 1, input 0) come last: they change nothing
        self.g = B.shape[1] if B.dim() == 4 else (C.shape[1] if C.dim() == 4 else 1)
        self.dl_s = self.to_steps(dl)  # (T, b, nc, d)
        self.dl = self.dl_s.unsqueeze(3).unbind(0)  # per step (b, nc, 1, d): broadcast over the states n
        self.du = self.to_steps(dl * u).unsqueeze(3).unbind(0)
        self.At = A.t().contiguous()  # (n, d)
        # ZOH: exp(delta A) = exp2(delta A log2 e), and ATen's exp2 is ~2.5x cheaper than its exp on CPU
        self.A_exp = self.At if euler else self.At * LOG2E
        self.B, self.C = _Mat(self, B), _Mat(self, C)

    def to_steps(self, X: torch.Tensor) -> torch.Tensor:
        """(b, k, L) -> (T, b, nc, k) contiguous, zero-padded to nc * T steps.

        A blocked 2-D transpose then a copy of contiguous k-rows: several times faster than one 4-D permute.
        """
        if self.pad:
            X = F.pad(X, (0, self.pad))
        b, k, Lp = X.shape
        Y = X.reshape(b * k, Lp).t().contiguous().view(self.nc, self.T, b, k)
        return Y.permute(1, 2, 0, 3).contiguous()

    def from_steps(self, Y: torch.Tensor) -> torch.Tensor:
        """(T, b, nc, k) -> (b, k, L) contiguous."""
        T, b, nc, k = Y.shape
        Z = Y.permute(2, 0, 1, 3).reshape(nc * T, b * k).t().contiguous().view(b, k, nc * T)
        return Z[..., : self.L].contiguous() if self.pad else Z

    def new_steps(self, *k) -> torch.Tensor:
        """A (T, b, nc, *k) buffer for per-step outputs: contiguous per step (ATen's bmm into a strided out is
        ~6x slower)."""
        return self.dl_s.new_empty(self.T, self.b, self.nc, *k)

    def sg(self, S: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., g, d/g) for grouped B, C
        return S.unflatten(-1, (self.g, -1))

    def decay(self, t: int, out: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
        """out (b, nc, n, d) = exp(delta_t A) for ZOH, 1 + delta_t A for Euler; tmp: scratch of out's shape.

        delta_t A goes to ``tmp`` (a slab reused every step, so in cache), not to ``out``: when ``out`` is a
        step of the (T, ...) decay store, its first write then happens in exp2, which is compute-bound and
        hides the memory traffic (writing it in the cheap multiply made that ~2x slower).
        """
        torch.mul(self.dl[t], self.A_exp, out=tmp)
        return torch.add(tmp, 1.0, out=out) if self.euler else torch.exp2(tmp, out=out)

    def chunk_decays(self, Dec: torch.Tensor) -> torch.Tensor:
        """(b, nc, n, d): product of the decays over each chunk (exp of a non-positive sum for ZOH)."""
        if self.euler:
            return Dec.prod(0)
        return (self.dl_s.sum(0).unsqueeze(2) * self.A_exp).exp2_()


class _Mat:
    """B or C for the per-step ops of ``_Plan``: kind 'bnl' (b, n, l), 'bgnl' (b, g, n, l; channel
    ``g * (d / g) + i`` reads group ``g``) or 'dn' (d, n; time-invariant).

    ``outer_`` adds M_t[n] * w[d] to a state, ``contract_n`` is y[d] = sum_n M_t[n] S[n, d] and
    ``contract_d`` the gradient of M_t, sum_d S[n, d] w[d], into a buffer from ``grad_buffer``.
    """

    def __init__(self, P: _Plan, M: torch.Tensor):
        M = M.float()
        self.P, self.kind = P, {2: "dn", 3: "bnl", 4: "bgnl"}[M.dim()]
        if self.kind == "dn":
            self.nd = M.t().contiguous()  # (n, d)
        elif self.kind == "bnl":
            self.Ms = P.to_steps(M)  # (T, b, nc, n)
        else:
            self.Ms = P.to_steps(M.reshape(P.b, -1, M.shape[-1])).unflatten(-1, (P.g, P.n))  # (T, b, nc, g, n)

    @functools.cached_property
    def col(self) -> tuple:
        """Per step, M_t broadcast over the channels: (b, nc, n, 1), (b, nc, n, g, 1) or (n, d)."""
        if self.kind == "dn":
            return (self.nd,) * self.P.T
        return (self.Ms.unsqueeze(-1) if self.kind == "bnl" else self.Ms.transpose(-1, -2)[..., None]).unbind(0)

    @functools.cached_property
    def row(self) -> tuple:
        """Per step, M_t as a bmm operand (b * nc, 1, n) (kind 'bnl')."""
        return self.Ms.view(self.P.T, -1, 1, self.P.n).unbind(0)

    def outer_(self, S, t: int, w) -> None:
        """S (b, nc, n, d) += M_t[n] * w[d] (w: (b, nc, 1, d))."""
        if self.kind == "bgnl":
            self.P.sg(S).addcmul_(self.col[t], self.P.sg(w))
        else:
            S.addcmul_(self.col[t], w)

    def contract_n(self, S, t: int, out) -> None:
        """out (b, nc, 1, d) = sum_n M_t[n] S[n, d] (S contiguous)."""
        P = self.P
        if self.kind == "bnl":
            torch.bmm(self.row[t], S.view(-1, P.n, P.d), out=out.view(-1, 1, P.d))
        elif self.kind == "bgnl":
            torch.sum(P.sg(S) * self.col[t], dim=2, keepdim=True, out=P.sg(out))
        else:
            torch.sum(S * self.nd, dim=2, keepdim=True, out=out)

    def grad_buffer(self, like):
        """-> (buffer, its per-step views that ``contract_d`` writes)."""
        P = self.P
        if self.kind == "dn":
            acc = like.new_zeros(P.b, P.nc, P.n, P.d)
            return acc, (acc,) * P.T
        acc = P.new_steps(P.n, 1 if self.kind == "bnl" else P.g)
        return acc, acc.unbind(0)

    def contract_d(self, S, w, acc_t) -> None:
        """Gradient of M_t: sum over the channels d of S[n, d] * w[d] (w: (b, nc, 1, d)), into acc_t."""
        P = self.P
        if self.kind == "bnl":
            torch.bmm(S.view(-1, P.n, P.d), w.view(-1, 1, P.d).transpose(1, 2), out=acc_t.view(-1, P.n, 1))
        elif self.kind == "bgnl":
            torch.sum(P.sg(S) * P.sg(w), dim=-1, out=acc_t)
        else:
            acc_t.addcmul_(S, w)

    def grad_finish(self, acc):
        P = self.P
        if self.kind == "bnl":
            return P.from_steps(acc[..., 0])
        if self.kind == "bgnl":
            return P.from_steps(acc.transpose(-1, -2).flatten(-2)).view(P.b, P.g, P.n, P.L)
        return acc.sum((0, 1)).t()


def _carry(X, P, h0):
    """States after each chunk: out[:, c] = P[:, c] * out[:, c - 1] + X[:, c], with out[:, -1] = h0.

    X, P (b, m, n, d): each chunk's end state from a zero entry state and its total decay (both contiguous,
    both overwritten; the result is X). Blocks of J ~ sqrt(m / 2) chunks are scanned in parallel, then the K
    = m / J block entry states in sequence, then one fix-up op: ~2J + K small ops instead of m (at m = 128
    the per-op overhead of the plain loop cost ~5% of the forward).
    """
    b, m, n, d = X.shape
    J = next(j for j in range(max(1, math.isqrt(m // 2)), 0, -1) if m % j == 0)
    K = m // J
    Xb, Pb = X.view(b, K, J, n, d), P.view(b, K, J, n, d)
    Xs, Ps = Xb.unbind(2), Pb.unbind(2)
    for j in range(1, J):  # scan inside the blocks (zero entry state), and the decays from each block's start
        Xs[j].addcmul_(Ps[j], Xs[j - 1])
        Ps[j].mul_(Ps[j - 1])
    E = X.new_empty(b, K, n, d)  # the state entering each block
    Es, Xe, Pe = E.unbind(1), Xs[-1].unbind(1), Ps[-1].unbind(1)
    Es[0].copy_(h0)
    for k in range(1, K):
        torch.addcmul(Xe[k - 1], Pe[k - 1], Es[k - 1], out=Es[k])
    return Xb.addcmul_(Pb, E[:, :, None]).view(b, m, n, d)


def _forward_states(P: _Plan, keep_decays: bool = False, y=None, h_all=None, dy=None, dC=None):
    """Pass 1 (local end states of all chunks), carry across chunks, pass 2 (true states).

    Each step's decays are computed once: pass 1 stores them for pass 2 (and for the backward when
    ``keep_decays``); a single chunk has no pass 1 and needs no store. Pass 2 writes, per step, y (views of a
    (T, b, nc, 1, d) ``new_steps`` buffer), the states into h_all (T views (b, nc, n, d)) and the gradient of
    C into dC (views from ``grad_buffer``), where given.
    -> state after the last step (b, nc, n, d), chunk entry states H0 (b, nc, n, d), decays (T, b, nc, n, d)
    or None.
    """
    b, nc, n, d, T = P.b, P.nc, P.n, P.d, P.T
    H0 = P.dl_s.new_zeros(b, nc, n, d)
    Dec = P.dl_s.new_empty(T, b, nc, n, d) if keep_decays or nc > 1 else None
    tmp = torch.empty_like(H0)
    if nc > 1:  # (all chunks: the last one's end state is not needed, but slicing every step costs more)
        S = torch.zeros_like(H0)
        for t, a in enumerate(Dec.unbind(0)):
            P.decay(t, a, tmp)
            if t:
                S.mul_(a)
            P.B.outer_(S, t, P.du[t])
        H0[:, 1:] = _carry(S, P.chunk_decays(Dec), H0[:, 0])[:, :-1]
    decs = Dec.unbind(0) if Dec is not None else (tmp,) * T
    S = H0
    for t, a in enumerate(decs):
        if nc == 1:
            P.decay(t, a, tmp)
        S = S.mul_(a) if h_all is None else torch.mul(S, a, out=h_all[t])
        P.B.outer_(S, t, P.du[t])
        if y is not None:
            P.C.contract_n(S, t, y[t])
        if dC is not None:
            P.C.contract_d(S, dy[t], dC[t])
    return S, H0, Dec


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
    P = _Plan(uf, dl, A.float(), B, C, _chunk(*u.shape[:2], A.shape[1], u.shape[-1], chunk_size), euler)
    y = P.new_steps(1, P.d)
    S, _, _ = _forward_states(P, y=y.unbind(0))
    out = P.from_steps(y[:, :, :, 0])
    if D is not None:
        out.addcmul_(uf, D.float()[:, None])
    if z is not None:
        out.mul_(F.silu(z.float()))
    return out.to(dtype_in), S[:, -1].transpose(1, 2).contiguous()


def selective_scan_ref_bwd(
    dout, dlast, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
    chunk_size=None, discretization: str = "zoh",
):
    """Analytic backward of ``selective_scan_ref`` (returning ``(out, last_state)``): the adjoint state
    ``g_t = exp(delta_{t+1} A) g_{t+1} + C_t dy_t`` is the same chunked two-pass scan run in reverse time.

    dout: (b, d, l) or None, dlast: (b, d, n) or None -> grads of (u, delta, A, B, C, D, z, delta_bias), each
    None where that input is None, in the input's dtype. Nothing is saved by the forward: the states are
    recomputed and kept for every step, as are the decays (two (b, l, d, n) fp32 tensors).
    """
    euler = _check_discretization(discretization)
    b, d, L = u.shape
    uf = u.float()
    dl, pre = _prepare_delta(delta, delta_bias, delta_softplus)
    P = _Plan(uf, dl, A.float(), B, C, _chunk(b, d, A.shape[1], L, chunk_size), euler)
    nc, n, T = P.nc, P.n, P.T
    g = uf.new_zeros(b, d, L) if dout is None else dout.float()
    dz = None
    if z is not None:
        zf = z.float()
        sz = torch.sigmoid(zf)
        g_pre = g * (zf * sz)
    else:
        g_pre = g
    dy = P.to_steps(g_pre).unsqueeze(3).unbind(0)
    dC, dC_t = P.C.grad_buffer(uf)
    h_all = uf.new_empty(T, b, nc, n, d)
    y = P.new_steps(1, d) if z is not None else None  # out_pre is needed for dz
    _, H0, Dec = _forward_states(
        P, keep_decays=True, y=None if y is None else y.unbind(0), h_all=h_all.unbind(0), dy=dy, dC=dC_t
    )
    decs = Dec.unbind(0)
    if z is not None:
        out_pre = P.from_steps(y[:, :, :, 0])
        if D is not None:
            out_pre.addcmul_(uf, D.float()[:, None])
        dz = g * out_pre * sz * (1 + zf * (1 - sz))
    # reverse carry: E[:, c] is the adjoint flowing into chunk c from its right
    E = uf.new_zeros(b, nc, n, d)
    if dlast is not None:
        E[:, -1] = dlast.float().transpose(1, 2)
    if nc > 1:  # local adjoints at the chunk starts, carried from the last chunk back (chunk 0's is unused)
        Fl = torch.zeros_like(E)
        for t in range(T - 1, -1, -1):
            P.C.outer_(Fl, t, dy[t])
            Fl.mul_(decs[t])
        E[:, :-1] = _carry(Fl.flip(1), P.chunk_decays(Dec).flip(1), E[:, -1])[:, :-1].flip(1)
    G = E
    ddl_s, ddu_s = P.new_steps(1, d), P.new_steps(1, d)
    ddl, ddu = ddl_s.unbind(0), ddu_s.unbind(0)
    dB, dB_t = P.B.grad_buffer(uf)
    dA = uf.new_zeros(b, nc, n, d)
    q, tmp = torch.empty_like(dA), torch.empty_like(dA)
    for t in range(T - 1, -1, -1):
        P.C.outer_(G, t, dy[t])  # G = g_t
        P.B.contract_n(G, t, ddu[t])
        P.B.contract_d(G, P.du[t], dB_t[t])
        h_prev = h_all[t - 1] if t else H0
        if euler:
            torch.mul(G, h_prev, out=q)
            G.mul_(decs[t])
        else:
            G.mul_(decs[t])
            torch.mul(G, h_prev, out=q)  # d decay / d(delta A) = decay
        torch.mul(q, P.At, out=tmp)
        torch.sum(tmp, dim=2, keepdim=True, out=ddl[t])
        dA.addcmul_(q, P.dl[t])
    ddu = P.from_steps(ddu_s[:, :, :, 0])
    d_dl = P.from_steps(ddl_s[:, :, :, 0]).addcmul_(ddu, uf)
    du = ddu * dl
    dD = None
    if D is not None:
        du.addcmul_(g_pre, D.float()[:, None])
        dD = (g_pre * uf).sum((0, 2))
    d_pre = d_dl * torch.sigmoid(pre) if delta_softplus else d_dl
    dbias = None if delta_bias is None else d_pre.sum((0, 2))
    grads = (du, d_pre, dA.sum((0, 1)).t(), P.B.grad_finish(dB), P.C.grad_finish(dC), dD, dz, dbias)
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
    With more than one chunk the forward holds every step's decay (one (b, l, d, n) fp32 tensor) between
    its two passes. Differentiable through an analytic backward (``selective_scan_ref_bwd``); unlike the
    fused kernel, gradients also flow through ``last_state``.
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
