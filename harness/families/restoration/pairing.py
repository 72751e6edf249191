"""Which token mixers fill the restoration skeleton's layers, per variant (the pairing).

- ``mambairv2`` (arXiv 2411.15269): window attention then the ASSM (ASE scan + SGN) per layer, like the
  light model; ``attn_branch: false`` drops the attention to isolate the ASSM.
- ``mambair`` (arXiv 2402.15648): the ``mamba`` mixer scanning four directions (``scan: cross4``, centred
  short conv as the image is not causal), no prompt, no sorting; ``attn_branch: true`` adds MambaIRv2's window attention in front ("the same layer" with the
  v1 scan) for a one-factor comparison.
- ``swinir`` (arXiv 2108.10257): shifted-window self-attention with relative position bias only.
- ``gated_cnn`` (MambaOut, arXiv 2405.07992): the ``gated_cnn`` mixer (7x7 depthwise, 8/3 expansion);
  ``attn_branch: true`` keeps MambaIRv2's window attention in front, so only the SSM differs from mambairv2
  (the suites' ``gated_cnn_attn``).

Window attention shifts by half a window on every other layer (Swin). Every variant keeps the same gated
MLP after each mixer unless ``mlp_ratio: 0``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn

from harness.families.base import Params
from harness.families.restoration.assm import ASSM
from harness.families.variants import VariantSpec, VariantTable
from harness.modules.registry import create_mixer


class RestorationModel(Params):
    """The ``model:`` block of a restoration task (defaults: a CPU-sized light model)."""

    embed_dim: int = Field(24, ge=4, description="channels of the body (the budget-matching width)")
    depths: tuple[Annotated[int, Field(ge=1)], ...] = Field((2, 2), min_length=1, description="layers per group")
    mlp_ratio: float = Field(2.0, ge=0, description="gated-MLP hidden width / embed_dim (0 = no MLP)")
    layer_scale_init: float | None = Field(None, gt=0, description="per-branch LayerScale init (MambaIRv2); null = none")
    n_heads: int = Field(4, ge=1, description="window-attention heads (head_dim = embed_dim // n_heads)")
    window_size: int = Field(8, ge=2, description="attention window side (paper: 16); inputs are padded to a multiple")
    attn_branch: bool = Field(False, description="window attention before the SSM in each layer (default on for mambairv2)")
    d_state: int = Field(8, ge=1, description="SSM state size (MambaIRv2-light: 8)")
    expand: float = Field(2.0, gt=0, description="SSM inner width / embed_dim")
    ase: bool = Field(True, description="mambairv2: attentive state-space equation (prompt in the scan)")
    prompt_into: Literal["C", "B", "dt", "y"] = Field("C", description="mambairv2: where the prompt is added")
    sgn: bool = Field(True, description="mambairv2: semantic guided neighboring (sort pixels by router class)")
    num_prompts: int = Field(64, ge=1, description="mambairv2: prompt slots T")
    prompt_rank: int = Field(32, ge=1, description="mambairv2: rank r of the prompt pool M (T x r) @ N (r x d)")
    impl: Literal["auto", "fused", "ref"] = Field("auto", description="scan kernel: fused CUDA, reference, or auto")


def window_options(m: RestorationModel, layer: int) -> dict[str, Any]:
    """Window attention of layer ``layer``: shifted by half a window on every other layer (Swin)."""
    return dict(n_heads=m.n_heads, window=m.window_size, shift=layer % 2 == 1, pos="relative")


# The variants: each layer's main mixer, from the params and the layer's global index. ``attn_branch``
# puts a window attention in front of it, so swinir's own attention then takes the next layer's shift.
VARIANTS = VariantTable(
    VariantSpec("mambairv2", ssm=True, defaults={"attn_branch": True}, build=lambda m, layer: ASSM(
        m.embed_dim, d_state=m.d_state, expand=m.expand, num_prompts=m.num_prompts, prompt_rank=m.prompt_rank,
        ase=m.ase, prompt_into=m.prompt_into, sgn=m.sgn, impl=m.impl)),
    VariantSpec("mambair", mixer="mamba", options=lambda m, layer: dict(
        d_state=m.d_state, expand=m.expand, scan="cross4", causal=False, impl=m.impl)),
    VariantSpec("swinir", mixer="attention", options=lambda m, layer: window_options(m, layer + m.attn_branch)),
    VariantSpec("gated_cnn", mixer="gated_cnn"),
)


def layer_mixers(use: str, m: RestorationModel, layer: int) -> list[nn.Module]:
    """The token mixers of layer ``layer`` (global index) for variant ``use``, in order (and made in order:
    the initialisation draws from one RNG stream)."""
    spec = VARIANTS[use]
    mixers = [create_mixer("attention", m.embed_dim, **window_options(m, layer))] if m.attn_branch else []
    mixers.append(spec.build(m, layer) if spec.build is not None else create_mixer(spec.mixer, m.embed_dim, **spec.options(m, layer)))
    return mixers


def has_attention(use: str, m: RestorationModel) -> bool:
    return VARIANTS[use].mixer == "attention" or m.attn_branch
