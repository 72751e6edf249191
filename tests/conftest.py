"""Shared test fixtures: paths, a CUDA skip for tests marked ``gpu``, a tiny measurement protocol, and
stand-ins for the CUDA kernels."""

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


@pytest.fixture
def tiny_cfg():
    """A measurement protocol of a few calls, for tests that measure (never for reported numbers)."""
    from harness.config.sections import MeasureConfig

    return MeasureConfig(warmup_iters=1, warmup_s=0.0, min_iters=2, min_time_s=0.0, max_iters=5)


@pytest.fixture
def standin_kernels(monkeypatch):
    """mamba_ssm's and causal_conv1d's functions replaced by CPU stand-ins (``kernel_standins``) and the CPU
    counted as a kernel device: the mixers' kernel dispatch (fused path included) runs here as on CUDA."""
    import kernel_standins as standins

    from harness.kernels import fused_path, ops, short_conv
    from harness.modules import mamba, mamba2

    monkeypatch.setattr(ops, "KERNEL_DEVICE_TYPES", ("cuda", "cpu"))
    for module, name, fn in ((ops, "selective_scan_fn", standins.selective_scan_fn),
                             (mamba, "selective_scan_fn", standins.selective_scan_fn),
                             (ops, "ssd_fn", standins.mamba_chunk_scan_combined),
                             (mamba2, "ssd_fn", standins.mamba_chunk_scan_combined),
                             (short_conv, "causal_conv1d_fn", standins.causal_conv1d_fn),
                             (fused_path, "mamba_inner_fn", standins.mamba_inner_fn),
                             (fused_path, "mamba_split_conv1d_scan_combined", standins.mamba_split_conv1d_scan_combined)):
        monkeypatch.setattr(module, name, fn)
    return standins
