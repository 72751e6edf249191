"""The ``data:`` and ``model:`` schemas of the sequence family (field names are the YAML keys)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.families.base import Params
from harness.modules.registry import MIXERS
from harness.registry import UnknownNameError


class SelectiveCopyData(Params):
    seq_len: int = Field(64, ge=4, description="length of the noisy region holding the data tokens")
    num_tokens: int = Field(8, ge=1)
    vocab: int = Field(16, ge=2, description="number of distinct data tokens")
    n_eval: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _fits(self) -> "SelectiveCopyData":
        if self.num_tokens > self.seq_len:
            raise ValueError(f"num_tokens ({self.num_tokens}) must not exceed seq_len ({self.seq_len})")
        return self


class MQARData(Params):
    seq_len: int = Field(64, ge=8)
    num_kv: int = Field(8, ge=1)
    key_vocab: int = Field(32, ge=2)
    value_vocab: int = Field(32, ge=2)
    n_eval: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _fits(self) -> "MQARData":
        if 3 * self.num_kv > self.seq_len:
            raise ValueError(f"seq_len ({self.seq_len}) must be at least 3 * num_kv ({3 * self.num_kv})")
        if self.num_kv > self.key_vocab:
            raise ValueError(f"num_kv ({self.num_kv}) must not exceed key_vocab ({self.key_vocab}): keys are distinct")
        return self


class MajorityData(Params):
    seq_len: int = Field(63, ge=1)
    n_eval: int = Field(512, ge=1)


class SequenceModelParams(Params):
    d_model: int = Field(64, ge=4)
    n_layers: int = Field(2, ge=1)
    pattern: list[str] | None = Field(None, description="hybrid layer pattern, e.g. [mamba, mamba, attention]")
    mlp_ratio: float | None = Field(None, ge=0, description="MLP after each mixer (default: 4 for attention, else 0)")
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    # mixer options (which mixer reads which: the family's VARIANTS table)
    d_state: int | None = Field(None, ge=1)
    d_conv: int | None = Field(None, ge=1)
    expand: int | None = Field(None, ge=1)
    headdim: int | None = Field(None, ge=1)
    chunk_size: int | None = Field(None, ge=1)
    n_heads: int | None = Field(4, ge=1)
    selective: bool | None = None
    scan: Literal["raster", "bidirectional"] | None = Field(None, description="bidirectional sees the future: an ablation only")
    A_init: Literal["s4d_real", "s4d_lin", "random"] | None = None  # harness.modules.mamba.A_INITS
    discretization: Literal["zoh", "euler"] | None = None
    impl: Literal["auto", "fused", "ref"] | None = None
    expansion_ratio: float | None = Field(None, gt=0)
    kernel_size: int | None = Field(None, ge=1)
    pos: Literal["none", "rope"] | None = "rope"  # None (any option): the mixer's default

    @field_validator("pattern")
    @classmethod
    def _known_mixers(cls, pattern: list[str] | None) -> list[str] | None:
        for name in pattern or ():
            try:
                MIXERS.canonical(name)
            except UnknownNameError as exc:
                raise ValueError(str(exc)) from None  # pydantic reports ValueErrors at the field's line
        return pattern
