"""Shared fixtures for the measurement tests: tiny protocol, one intra-op thread (the dev machines are
shared; torch's thread pool spinning on busy cores makes tiny ops 100x slower without changing results)."""

from __future__ import annotations

import pytest
import torch

from harness.config.sections import MeasureConfig


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_cfg() -> MeasureConfig:
    return MeasureConfig(warmup_iters=1, warmup_s=0.0, min_iters=2, min_time_s=0.0, max_iters=5)
