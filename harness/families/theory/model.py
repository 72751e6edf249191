"""The one-layer models of Honarpisheh et al. (arXiv 2502.01473): a selective SSM with a controllable
spectral abscissa, and its softmax- and linear-attention counterparts.

All three read tokens through an embedding whose PAD row is the zero vector (ListOps' left padding), run ONE
sequence layer, take the output at the last step (the last token is the query) and map it to classes with
a linear readout. There is no norm and no residual on purpose: the paper's bound is about this bare layer,
and a norm would hide the state blow-up that ``s_A > 0`` causes at long T.

Selective SSM (the paper's Sec. 2), with u_t the embedded token::

    Delta_t = softplus(p + q . u_t)      (one scalar per step; ``delta="fixed"``: Delta_t = 1, no p, q)
    B_t = W_B u_t,  C_t = W_C u_t,  A_d = diag(a_d1..a_dN) for each channel d
    x_t^d = exp(Delta_t A_d) x_{t-1}^d + Delta_t B_t u_t^d,   y_t^d = C_t^T x_t^d

Delta_t, B_t and C_t are shared by the channels, A is not: a (D, N) matrix, as in the authors' code
(gen_err_sel_ssm ``models/selective_ssm.py``, ``fix_sA=False``) and in mamba's selective scan. At
initialisation entry 0 of every channel is s_A and the others are s_A - a_spread * U(0, 1) (the authors:
a_spread = 10), so max(A) = s_A exactly; A is then trained freely. ``init="authors"`` starts W_B, W_C,
q, p and the readout (no bias) N(0, 1), as theirs; the logits then grow like D^1.5 N^0.5 times the
effective memory, which is fine at their widths (D = N = 4) but blows the loss up at the first step at
D = 32, N = 16 for some seeds whatever s_A is. ``init="torch"`` (the default) keeps nn.Linear's fan-in
scaling, p = 0 and a readout bias, for the widths the attention pairings need. Two implementations of
the same y_T (``impl``), tested equal:

- ``unrolled`` (default): the paper's attention form of the last output (its "lens of attention"),
  with S_t = Delta_1 + ... + Delta_t,

      y_T^d = sum_t  [C_T^T diag(exp(A_d (S_T - S_t))) B_t Delta_t]  u_t^d ,

  i.e. scores from query W_C u_T and keys W_B u_t, decayed by exp(A_d (S_T - S_t)). It needs only the
  last output: the same O(T N D) exponentials as the scan's states, all at once (in chunks of sequences
  that bound the (B, L, D, N) decays), no recurrence over t. At the authors' size (D = N = 4) a CPU
  training step is 1.3x (T = 400) to 11x (T = 50) faster than the reference scan; at D = 32, N = 16 the
  two are on par. Not a new scan: no recurrence is run.
- ``scan``: the shared reference selective scan op (``harness.kernels.ops.selective_scan``), all T outputs,
  last one kept.

Both are computed in fp32 (autocast off): a bf16 cumulative sum of Delta would corrupt the decays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.families.theory.data import PAD
from harness.kernels.ops import selective_scan
from harness.modules.registry import create_mixer

IMPLS = ("unrolled", "scan")
INITS = ("torch", "authors")
UNROLLED_CHUNK = 1 << 24  # decay elements per chunk of sequences (64 MB in fp32)


class SelectiveSSMClassifier(nn.Module):
    """Embedding -> the paper's single selective-SSM layer -> last step -> linear readout."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int,
        d_state: int,
        s_A: float,
        a_spread: float,
        delta: str,
        impl: str = "unrolled",
        init: str = "torch",
    ):
        super().__init__()
        if delta not in ("input", "fixed"):
            raise ValueError(f"delta must be 'input' or 'fixed', got {delta!r}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.impl = impl
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.W_B = nn.Linear(d_model, d_state, bias=False)
        self.W_C = nn.Linear(d_model, d_state, bias=False)
        # delta="fixed" is the authors' use_delta=False: Delta = 1 at every step, nothing learned
        p = torch.randn(()) if init == "authors" else torch.zeros(())  # torch: Delta ~ softplus(0) = 0.69 at first
        self.p = nn.Parameter(p) if delta == "input" else None
        self.q = nn.Linear(d_model, 1, bias=False) if delta == "input" else None
        # The authors' A: channel d's entry 0 at s_A, the others at s_A - a_spread * U(0, 1), so max(A) = s_A.
        # Stored directly, not as -exp(A_log) as in mamba, so that s_A >= 0 is representable.
        A = s_A - a_spread * torch.rand(d_model, d_state)
        A[:, 0] = s_A
        self.A = nn.Parameter(A)
        self.A._no_weight_decay = True
        self.head = nn.Linear(d_model, num_classes, bias=init == "torch")  # the authors' w . y_T has no bias
        if init == "authors":  # every weight N(0, 1), no fan-in scaling (as the embedding's)
            for layer in (self.W_B, self.W_C, self.q, self.head):
                if layer is not None:
                    nn.init.normal_(layer.weight)
        self.last_backend: str | None = None

    def delta(self, u: torch.Tensor) -> torch.Tensor:
        """Delta_t (B, L) for embedded inputs u (B, L, D)."""
        if self.q is None:
            return u.new_ones(u.shape[:2])
        return F.softplus(self.p + self.q(u).squeeze(-1))

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """y_T (B, D): the layer's output at the last step."""
        with torch.autocast(tokens.device.type, enabled=False):
            u = self.embed(tokens).float()  # (B, L, D)
            delta = self.delta(u)  # (B, L)
            if self.impl == "unrolled":
                # the decays are (B, L, D, N): a few sequences at a time bounds them (evaluation batches)
                rows = max(1, UNROLLED_CHUNK // (u.shape[1] * self.A.numel()))
                y = torch.cat([self._unrolled(u[i : i + rows], delta[i : i + rows]) for i in range(0, len(u), rows)])
                self.last_backend = "unrolled"
            else:
                b, _, d = u.shape
                out = selective_scan(  # the registered op, so the FLOP counters see its closed form
                    u.transpose(1, 2),
                    delta[:, None, :].expand(b, d, -1),
                    self.A,
                    self.W_B(u).transpose(1, 2),
                    self.W_C(u).transpose(1, 2),
                )
                y = out[:, :, -1]
                self.last_backend = "reference"
        return y

    def _unrolled(self, u: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """y_T (B, D) in the attention form, from embedded inputs u (B, L, D) and Delta (B, L)."""
        S = delta.cumsum(1)
        after = S[:, -1:] - S  # (B, L): the Delta summed over the steps after t
        keys = self.W_B(u) * delta[..., None] * self.W_C(u[:, -1])[:, None]  # (B, L, N): C_T * B_t Delta_t
        decay = torch.exp(after[..., None, None] * self.A)  # (B, L, D, N): exp(A_d (S_T - S_t))
        return torch.einsum("bldn,bln,bld->bd", decay, keys, u)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens))

    def spectral_abscissa(self) -> float:
        """s_A = max over channels and states of a_dn (A is real diagonal)."""
        return float(self.A.detach().max())

    @torch.no_grad()
    def clip_spectral_abscissa_(self, s_max: float) -> None:
        """Project A so that max(A) <= s_max."""
        self.A.clamp_(max=s_max)


class LastTokenAttentionClassifier(nn.Module):
    """Embedding -> one registered attention mixer -> output at the last position -> linear readout.

    The mixer computes every position, but with ``causal`` masking (or none) the last position's output is
    attention with the last token as the query over the whole sequence, which is the paper's counterpart.
    """

    def __init__(self, vocab_size: int, num_classes: int, d_model: int, mixer: str, **mixer_kwargs):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.mixer = create_mixer(mixer, d_model, **mixer_kwargs)
        self.head = nn.Linear(d_model, num_classes)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mixer(self.embed(tokens))[:, -1]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens))
