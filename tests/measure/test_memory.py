"""Peak memory per call: CPU RSS growth (approximate), OOM as a status, other errors propagate."""

from __future__ import annotations

import time

import pytest
import torch

from harness.measure.memory import is_oom, peak_memory

CPU = torch.device("cpu")


def test_cpu_peak_sees_a_held_allocation():
    def fn() -> None:
        block = torch.ones(16 * 2**20 // 4 * 4)  # 64 MB, touched
        time.sleep(0.2)  # held long enough for the sampling thread
        del block

    result = peak_memory(fn, CPU)
    assert result.status == "ok" and result.approx
    assert result.peak_mb >= 48


@pytest.mark.parametrize("exc", [torch.cuda.OutOfMemoryError("CUDA out of memory"), MemoryError(),
                                 RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory")])
def test_oom_is_a_status(exc):
    def fn() -> None:
        raise exc

    assert is_oom(exc)
    result = peak_memory(fn, CPU)
    assert (result.status, result.peak_mb) == ("oom", None)


def test_other_errors_propagate():
    def fn() -> None:
        raise RuntimeError("shape mismatch")

    assert not is_oom(RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        peak_memory(fn, CPU)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_is_exact_and_oom_is_caught():
    cuda = torch.device("cuda")
    result = peak_memory(lambda: torch.empty(64 * 2**20, dtype=torch.uint8, device=cuda), cuda)
    assert result.status == "ok" and not result.approx and result.peak_mb >= 64
    total = torch.cuda.get_device_properties(cuda).total_memory
    assert peak_memory(lambda: torch.empty(2 * total, dtype=torch.uint8, device=cuda), cuda).status == "oom"
