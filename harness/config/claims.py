"""Claims: a paper's findings written in a task's ``expect:`` as checked expectations (the schema).

A claim names itself (``id``, unique in the suite), states the finding (``claim``) and where it comes from
(``source``: paper, arXiv id, table / figure / section), and carries exactly one check:

* ``verdict: SSM needed | SSM not needed`` (optionally ``at: {KEY: VALUE}``, one size point): the task's
  verdict, re-derived from the task's own runs;
* ``compare: {better, worse, metric, margin, where}``: ``better`` ahead of ``worse`` by more than
  ``margin`` (metric units, oriented by the metric's direction), paired by seed; either may be an
  ablation label;
* ``trend: {variant, metric, over, shape, tolerance, scale, where}``: the slope of the metric over the
  swept key ``over`` (per doubling of ``over`` with ``scale: log2``, per unit with ``linear``) is above
  ``tolerance`` (increasing), below ``-tolerance`` (decreasing) or within ``±tolerance`` (flat);
* ``status: {variant, where, is, fraction}``: runs end ``ok``, ``diverged`` or ``oom``: on every seed
  (``fraction: 1``, the default) or on more than ``fraction`` of seeds (a proportion);
* ``scaling: {variant, metric, over, exponent: [LO, HI], where}``: the log-log exponent of the metric
  over ``over`` lies within ``[LO, HI]``;
* ``any_of: [CHECK, ...]``: at least one of the alternatives holds.

This module is structure only (pydantic, no family knowledge), so the report can read claims back from
``suite.json``; names (variants, metrics, sweep keys, ``where`` values) are checked against the resolved
task in :mod:`harness.config.claim_checks`. How claims are decided is :mod:`harness.report.claims`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

VERDICTS = ("SSM needed", "SSM not needed")
#: the check kinds, in the order a claim's fields are searched for its one check.
KINDS = ("verdict", "compare", "trend", "status", "scaling", "any_of")
#: claim ids appear in tables, CSV and progress lines: any text without blanks.
CLAIM_ID = r"^\S+$"


def same_value(a: Any, b: Any) -> bool:
    """Sweep values compare as YAML wrote them: 1 and 1.0 are one point, True and 1 are not (``where:`` / ``at:``)."""
    return a is b if isinstance(a, bool) or isinstance(b, bool) else a == b


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Compare(_Strict):
    """``better`` ahead of ``worse`` by more than ``margin`` (metric units; the metric's direction decides
    what ahead means; a negative margin states non-inferiority), paired by seed."""

    better: str
    worse: str
    metric: str | None = Field(None, description="default: the task's primary metric")
    margin: float = 0.0
    where: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _two_sides(self) -> "Compare":
        if self.better == self.worse:
            raise ValueError(f"compare: better and worse are both {self.better!r}: name two variants")
        return self


class Trend(_Strict):
    """The slope of ``metric`` over the swept key ``over``, per seed, its centre against ``±tolerance``."""

    variant: str
    metric: str | None = None
    over: str
    shape: Literal["increasing", "decreasing", "flat"]
    tolerance: float = Field(0.0, ge=0, description="in metric units per doubling (log2) or per unit (linear) of over")
    scale: Literal["log2", "linear"] = Field("log2", description="log2: slope per doubling of over; linear: per unit")
    where: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _flat_needs_tolerance(self) -> "Trend":
        if self.shape == "flat" and self.tolerance <= 0:
            raise ValueError("trend: shape flat needs tolerance > 0 (the slope must lie within ±tolerance, "
                             "in metric units per doubling of over with scale log2)")
        return self


class Status(_Strict):
    """How runs end. ``fraction: 1`` (default): every seed; below 1: more than that fraction of seeds."""

    variant: str
    is_: Literal["ok", "diverged", "oom"] = Field(alias="is")
    fraction: float = Field(1.0, gt=0, le=1)
    where: dict[str, Any] = Field(default_factory=dict)


class Scaling(_Strict):
    """The log-log exponent of ``metric`` over ``over`` lies within ``exponent: [LO, HI]``."""

    variant: str
    metric: str | None = None
    over: str
    exponent: tuple[float, float]
    where: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> "Scaling":
        lo, hi = self.exponent
        if not lo < hi:
            raise ValueError(f"scaling: exponent [{lo}, {hi}] must be [LO, HI] with LO < HI")
        return self


class Check(_Strict):
    """Exactly one check (see the module docstring); ``at`` goes with ``verdict`` only."""

    verdict: Literal["SSM needed", "SSM not needed"] | None = None
    at: dict[str, Any] | None = None
    compare: Compare | None = None
    trend: Trend | None = None
    status: Status | None = None
    scaling: Scaling | None = None
    any_of: list["Check"] | None = Field(None, min_length=2)

    @model_validator(mode="after")
    def _one_check(self) -> "Check":
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a claim has exactly one check ({', '.join(KINDS)}); this one has "
                             + (" and ".join(given) if given else "none") + ": write one claim per check"
                             + (", or any_of: [...] for alternatives" if given else ""))
        if self.at is not None and self.verdict is None:
            raise ValueError("at: names the size point of a verdict check; other checks say where:")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def body(self) -> Any:
        """The check's own block (a verdict's is its text)."""
        return getattr(self, self.kind)


class Claim(Check):
    """One finding: its id, the sentence, its source, and one check."""

    id: str = Field(pattern=CLAIM_ID)
    claim: str = Field(min_length=1)
    source: str = Field(min_length=1)

    def stored(self) -> dict[str, Any]:
        """The claim as ``suite.json`` stores it (read back with ``Claim.model_validate``)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
