"""The one-layer models of Honarpisheh et al. (arXiv 2502.01473): a selective SSM with a controllable
spectral abscissa, and its softmax- and linear-attention counterparts.

All three read tokens through an embedding whose PAD row is the zero vector (a zeroed input), run ONE
sequence layer, take the output at the last step (the last token is the query) and map it to classes with
a linear readout. There is no norm and no residual on purpose: the paper's bound is about this bare layer,
and a norm would hide the state blow-up that ``s_A > 0`` causes at long T.

Selective SSM (the paper's Sec. 2), with u_t the embedded token::

    Delta_t = softplus(p + q . u_t)      (one scalar per step; ``delta="fixed"``: softplus(p), no q)
    B_t = W_B u_t,  C_t = W_C u_t,  A = diag(a_1..a_N) with max_n a_n = s_A at initialisation
    x_t = exp(Delta_t A) x_{t-1} + Delta_t B_t u_t^T,   y_t = C_t^T x_t

Every channel of u shares the N-dim A, Delta_t, B_t and C_t, which is exactly mamba's selective scan with
A repeated over channels. Two implementations of the same y_T (``impl``), tested equal:

- ``unrolled`` (default): the paper's attention form of the last output (its "lens of attention"),
  with S_t = Delta_1 + ... + Delta_t,

      y_T = sum_t  [C_T^T diag(exp(A (S_T - S_t))) B_t Delta_t]  u_t ,

  i.e. scores from query W_C u_T and keys W_B u_t, decayed by exp(A (S_T - S_t)). It needs only the last
  output, so it costs O(T N + T D) per sequence instead of the scan's O(T N D) states; at CPU scale it is
  about 10x faster than the scan, which is what makes the T x s_A x seed grid fit in minutes. Not a new
  scan: no recurrence is run.
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


class SelectiveSSMClassifier(nn.Module):
    """Embedding -> the paper's single selective-SSM layer -> last step -> linear readout."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int,
        d_state: int,
        s_A: float,
        a_step: float,
        delta: str,
        delta_bias_init: float,
        impl: str = "unrolled",
    ):
        super().__init__()
        if delta not in ("input", "fixed"):
            raise ValueError(f"delta must be 'input' or 'fixed', got {delta!r}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.impl = impl
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.W_B = nn.Linear(d_model, d_state, bias=False)
        self.W_C = nn.Linear(d_model, d_state, bias=False)
        self.p = nn.Parameter(torch.tensor(float(delta_bias_init)))
        self.q = nn.Linear(d_model, 1, bias=False) if delta == "input" else None
        # A_n = s_A - a_step * n (S4D-Real's spacing with a_step = 1, shifted so max(A) = s_A exactly).
        # Stored directly, not as -exp(A_log) as in mamba, so that s_A >= 0 is representable.
        self.A = nn.Parameter(s_A - a_step * torch.arange(d_state, dtype=torch.float32))
        self.A._no_weight_decay = True
        self.head = nn.Linear(d_model, num_classes)
        self.last_backend: str | None = None

    def delta(self, u: torch.Tensor) -> torch.Tensor:
        """Delta_t (B, L) for embedded inputs u (B, L, D)."""
        raw = self.p.expand(u.shape[:2]) if self.q is None else self.p + self.q(u).squeeze(-1)
        return F.softplus(raw)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """y_T (B, D): the layer's output at the last step."""
        with torch.autocast(tokens.device.type, enabled=False):
            u = self.embed(tokens).float()  # (B, L, D)
            delta = self.delta(u)  # (B, L)
            if self.impl == "unrolled":
                S = delta.cumsum(1)
                decay = torch.exp((S[:, -1:, None] - S[..., None]) * self.A)  # (B, L, N)
                scores = torch.einsum("bln,bln,bn->bl", decay, self.W_B(u), self.W_C(u[:, -1])) * delta
                y = torch.einsum("bl,bld->bd", scores, u)
                self.last_backend = "unrolled"
            else:
                b, _, d = u.shape
                out = selective_scan(  # the registered op, so the FLOP counters see its closed form
                    u.transpose(1, 2),
                    delta[:, None, :].expand(b, d, -1),
                    self.A[None, :].expand(d, -1),
                    self.W_B(u).transpose(1, 2),
                    self.W_C(u).transpose(1, 2),
                )
                y = out[:, :, -1]
                self.last_backend = "reference"
        return y

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens))

    def spectral_abscissa(self) -> float:
        """s_A = max_n a_n (A is real diagonal)."""
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
