"""Mamba's selective scan (Gu & Dao, arXiv 2312.00752, Alg. 2): fused kernel, parallel reference, loop.

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,   y_t = C_t h_t + D u_t,   out = y * silu(z)

``selective_scan_fn`` is mamba_ssm's CUDA kernel (``None`` when mamba_ssm is missing: it only builds with
CUDA). ``selective_scan_ref`` has its signature and shapes and runs anywhere as a chunked scan with a
hand-written backward; ``selective_scan_loop`` is the per-step recurrence of mamba_ssm's own
``selective_scan_ref``, kept as the ground truth the reference is tested against.

``discretization="euler"`` (keyword beyond mamba_ssm's signature, reference only) replaces the ZOH decay
``exp(delta A)`` by ``1 + delta A`` for the discretization ablation; the input term is ``delta B u`` in both
cases, as in mamba_ssm.

The reference cuts the sequence into nc chunks of T steps laid out step-major, (T, b, nc, n, d), so that
step t of every chunk is one contiguous (b, nc, n, d) slab, and walks the steps in blocks of K (sized to
stay in a core's L2). Per block, what does not depend on the previous state is one op over the block's
steps: the decays exp2(delta A log2 e) and the inputs delta B u before the recurrence, the C contraction
(and, backward, every gradient contraction) after it; what is left in Python is the recurrence itself,
one fused multiply-add a step, in place over the inputs. With several chunks, pass 1 runs every chunk
from a zero state to its local end state, a carry over the chunks turns those into each chunk's entry
state, and pass 2 runs the recurrence from the true entry states; pass 2 is the sequential recurrence
itself, so the chunking only changes which steps run side by side, not the arithmetic of a state. The
backward is the same scan in reverse time for the adjoint state, on the states and decays the forward
kept (``selective_scan_ref_fwd(keep=True)``: two (b, l, d, n) tensors held from forward to backward, as
mamba_ssm's own reference holds them through autograd; above ``KEEP_MAX_ELEMS`` the backward recomputes
them instead).

Why this shape (issue #23; ``harness.benchmarks.cpu_scan`` times whole runs): at the claims suite's CPU
sizes (b=32, d=64, n=8, l=68) the previous version's scan was ~70% of a Mamba training step, spent in five
forward and eleven backward ops a step, a recomputed forward inside the backward, ATen's unvectorised
log1p in softplus and double layout copies; fp32 results agree with it and with the loop to float
rounding (fp64: 1e-10, tests/kernels/test_selective_scan.py).
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
# chunk_size=None: see ``chunk_length`` (tuned on CPU, 1 thread)
AUTO_SINGLE_CHUNK_SLAB, AUTO_SINGLE_CHUNK_L, AUTO_CHUNK = 2048, 256, 16
BLOCK_ELEMS = 1 << 17  # state elements of one block of steps (see ``_Plan``): 512 KiB in fp32
KEEP_MAX_ELEMS = 1 << 24  # the most (b, l, d, n) elements a forward keeps for its backward (``keeps_states``)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """fp64 inputs compute in fp64 (exactness tests); every other dtype computes in fp32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _prepare(u, delta, A, delta_bias, delta_softplus):
    if A.is_complex():
        raise NotImplementedError("complex A is not supported by the reference scans")
    dt = compute_dtype(u)
    u, delta, A = u.to(dt), delta.to(dt), A.to(dt)
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].to(dt)
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


def _time_major(M: torch.Tensor, d: int, dtype: torch.dtype) -> torch.Tensor:
    """B or C as (b, l, d, n) or a broadcastable view: from (d, n), (b, n, l) or (b, g, n, l)."""
    M = M.to(dtype)
    if M.dim() == 2:
        return M[None, None]
    if M.dim() == 3:
        return M.transpose(1, 2)[:, :, None, :]
    return M.permute(0, 3, 1, 2).repeat_interleave(d // M.shape[1], dim=2)  # channel = g * (d/g) + i


# ---- chunked, blocked scan (see module docstring) --------------------------------------------------------


def softplus(x: torch.Tensor, threshold: float = 20.0) -> torch.Tensor:
    """``F.softplus(x)`` (beta 1, same threshold) to fp32 rounding, ~1.6x faster on CPU: ATen's CPU log1p is
    not vectorised (~10 ns an element), so log1p(e) is computed as log(w) - ((w - 1) - e) / w with w = 1 + e
    (Goldberg's compensation: exact to a few ulps, and e for e below fp32's epsilon)."""
    e = x.clamp(max=threshold).exp_()
    w = e + 1.0
    fix = (w - 1.0).sub_(e).div_(w)
    return w.log_().sub_(fix).where(x <= threshold, x)


class _Plan:
    """Chunked step-major layout of one call's inputs, and the blocks of steps the scans walk through.

    Position ``l = c * T + t`` (chunk ``c``, step ``t``) lives at ``[t, :, c]`` of a (T, b, nc, k) tensor;
    padded steps (delta = 0: decay 1, input 0) come last and change nothing. The steps are walked in blocks
    of K: a block's decays and inputs, (K, b, nc, n, d), are each one op into buffers reused by every block,
    sized to stay in a core's L2 (``BLOCK_ELEMS``): sequence-long (b, l, d, n) temporaries cost more in
    memory traffic than their fewer ops save (at b=32, d=64, n=8, l=68 on 2 shared cores, a forward writing
    sequence-long stores took ~1.8x the blocked one; only the forward before a backward keeps them).
    """

    def __init__(self, u, dl, A, B, C, T, euler, steps=None):
        """``steps``: delta' and delta' u already in this layout (then ``dl`` is not read)."""
        b, d, L = u.shape
        self.b, self.d, self.n, self.L, self.euler = b, d, A.shape[1], L, euler
        self.T = T = max(1, min(T, L))
        self.nc = -(-L // T)
        self.pad = self.nc * T - L
        self.g = B.shape[1] if B.dim() == 4 else (C.shape[1] if C.dim() == 4 else 1)
        # delta' and delta' u: (T, b, nc, d)
        self.dl, self.du = steps if steps is not None else (self.to_steps(dl), self.to_steps(dl * u))
        self.At = A.t().contiguous()  # (n, d)
        # ZOH: exp(delta A) = exp2(delta A log2 e), and ATen's exp2 is ~2.5x cheaper than its exp on CPU
        self.A_dec = self.At if euler else self.At * LOG2E
        self.B, self.C = _Mat(self, B), _Mat(self, C)
        K = max(1, min(T, BLOCK_ELEMS // (b * self.nc * self.n * d)))
        self.blocks = [(t0, min(t0 + K, T)) for t0 in range(0, T, K)]
        self.dec_buf, self.in_buf = (self.dl.new_empty(K, b, self.nc, self.n, d) for _ in range(2))

    def to_steps(self, X: torch.Tensor) -> torch.Tensor:
        """(b, k, L) -> (T, b, nc, k) contiguous, zero-padded to nc * T steps: one copy from either layout
        (a (b, k, L) view of time-major memory, as the mixer's delta and z are, is permuted directly)."""
        if self.pad:
            X = F.pad(X, (0, self.pad))
        b, k, Lp = X.shape
        if X.stride(1) == 1:  # time-major memory: (L, b, k) rows are contiguous k-vectors
            return X.view(b, k, self.nc, self.T).permute(3, 0, 2, 1).contiguous()
        Y = X.reshape(b * k, Lp).t().contiguous().view(self.nc, self.T, b, k)  # blocked 2-D transpose
        return Y.permute(1, 2, 0, 3).contiguous()

    def from_steps(self, Y: torch.Tensor) -> torch.Tensor:
        """(T, b, nc, k) -> (b, k, L) contiguous."""
        T, b, nc, k = Y.shape
        Z = Y.permute(2, 0, 1, 3).reshape(nc * T, b * k).t().contiguous().view(b, k, nc * T)
        return Z[..., : self.L].contiguous() if self.pad else Z

    def new_steps(self, *k) -> torch.Tensor:
        return self.dl.new_empty(self.T, self.b, self.nc, *k)

    def sg(self, S: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., g, d/g) for grouped B, C
        return S.unflatten(-1, (self.g, -1))

    def block(self, t0: int, t1: int, dec_out=None, in_out=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps t0..t1-1: decays (exp(delta A) for ZOH, 1 + delta A for Euler) and inputs delta B u, each
        (t1 - t0, b, nc, n, d), into ``dec_out`` and ``in_out`` (default: the reused buffers)."""
        dec_out = self.dec_buf[: t1 - t0] if dec_out is None else dec_out
        Dec = torch.mul(self.dl[t0:t1, ..., None, :], self.A_dec, out=dec_out)
        Dec.add_(1.0) if self.euler else Dec.exp2_()
        return Dec, self.B.outer(self.du, t0, t1, self.in_buf[: t1 - t0] if in_out is None else in_out)


class _Mat:
    """B or C of ``_Plan``: kind 'bnl' (b, n, l), 'bgnl' (b, g, n, l; channel ``g * (d / g) + i`` reads group
    ``g``) or 'dn' (d, n; time-invariant), with its ops on the steps t0..t1-1 of a block: ``outer``
    (M_t[n] w_t[d]), ``contract_n`` (sum_n M_t[n] S_t[n, d]) and ``contract_d`` (sum_d S_t[n, d] w_t[d], the
    gradient of M, into a ``grad_buffer``). S: (k, b, nc, n, d) block states; w: (T, b, nc, d)."""

    def __init__(self, P: _Plan, M: torch.Tensor):
        M = M.to(P.dl.dtype)
        self.P, self.kind = P, {2: "dn", 3: "bnl", 4: "bgnl"}[M.dim()]
        if self.kind == "dn":
            self.nd = M.t().contiguous()  # (n, d)
        elif self.kind == "bnl":
            self.Ms = P.to_steps(M)  # (T, b, nc, n)
        else:
            self.Ms = P.to_steps(M.reshape(P.b, -1, M.shape[-1])).unflatten(-1, (P.g, P.n))  # (T, b, nc, g, n)

    @functools.cached_property
    def col(self) -> torch.Tensor:
        """M broadcast over the channels: (T, b, nc, n, 1), (T, b, nc, n, g, 1) or (n, d)."""
        if self.kind == "dn":
            return self.nd
        return self.Ms.unsqueeze(-1) if self.kind == "bnl" else self.Ms.transpose(-1, -2)[..., None]

    def outer(self, w, t0, t1, out) -> torch.Tensor:
        """out (k, b, nc, n, d) = M_t[n] * w_t[d]."""
        P = self.P
        if self.kind == "bgnl":
            torch.mul(self.col[t0:t1], P.sg(w[t0:t1]).unsqueeze(-3), out=out.unflatten(-1, (P.g, -1)))
            return out
        return torch.mul(self.col if self.kind == "dn" else self.col[t0:t1], w[t0:t1].unsqueeze(-2), out=out)

    def contract_n(self, S, t0, t1, out) -> None:
        """out (k, b, nc, d) = sum_n M_t[n] S_t[n, d] (S contiguous)."""
        P = self.P
        if self.kind == "bnl":  # one (1, n) x (n, d) product per step and sequence
            torch.bmm(self.Ms[t0:t1].reshape(-1, 1, P.n), S.view(-1, P.n, P.d), out=out.view(-1, 1, P.d))
        elif self.kind == "bgnl":
            torch.sum(P.sg(S) * self.col[t0:t1], dim=-3, out=P.sg(out))
        else:
            torch.sum(S * self.nd, dim=-2, out=out)

    def grad_buffer(self) -> torch.Tensor:
        if self.kind == "dn":
            return self.P.dl.new_zeros(self.P.n, self.P.d)
        return self.P.new_steps(self.P.n, *(() if self.kind == "bnl" else (self.P.g,)))

    def contract_d(self, S, w, t0, t1, acc) -> None:
        """sum_d S_t[n, d] w_t[d] into acc[t0:t1] ((T, b, nc, n) or (T, b, nc, n, g)), or added to acc (n, d)
        summed over the steps for 'dn'. (A multiply and a sum: ~4x faster on CPU than bmm's (n, d) x (d, 1).)"""
        P = self.P
        if self.kind == "bnl":
            torch.sum(S * w[t0:t1].unsqueeze(-2), dim=-1, out=acc[t0:t1])
        elif self.kind == "bgnl":
            torch.sum(P.sg(S) * P.sg(w[t0:t1]).unsqueeze(-3), dim=-1, out=acc[t0:t1])
        else:
            acc.add_((S * w[t0:t1].unsqueeze(-2)).sum((0, 1, 2)))

    def grad_finish(self, acc):
        """``contract_d``'s buffer in M's own layout."""
        P = self.P
        if self.kind == "bnl":
            return P.from_steps(acc)
        if self.kind == "bgnl":
            return P.from_steps(acc.transpose(-1, -2).flatten(-2)).view(P.b, P.g, P.n, P.L)
        return acc.t()


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


def _forward_block(Dec, X, S) -> torch.Tensor:
    """In place, a block's inputs -> its states: X[i] <- Dec[i] * X[i - 1] + X[i], X[-1] being S (b, nc, n, d)
    (None: zero). -> the block's last state, a view of X."""
    Xs, Ds = X.unbind(0), Dec.unbind(0)
    if S is not None:
        Xs[0].addcmul_(Ds[0], S)
    for i in range(1, len(Xs)):
        Xs[i].addcmul_(Ds[i], Xs[i - 1])
    return Xs[-1]


def _reverse_block(Dec, G, flow) -> torch.Tensor:
    """In place, a block's C dy terms -> its adjoint states: G[i] <- Dec[i + 1] * G[i + 1] + G[i] in reverse,
    ``flow`` (b, nc, n, d; None: zero) entering after the last step. -> what flows out before the first step,
    Dec[0] * G[0] (a new tensor)."""
    Gs, Ds = G.unbind(0), Dec.unbind(0)
    if flow is not None:
        Gs[-1].add_(flow)
    for i in range(len(Gs) - 2, -1, -1):
        Gs[i].addcmul_(Ds[i + 1], Gs[i + 1])
    return Ds[0] * Gs[0]


def _entry_states(P: _Plan):
    """Pass 1 (each chunk from a zero state) and the carry over the chunks. -> the state entering each chunk
    H0 (b, nc, n, d) (None for a single chunk: zero) and the chunks' total decays (b, nc, n, d; None for a
    single chunk)."""
    if P.nc == 1:
        return None, None
    S = total = None
    for t0, t1 in P.blocks:
        Dec, X = P.block(t0, t1)
        S = _forward_block(Dec, X, S).clone()
        if P.euler:  # the product of the decays (ZOH: exp2 of the summed exponents, below)
            prod = Dec.prod(0)
            total = prod if total is None else total.mul_(prod)
    if not P.euler:
        total = (P.dl.sum(0).unsqueeze(2) * P.A_dec).exp2_()
    H0 = torch.zeros_like(S)
    H0[:, 1:] = _carry(S, total.clone(), H0[:, 0])[:, :-1]
    return H0, total


def keeps_states(u: torch.Tensor, A: torch.Tensor, needs_grad: bool) -> bool:
    """Whether a forward keeps its states and decays for the backward: when one follows and they are at most
    ``KEEP_MAX_ELEMS`` each (64 MiB in fp32); larger ones (long sequences, wide models) are recomputed by
    the backward instead, so a deep model does not hold every layer's at once."""
    return needs_grad and u.numel() * A.shape[1] <= KEEP_MAX_ELEMS


def _prepare_delta(delta, delta_bias, delta_softplus, dtype):
    """delta' = softplus(delta + bias) (or without either) in ``dtype``, and the pre-activation."""
    pre = delta.to(dtype)
    if delta_bias is not None:
        pre = pre + delta_bias[..., None].to(dtype)
    return (softplus(pre) if delta_softplus else pre), pre


def chunk_length(b: int, d: int, n: int, L: int, chunk_size) -> int:
    """Chunk length: ``chunk_size`` when given, else one chunk (a single pass, one op a step) when a step's
    (b, d, n) slab is big enough to hide the per-op overhead or the sequence is short, else short chunks (two
    passes over slabs of all chunks at once)."""
    if chunk_size:
        return int(chunk_size)
    if b * d * n >= AUTO_SINGLE_CHUNK_SLAB or L <= AUTO_SINGLE_CHUNK_L:
        return L
    return AUTO_CHUNK if L <= 1024 else 2 * AUTO_CHUNK


def _plan(u, delta, A, B, C, delta_bias, delta_softplus, chunk_size, euler):
    """-> the plan of one call, u and delta' in the compute dtype."""
    if A.is_complex():
        raise NotImplementedError("complex A is not supported by the reference scans")
    dt = compute_dtype(u)
    uf = u.to(dt)
    dl = _prepare_delta(delta, delta_bias, delta_softplus, dt)[0]
    b, d, L = u.shape
    return _Plan(uf, dl, A.to(dt), B, C, chunk_length(b, d, A.shape[1], L, chunk_size), euler), uf


def selective_scan_ref_fwd(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, chunk_size=None,
    discretization: str = "zoh", keep: bool = False,
):
    """``selective_scan_ref``'s forward -> (out, last_state, kept).

    ``keep``: also return what ``selective_scan_ref_bwd`` reuses instead of recomputing it: every state and
    every decay, (2, T, b, nc, n, d), and delta' and delta' u, (2, T, b, nc, d), in the plan's step-major
    layout (two (b, l, d, n) tensors, as mamba_ssm's own reference keeps through autograd); without it, two
    empty tensors, and the blocks run in small reused buffers.
    """
    euler = _check_discretization(discretization)
    P, uf = _plan(u, delta, A, B, C, delta_bias, delta_softplus, chunk_size, euler)
    S, _ = _entry_states(P)
    y = P.new_steps(P.d)
    if keep:
        big = P.dl.new_empty(2, P.T, P.b, P.nc, P.n, P.d)
        small = torch.stack([P.dl, P.du])
    else:
        big, small = P.dl.new_empty(0), P.dl.new_empty(0)
    for t0, t1 in P.blocks:  # pass 2: the recurrence from the true entry states, contracted with C
        Dec, X = P.block(t0, t1, *((big[1, t0:t1], big[0, t0:t1]) if keep else ()))
        S = _forward_block(Dec, X, S)
        P.C.contract_n(X, t0, t1, y[t0:t1])
        if not keep:
            S = S.clone()  # the buffers are reused by the next block
    out = P.from_steps(y)
    if D is not None:
        out.addcmul_(uf, D.to(uf.dtype)[:, None])
    if z is not None:
        out.mul_(F.silu(z.to(uf.dtype)))
    return out.to(u.dtype), S[:, -1].transpose(1, 2).contiguous(), (big, small)


def selective_scan_ref_bwd(
    dout, dlast, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
    chunk_size=None, discretization: str = "zoh", kept=None,
):
    """Analytic backward of ``selective_scan_ref`` (returning ``(out, last_state)``): the adjoint state
    ``g_t = exp(delta_{t+1} A) g_{t+1} + C_t dy_t`` is the same chunked scan run in reverse time.

    dout: (b, d, l) or None, dlast: (b, d, n) or None, kept: what ``selective_scan_ref_fwd(keep=True)``
    returned (None: run it again) -> grads of (u, delta, A, B, C, D, z, delta_bias), each None where that
    input is None, in the input's dtype.
    """
    if kept is None or kept[0].numel() == 0:
        kept = selective_scan_ref_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size,
                                      discretization, keep=True)[2]
    euler = _check_discretization(discretization)
    dt = compute_dtype(u)
    uf = u.to(dt)
    pre = delta.to(dt) if delta_bias is None else delta.to(dt) + delta_bias[..., None].to(dt)
    (H, Dec), (dl_s, du_s) = kept
    P = _Plan(uf, None, A.to(dt), B, C, chunk_length(*u.shape[:2], A.shape[1], u.shape[-1], chunk_size), euler,
              steps=(dl_s, du_s))
    dl = P.from_steps(P.dl)
    H0 = torch.zeros_like(H[0])  # the state entering each chunk
    H0[:, 1:] = H[-1, :, :-1]

    g = torch.zeros_like(uf) if dout is None else dout.to(dt)
    if z is not None:
        zf = z.to(dt)
        sz = torch.sigmoid(zf)
        g_pre = g * (zf * sz)
    else:
        g_pre = g
    dy = P.to_steps(g_pre)  # (T, b, nc, d)
    flow = None  # the adjoint entering each chunk from its right (after its last step)
    if dlast is not None or P.nc > 1:
        flow = torch.zeros_like(H0)
        if dlast is not None:
            flow[:, -1] = dlast.to(dt).transpose(1, 2)
    if P.nc > 1:  # reverse pass 1: what each chunk passes to its left from a zero right boundary, then carry
        out = None
        for t0, t1 in reversed(P.blocks):
            out = _reverse_block(Dec[t0:t1], P.C.outer(dy, t0, t1, P.in_buf[: t1 - t0]), out)
        total = Dec.prod(0) if euler else (P.dl.sum(0).unsqueeze(2) * P.A_dec).exp2_()
        flow[:, :-1] = _carry(out.flip(1), total.flip(1), flow[:, -1])[:, :-1].flip(1)

    ddl, ddu = P.new_steps(P.d), P.new_steps(P.d)
    dB, dC = P.B.grad_buffer(), P.C.grad_buffer()
    dA = torch.zeros_like(P.At)
    for t0, t1 in reversed(P.blocks):  # reverse pass 2, block by block
        P.C.contract_d(H[t0:t1], dy, t0, t1, dC)
        G = P.C.outer(dy, t0, t1, P.in_buf[: t1 - t0])
        flow = _reverse_block(Dec[t0:t1], G, flow)
        P.B.contract_n(G, t0, t1, ddu[t0:t1])
        P.B.contract_d(G, P.du, t0, t1, dB)
        # Q = d loss / d(delta A) per step: g_t decay_t h_{t-1} (ZOH: d decay / d(delta A) = decay), or
        # g_t h_{t-1} (Euler); in place over G
        Q = G if euler else G.mul_(Dec[t0:t1])
        Q[1:].mul_(H[t0:t1 - 1])
        Q[0].mul_(H[t0 - 1] if t0 else H0)
        torch.sum(Q * P.At, dim=-2, out=ddl[t0:t1])
        dA.add_(Q.mul_(P.dl[t0:t1].unsqueeze(-2)).sum((0, 1, 2)))

    dz = None
    if z is not None:
        y = P.new_steps(P.d)
        P.C.contract_n(H, 0, P.T, y)
        out_pre = P.from_steps(y)
        if D is not None:
            out_pre.addcmul_(uf, D.to(dt)[:, None])
        dz = g * out_pre * sz * (1 + zf * (1 - sz))
    ddu = P.from_steps(ddu)
    d_dl = P.from_steps(ddl).addcmul_(ddu, uf)
    du = ddu * dl
    dD = None
    if D is not None:
        du.addcmul_(g_pre, D.to(dt)[:, None])
        dD = (g_pre * uf).sum((0, 2))
    d_pre = d_dl * torch.sigmoid(pre) if delta_softplus else d_dl
    dbias = None if delta_bias is None else d_pre.sum((0, 2))
    grads = (du, d_pre, dA.t(), P.B.grad_finish(dB), P.C.grad_finish(dC), dD, dz, dbias)
    ins = (u, delta, A, B, C, D, z, delta_bias)
    return [None if x is None else gr.contiguous().to(x.dtype) for gr, x in zip(grads, ins)]


class _SelectiveScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size, euler):
        flags = (delta_softplus, chunk_size, "euler" if euler else "zoh")
        keep = keeps_states(u, A, any(ctx.needs_input_grad[:8]))
        out, last, kept = selective_scan_ref_fwd(u, delta, A, B, C, D, z, delta_bias, *flags, keep=keep)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, *kept)
        ctx.flags = flags
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        *ins, big, small = ctx.saved_tensors
        grads = selective_scan_ref_bwd(dout, dlast, *ins, *ctx.flags, kept=(big, small))
        return (*grads, None, None, None)


def selective_scan_ref(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
    chunk_size: int | None = None, discretization: str = "zoh",
):
    """Chunked selective scan with the signature of mamba_ssm's ``selective_scan_fn``.

    u: (b, d, l)   delta: (b, d, l)   A: (d, n) real
    B, C: (b, n, l) | (b, g, n, l) (input-dependent, g divides d) | (d, n) (time-invariant)
    D: (d,)   z: (b, d, l)   delta_bias: (d,)
    -> out: (b, d, l) in u's dtype; with ``return_last_state`` also last_state: (b, d, n) in the compute
    dtype (fp32; fp64 for fp64 ``u``). ``chunk_size``: time steps per chunk (``None``: ``chunk_length``'s choice).
    When an input needs a gradient, the forward keeps every step's state and decay (two (b, l, d, n) tensors,
    see ``keeps_states``) for the backward; otherwise it runs in block-sized buffers. Differentiable through an analytic backward
    (``selective_scan_ref_bwd``); unlike the fused kernel, gradients also flow through ``last_state``.
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
    -> out: (b, d, l) [, last_state: (b, d, n)]. Computes in fp32 (fp64 for fp64 ``u``).
    """
    dtype_in = u.dtype
    u, delta, A = _prepare(u, delta, A, delta_bias, delta_softplus)
    b, d, l = u.shape
    Bt, Ct = _time_major(B, d, u.dtype), _time_major(C, d, u.dtype)
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for i in range(l):
        Bi = Bt[:, min(i, Bt.shape[1] - 1)]  # (b|1, d|1, n)
        Ci = Ct[:, min(i, Ct.shape[1] - 1)]
        a = _decay(delta[:, :, i, None] * A, discretization)
        h = a * h + (delta[:, :, i] * u[:, :, i])[..., None] * Bi
        ys.append((h * Ci).sum(-1))
    y = torch.stack(ys, dim=2)
    out = y if D is None else y + u * D.to(u.dtype)[:, None]
    if z is not None:
        out = out * F.silu(z.to(u.dtype))
    out = out.to(dtype_in)
    return (out, h) if return_last_state else out
