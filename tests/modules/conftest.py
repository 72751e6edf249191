"""Shared fixtures for the mixer tests."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch


def _decode(mixer: Any, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Run ``x: (B, L, D)`` token by token through ``mixer.init_state``/``step``; outputs (B, L, D) and the state."""
    state = mixer.init_state(x.shape[0], x.shape[1], x.device, x.dtype)
    outputs = []
    for t in range(x.shape[1]):
        y, state = mixer.step(x[:, t], state)
        outputs.append(y)
    return torch.stack(outputs, 1), state


@pytest.fixture
def decode() -> Callable[[Any, torch.Tensor], tuple[torch.Tensor, Any]]:
    return _decode
