"""Budget matching: solve an integer knob (usually width) so paired variants cost the same.

LRA's "apples-to-apples" rule and MAD-lab's hand-normalised layers, automated: given ``build(value)``
and a cost ``count(model)`` (``count_params``, or ``harness.measure.flops.count_fwd_flops``), find the
``value`` whose cost is closest to ``target`` (``build`` may also return anything ``count`` takes,
e.g. a run context), and record the residual mismatch, which every result row carries. Costs grow with
width, so the search is a bisection over multiples of ``multiple_of`` (with the neighbours checked, since
head counts or rounding can make the count step unevenly); an unreachable target is an error naming the
reachable range, never a silent best effort.

    res = match_budget(lambda d: build_model(d_model=d), count_params, target=1.2e6, lo=16, hi=1024, multiple_of=8)
    res.value, res.mismatch      # e.g. 264, -0.012
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

from torch import nn

from harness.errors import HarnessError

T = TypeVar("T")


class BudgetError(HarnessError):
    """No value of the knob in range brings the count within tolerance of the target."""


@dataclass(frozen=True)
class BudgetResult:
    value: int
    achieved: float
    target: float
    mismatch: float  # (achieved - target) / target


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def match_budget(build: Callable[[int], T], count: Callable[[T], float], target: float, *,
                 lo: int, hi: int, multiple_of: int = 1, tolerance: float = 0.05) -> BudgetResult:
    """The multiple of ``multiple_of`` in ``[lo, hi]`` whose ``count(build(value))`` is closest to ``target``."""
    if target <= 0:
        raise ValueError(f"budget target must be positive, got {target}")
    first, last = -(-lo // multiple_of), hi // multiple_of  # candidate values are k * multiple_of
    if first > last:
        raise BudgetError(f"no multiple of {multiple_of} in [{lo}, {hi}]")
    cache: dict[int, float] = {}

    def cost(k: int) -> float:
        if k not in cache:
            cache[k] = float(count(build(k * multiple_of)))
        return cache[k]

    low, high = first, last
    while low < high:  # smallest k with cost(k) >= target
        mid = (low + high) // 2
        if cost(mid) < target:
            low = mid + 1
        else:
            high = mid
    candidates = [k for k in (low - 2, low - 1, low, low + 1) if first <= k <= last]
    best = min(candidates, key=lambda k: (abs(cost(k) - target), k))
    mismatch = (cost(best) - target) / target
    if abs(mismatch) > tolerance:
        raise BudgetError(
            f"cannot match budget {target:.4g} within {tolerance:.0%}: closest is {cost(best):.4g} at value "
            f"{best * multiple_of} (reachable {cost(first):.4g}..{cost(last):.4g} for values {first * multiple_of}.."
            f"{last * multiple_of}); widen lo/hi or change the reference"
        )
    return BudgetResult(best * multiple_of, cost(best), float(target), mismatch)
