"""MambaIRv2's Attentive State-space Module (ASSM): the ASE scan with Semantic Guided Neighboring.

Guo et al., "MambaIRv2: Attentive State Space Restoration", arXiv 2411.15269, Sec. 3.2-3.3:

- Router: ``Linear(C, C/3) -> GELU -> Linear(T) -> log-softmax`` on each pixel, then a hard Gumbel-softmax
  (straight-through) over the T prompt slots while training and a deterministic argmax at eval.
- Prompt pool: low rank, ``P = onehot @ M @ N`` with ``M: T x r`` and ``N: r x d_state`` (T=64, r=32 in the
  paper). The paper shares ``N`` across a group's layers; here each module owns its (r x d_state, a few
  hundred parameters), so one module is self-contained.
- Attentive State-space Equation (ASE): one forward selective scan whose output matrix gets the prompt,
  ``y_t = (C_t + P_t) h_t + D x_t``: the prompt is a query that can look at the whole (sorted) sequence.
  ``prompt_into`` moves it to B (``B_t + P_t``), the step size (``delta_t + P_t``, before softplus) or the
  output (``y_t + P_t``) for the paper's ablation; the last two need a d_inner-wide prompt (``N: r x d_inner``).
- Semantic Guided Neighboring (SGN): a stable argsort of the pixels by router class puts pixels of one
  class next to each other; the scan runs on the sorted sequence and the exact inverse permutation puts
  the output back (``harness.modules.scan_order``, where every scan order lives). The per-pixel prompt is sorted with its pixel (the reference code adds the unsorted
  prompt to the sorted sequence; we keep pixel and prompt together).
- Around the scan, as in the reference code: 1x1 input projection, a 3x3 depthwise "positional" gate
  ``x * sigmoid(dwconv(x))``, and ``LayerNorm -> Linear`` on the way out.

The scan itself is the mixer library's (``harness.kernels.ops.selective_scan``: mamba_ssm's CUDA kernel
on GPU when installed, the reference custom op otherwise); ``last_backend`` records which ran.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from harness.kernels.ops import resolve_impl, selective_scan
from harness.kernels.selective_scan import selective_scan_fn
from harness.modules.mamba import a_log_init, inv_softplus_dt
from harness.modules.scan_order import invert, reorder

PromptTarget = Literal["C", "B", "dt", "y"]

# mamba_ssm's default step-size range and floor (Gu & Dao, arXiv 2312.00752), as the ``mamba`` mixer uses.
_DT_MIN, _DT_MAX, _DT_FLOOR = 1e-3, 1e-1, 1e-4


def sgn_order(classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SGN permutation of ``classes: (B, L)`` ints: ``order`` sorts them stably, ``inverse`` undoes it.

    ``reorder(x, order, 1)`` puts same-class pixels next to each other in their raster order;
    ``reorder(sorted, inverse, 1)`` restores the raster order exactly (both are pure index moves).
    """
    order = torch.argsort(classes, dim=1, stable=True)
    return order, invert(order)


class ASSM(nn.Module):
    """Attentive state-space module ``(B, L, dim) -> (B, L, dim)`` on a raster grid ``shape`` (no norm/residual).

    ``ase=False`` removes the prompt (a plain single-direction selective scan); ``sgn=False`` scans in raster
    order. With both off no router is built; with SGN alone the router gets no gradient (it learns only
    through the prompt), so pixels are grouped by a fixed random projection. ``impl``: auto | fused | ref,
    as for the ``mamba`` mixer.
    """

    def __init__(
        self,
        dim: int,
        d_state: int = 8,
        expand: float = 2.0,
        num_prompts: int = 64,
        prompt_rank: int = 32,
        ase: bool = True,
        prompt_into: PromptTarget = "C",
        sgn: bool = True,
        dt_rank: int | None = None,
        impl: str = "auto",
    ):
        super().__init__()
        if prompt_into not in ("C", "B", "dt", "y"):
            raise ValueError(f"unknown prompt_into {prompt_into!r}; use C, B, dt or y")
        hidden = int(dim * expand)
        self.d_state, self.hidden, self.impl = d_state, hidden, impl
        self.ase, self.sgn, self.prompt_into = ase, sgn, prompt_into
        self.dt_rank = dt_rank or math.ceil(hidden / 16)  # the reference scans at width hidden
        self.in_proj = nn.Linear(dim, hidden)
        self.cpe = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.x_proj = nn.Linear(hidden, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, hidden)
        self.A_log = nn.Parameter(a_log_init("s4d_real", hidden, d_state))
        self.D = nn.Parameter(torch.ones(hidden))
        self.out_norm = nn.LayerNorm(hidden)
        self.out_proj = nn.Linear(hidden, dim)
        self._init_dt()
        self.router = None
        if ase or sgn:
            self.router = nn.Sequential(
                nn.Linear(dim, max(1, dim // 3)), nn.GELU(), nn.Linear(max(1, dim // 3), num_prompts), nn.LogSoftmax(dim=-1)
            )
        self.prompt_slots = self.prompt_basis = None
        if ase:
            self.prompt_slots = nn.Embedding(num_prompts, prompt_rank)  # M: T x r
            nn.init.uniform_(self.prompt_slots.weight, -1 / num_prompts, 1 / num_prompts)
            width = d_state if prompt_into in ("C", "B") else hidden
            self.prompt_basis = nn.Linear(prompt_rank, width, bias=False)  # N: r x width
        self.last_backend = ""

    def _init_dt(self) -> None:
        """mamba_ssm's special inits (dt_proj, A_log, D), marked like the ``mamba`` mixer's so that
        ``harness.modules.mamba.apply_init`` keeps them and the optimiser skips their weight decay."""
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank**-0.5, self.dt_rank**-0.5)
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_softplus_dt(self.hidden, _DT_MIN, _DT_MAX, _DT_FLOOR))
        for p in (self.dt_proj.weight, self.dt_proj.bias, self.A_log, self.D):
            p._no_reinit = True
        for p in (self.dt_proj.bias, self.A_log, self.D):
            p._no_weight_decay = True

    def route(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot prompt assignment ``(B, L, T)``: hard Gumbel-softmax in training, argmax at eval."""
        logp = self.router(x)
        if self.training:
            return F.gumbel_softmax(logp, hard=True, dim=-1)
        return F.one_hot(logp.argmax(-1), logp.shape[-1]).to(logp.dtype)

    def prompts(self, onehot: torch.Tensor) -> torch.Tensor:
        """Per-pixel prompt ``onehot @ M @ N``: ``(B, L, d_state)`` (or d_inner for dt / y)."""
        return onehot @ self.prompt_basis(self.prompt_slots.weight)

    def scan(self, u: torch.Tensor, prompt: torch.Tensor | None = None) -> torch.Tensor:
        """The (attentive) selective scan of ``u: (B, L, hidden)``; ``prompt`` enters ``prompt_into``."""
        dt_low, Bm, Cm = torch.split(self.x_proj(u), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = dt_low @ self.dt_proj.weight.t()
        if prompt is not None and self.prompt_into == "C":
            Cm = Cm + prompt.to(Cm.dtype)
        elif prompt is not None and self.prompt_into == "B":
            Bm = Bm + prompt.to(Bm.dtype)
        elif prompt is not None and self.prompt_into == "dt":
            delta = delta + prompt.to(delta.dtype)
        backend = resolve_impl(self.impl, u.device, selective_scan_fn is not None)
        y = selective_scan(
            u.transpose(1, 2).contiguous(), delta.transpose(1, 2).contiguous(), -torch.exp(self.A_log.float()),
            Bm.transpose(1, 2).contiguous(), Cm.transpose(1, 2).contiguous(), self.D.float(), None,
            self.dt_proj.bias.float(), True, backend=backend,
        ).transpose(1, 2)
        self.last_backend = backend
        if prompt is not None and self.prompt_into == "y":
            y = y + prompt
        return y

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        if shape is None:
            raise ValueError("ASSM needs the 2-D shape of its input (its positional gate is a 3x3 conv)")
        B, L, _ = x.shape
        u = self.in_proj(x)
        gate = self.cpe(u.transpose(1, 2).reshape(B, self.hidden, *shape)).reshape(B, self.hidden, L).transpose(1, 2)
        u = u * torch.sigmoid(gate)
        onehot = self.route(x) if self.router is not None else None
        prompt = self.prompts(onehot) if self.ase else None
        if self.sgn:
            order, inverse = sgn_order(onehot.detach().argmax(-1))
            u = reorder(u, order, 1)
            prompt = None if prompt is None else reorder(prompt, order, 1)
        y = self.out_proj(self.out_norm(self.scan(u, prompt)))
        return reorder(y, inverse, 1) if self.sgn else y
