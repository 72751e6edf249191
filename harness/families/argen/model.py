"""Stage 2: class-conditional next-token models over VQ codes, paired by mixer (AiM, arXiv 2408.12245).

One skeleton for all variants: ``[class token, code_0, ..., code_{L-2}]`` -> logits for
``code_0 .. code_{L-1}``, with learned absolute positions (optional), a final RMSNorm and a linear head.
What changes is the mixer (a registry name) and each variant's defaults:

- ``aim``: Mamba2 mixers, no MLP, adaLN-group conditioning (AiM §3.3): G shared predictors
  ``SiLU -> Linear(D, 3D)`` give (shift, scale, gate) from the class embedding; layer i uses group
  ``i * G // depth`` (G=1 is PixArt's adaLN-single, G=depth is DiT's per-layer adaLN), plus a learned
  per-layer offset table (PixArt-alpha) so layers sharing a group still differ.
- ``transformer``: LlamaGen's causal decoder (arXiv 2406.06525): attention + MLP, RoPE, class token only.
- ``gated_cnn``: MambaOut's Gated CNN block made causal (arXiv 2405.07992), class token only.

Classifier-free guidance: class ``num_classes`` is the null label (used for label dropout in training);
guided logits are ``uncond + s * (cond - uncond)``. Decoding runs through each mixer's own incremental
state (``init_state``/``step``: Mamba2 recurrence, KV cache, conv cache), never by re-running the prefix.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import Mlp
from torch import nn

from harness.families.argen.config import ARModelParams
from harness.families.variants import MixerSlot, VariantSpec, VariantTable
from harness.modules.block import MixerBlock, make_norm
from harness.modules.registry import create_mixer

# The variants: each mixer's options from the model params, and the defaults that make it its paper's model.
VARIANTS = VariantTable(
    VariantSpec("aim", mixer="mamba2", options=lambda p: dict(d_state=p.d_state, headdim=p.headdim, expand=p.expand),
                defaults={"adaln_groups": 1, "pos": "learned", "mlp_ratio": 0.0}),  # AiM: Mamba2 only, adaLN, abs. pos.
    VariantSpec("transformer", mixer="attention", options=lambda p: dict(
        n_heads=p.n_heads, causal=True, pos="rope" if p.pos == "rope" else "none"),
        defaults={"pos": "rope", "mlp_ratio": 4.0}),  # LlamaGen: RoPE, MLP, class token only
    VariantSpec("gated_cnn", mixer="gated_cnn", options=lambda p: dict(causal=True, d_conv=p.d_conv, expansion_ratio=p.expansion_ratio),
                defaults={"pos": "learned", "mlp_ratio": 0.0}),  # the MambaOut block is its own MLP
    # a plugin's mixer, causal, in every layer; sampling and decode costs go through its init_state/step
    slot=MixerSlot(causal=True, decode=True),
)


class AdaLNBlock(nn.Module):
    """``x + gate * mixer(norm(x) * (1 + scale) + shift)`` with (shift, scale, gate) from the class."""

    def __init__(self, dim: int, mixer: nn.Module, norm: str, mlp_ratio: float):
        super().__init__()
        self.norm = make_norm(norm, dim)
        self.mixer = mixer
        # per-layer offset added to the shared modulation; starts as the identity modulation (gate 1)
        self.table = nn.Parameter(torch.tensor([0.0, 0.0, 1.0])[:, None].repeat(1, dim))
        self.table._no_weight_decay = True
        self.mlp = None
        if mlp_ratio > 0:  # unmodulated MLP branch, as in harness MixerBlock (AiM itself has none)
            self.norm2 = make_norm(norm, dim)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def _modulate(self, x: torch.Tensor, mod: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, scale, gate = (mod + self.table).unbind(-2)  # each (B, D)
        if x.ndim == 3:
            shift, scale, gate = shift[:, None], scale[:, None], gate[:, None]
        return self.norm(x) * (1 + scale) + shift, gate

    def forward(self, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        h, gate = self._modulate(x, mod)
        x = x + gate * self.mixer(h)
        return x if self.mlp is None else x + self.mlp(self.norm2(x))

    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> Any:
        return self.mixer.init_state(batch_size, max_len, device, dtype)

    def step(self, x_t: torch.Tensor, mod: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        h, gate = self._modulate(x_t, mod)
        y, state = self.mixer.step(h, state)
        x_t = x_t + gate * y
        return (x_t if self.mlp is None else x_t + self.mlp(self.norm2(x_t))), state


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on logits (Ho & Salimans, arXiv 2207.12598)."""
    return uncond + scale * (cond - uncond)


class ARModel(nn.Module):
    def __init__(self, use: str, p: ARModelParams, vocab: int, num_classes: int, seq_len: int):
        super().__init__()
        spec = VARIANTS[use]
        mixer_name, options = spec.mixer, spec.options
        if p.pos == "rope" and mixer_name != "attention":
            raise ValueError(f"pos: rope is attention's rotary embedding; variant {use!r} needs learned or none")
        d = p.d_model
        self.use, self.vocab, self.num_classes, self.seq_len = use, vocab, num_classes, seq_len
        self.tok_emb = nn.Embedding(vocab, d)
        self.cls_emb = nn.Embedding(num_classes + 1, d)  # the last row is the null (unconditional) label
        self.pos_emb = nn.Parameter(torch.zeros(seq_len, d)) if p.pos == "learned" else None
        if self.pos_emb is not None:
            nn.init.trunc_normal_(self.pos_emb, std=0.02)
        groups = p.adaln_groups
        self.adaln = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(d, 3 * d)) for _ in range(groups))
        for pred in self.adaln:  # zero init: training starts from the per-layer tables (identity modulation)
            nn.init.zeros_(pred[1].weight)
            nn.init.zeros_(pred[1].bias)
        self.group_of = [i * groups // p.depth for i in range(p.depth)]

        def mixer() -> nn.Module:
            return create_mixer(mixer_name, d, **options(p))

        self.blocks = nn.ModuleList(
            AdaLNBlock(d, mixer(), p.norm, p.mlp_ratio) if groups else MixerBlock(d, mixer(), p.mlp_ratio, p.norm)
            for _ in range(p.depth)
        )
        self.norm_f = make_norm(p.norm, d)
        self.head = nn.Linear(d, vocab, bias=False)

    @property
    def null_label(self) -> int:
        return self.num_classes

    def _modulations(self, labels: torch.Tensor) -> list[torch.Tensor | None]:
        """Per block: ``(B, 3, D)`` modulation of its group, or None without adaLN."""
        if not len(self.adaln):
            return [None] * len(self.blocks)
        c = self.cls_emb(labels)
        per_group = [pred(c).unflatten(-1, (3, -1)) for pred in self.adaln]
        return [per_group[g] for g in self.group_of]

    def _run(self, block: nn.Module, x: torch.Tensor, mod: torch.Tensor | None) -> torch.Tensor:
        return block(x) if mod is None else block(x, mod)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, L, vocab)`` for codes ``tokens: (B, L)`` given ``labels: (B,)``."""
        length = tokens.shape[1]
        x = torch.cat([self.cls_emb(labels)[:, None], self.tok_emb(tokens[:, :-1])], dim=1)
        if self.pos_emb is not None:
            x = x + self.pos_emb[:length]
        for block, mod in zip(self.blocks, self._modulations(labels)):
            x = self._run(block, x, mod)
        return self.head(self.norm_f(x))

    def cfg_logits(self, tokens: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
        """Guided teacher-forced logits (the same combination ``generate`` applies per step)."""
        uncond = self(tokens, torch.full_like(labels, self.null_label))
        return guide(self(tokens, labels), uncond, scale)

    # ---- incremental decoding through the mixers' own state ----
    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> list[Any]:
        return [b.init_state(batch_size, max_len, device, dtype) for b in self.blocks]

    def step(self, t: int, prev: torch.Tensor | None, labels: torch.Tensor, mods: list[torch.Tensor | None],
             state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        """Logits ``(B, vocab)`` for code ``t`` given code ``t-1`` (``prev: (B,)``; None at t=0: class token)."""
        x = self.cls_emb(labels) if prev is None else self.tok_emb(prev)
        if self.pos_emb is not None:
            x = x + self.pos_emb[t]
        new_state = []
        for block, mod, s in zip(self.blocks, mods, state):
            x, s = block.step(x, s) if mod is None else block.step(x, mod, s)
            new_state.append(s)
        return self.head(self.norm_f(x)), new_state

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, length: int | None = None, cfg_scale: float = 1.0,
                 temperature: float = 1.0, top_k: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample codes ``(B, length)`` for ``labels: (B,)``; CFG doubles the batch (cond + null label)."""
        length = self.seq_len if length is None else length
        if self.pos_emb is not None and length > self.pos_emb.shape[0]:
            raise ValueError(f"length {length} exceeds the learned position table ({self.pos_emb.shape[0]})")
        guided = cfg_scale != 1.0
        run_labels = torch.cat([labels, torch.full_like(labels, self.null_label)]) if guided else labels
        mods = self._modulations(run_labels)
        param = next(self.parameters())
        kind = param.device.type  # caches in the compute dtype (bf16 under autocast), as a deployment would
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else param.dtype
        state = self.init_state(run_labels.shape[0], length, param.device, dtype)
        out = torch.empty(labels.shape[0], length, dtype=torch.long, device=labels.device)
        prev = None
        for t in range(length):
            logits, state = self.step(t, prev, run_labels, mods, state)
            if guided:
                logits = guide(*logits.float().chunk(2), cfg_scale)
            out[:, t] = sample(logits, temperature, top_k, generator)
            prev = torch.cat([out[:, t], out[:, t]]) if guided else out[:, t]
        return out


def sample(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> torch.Tensor:
    """One code per row from ``logits: (B, V)`` with temperature and optional top-k truncation."""
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
