"""Shared test fixtures: paths, and a CUDA skip for tests marked ``gpu``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Every model in the tests is tiny: one intra-op thread is faster, and on a busy 2-core machine torch's
    thread pool spinning on shared cores makes tiny ops 10-100x slower without changing any result."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
