"""Shared fixtures for the measurement tests: a tiny protocol."""

from __future__ import annotations

import pytest

from harness.config.sections import MeasureConfig


@pytest.fixture
def tiny_cfg() -> MeasureConfig:
    return MeasureConfig(warmup_iters=1, warmup_s=0.0, min_iters=2, min_time_s=0.0, max_iters=5)
