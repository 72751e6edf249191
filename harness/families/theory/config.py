"""The ``data:`` and ``model:`` schemas of the theory family (field names are the YAML keys). The data
schemas are defined in ``data.py`` beside their generators and named here too, so every family's schemas
are imported from its ``config``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.families.base import Params, added_field
from harness.families.theory.data import ListOpsParams, MajorityParams

__all__ = ["ListOpsParams", "MajorityParams", "TheoryModelParams"]


class TheoryModelParams(Params):
    # ---- shared
    d_model: int = Field(16, ge=1, description="embedding / channel width (the budget-matching field)")
    # ---- ssm
    d_state: int = Field(8, ge=1, description="N, the state size of the diagonal A")
    s_A: float = Field(-0.1, description="spectral abscissa max(A) at initialisation")
    a_spread: float = Field(
        10.0, ge=0, description="A's other entries start at s_A - a_spread * U(0, 1) (the authors: 10)"
    )
    delta: Literal["input", "fixed"] = Field(
        "input", description="Delta_t = softplus(p + q.u_t) | 1 (the authors' use_delta=False)"
    )
    clip_A: bool = Field(False, description="keep max(A) <= s_A after every optimizer step")
    init: Literal["torch", "authors"] = added_field(
        "torch", description="torch: nn.Linear fan-in init, p = 0, readout bias | authors: all N(0, 1), no bias"
    )
    impl: Literal["unrolled", "scan"] = Field(
        "unrolled", description="last output in the paper's attention form, or via the shared reference scan"
    )
    # ---- attention counterparts
    n_heads: int = Field(1, ge=1)
    pos: Literal["none", "rope", "relative"] = Field(
        "none", description="softmax-attention positions (majority is order-free; ListOps wants rope)"
    )
