"""Budget matching: the search lands on the closest admissible value, records the mismatch, refuses
unreachable targets; and real attention / Mamba / gated-CNN blocks match by parameters within 5%."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.measure.budget import BudgetError, count_params, match_budget
from harness.measure.flops import count_fwd_flops
from harness.modules.block import MixerBlock
from harness.modules.registry import create_mixer


def test_closest_multiple_and_mismatch():
    res = match_budget(lambda v: v, lambda v: float(v * v), target=1000.0, lo=1, hi=100, multiple_of=4)
    assert res.value == 32  # 32^2 = 1024 is closer to 1000 than 28^2 = 784
    assert res.achieved == 1024 and res.target == 1000
    assert res.mismatch == pytest.approx(0.024)


def test_unreachable_target_is_an_error():
    with pytest.raises(BudgetError, match="reachable"):
        match_budget(lambda v: v, lambda v: float(v), target=1000.0, lo=1, hi=100)
    with pytest.raises(BudgetError, match="within 5%"):
        match_budget(lambda v: v, lambda v: float(100 * v), target=150.0, lo=1, hi=100)


def test_shared_parameters_counted_once():
    lin = nn.Linear(3, 3)
    assert count_params(nn.Sequential(lin, lin)) == 12


def block(name: str, width: int, **kwargs) -> nn.Module:
    return MixerBlock(width, create_mixer(name, width, **kwargs), mlp_ratio=4.0 if name == "attention" else 0.0)


@pytest.mark.parametrize("name,kwargs", [("mamba", {}), ("gated_cnn", {"causal": True})])
def test_blocks_match_attention_by_params(name, kwargs):
    target = count_params(block("attention", 64, n_heads=4))
    res = match_budget(lambda d: block(name, d, **kwargs), count_params, target, lo=16, hi=256, multiple_of=8)
    assert abs(res.mismatch) <= 0.05
    assert abs(count_params(block(name, res.value, **kwargs)) - target) / target == pytest.approx(abs(res.mismatch))


def test_match_by_flops():
    def flops(width: int, model: nn.Module) -> int:
        return count_fwd_flops(model, (torch.randn(1, 32, width),))

    target = flops(64, block("attention", 64, n_heads=4, causal=True))
    res = match_budget(lambda d: (d, block("gated_cnn", d, causal=True)), lambda wm: flops(*wm), target,
                       lo=16, hi=256, multiple_of=4)
    assert abs(res.mismatch) <= 0.05
