"""``measure.sdpa_kernels``: the attention kernels a run may use, in torch's try order. The kernel that
ran is the row's ``backend`` (torch's own dispatcher is asked), so the setting shows in every row; on an
H100 ``[flash, cudnn, efficient, math]`` gives ``sdpa-flash`` where torch alone picks ``sdpa-cudnn``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_latency_seeds import TINY_RECALL
from torch.nn.attention import SDPBackend

from harness.config.load import load_suite
from harness.errors import ConfigError
from harness.modules.attention import sdpa_kernels
from harness.plan.planner import plan
from harness.run.runner import execute_run

SUITE = """suite: s
seeds: [0]
train: {steps: 1, batch_size: 4, eval_batch_size: 8, warmup_steps: 0}
measure: {batch_size: 2, latency: false, %(kernels)s}
variants: [attention]
""" + TINY_RECALL.replace("%", "%%")


def run_with(tmp_path: Path, kernels: str) -> dict:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE % {"kernels": kernels})
    (spec,) = plan(load_suite(path), device="cpu")
    return execute_run(spec.run, spec.run_id, tmp_path / "cache")


@pytest.mark.parametrize(("kernels", "backend"), [("memory: true", "sdpa-flash-cpu"), ("sdpa_kernels: [math]", "sdpa-math-cpu")])
def test_the_row_names_the_kernel_the_setting_allowed(tmp_path: Path, kernels: str, backend: str) -> None:
    row = run_with(tmp_path, kernels)
    assert row["status"] == "ok", row["error"]
    assert row["backend"] == backend


def test_the_setting_ends_with_the_run() -> None:
    before = torch._C._get_sdp_priority_order()
    with sdpa_kernels(["math", "flash"]):
        assert torch.backends.cuda.math_sdp_enabled() and not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch._C._get_sdp_priority_order()[:2] == [int(SDPBackend.MATH), int(SDPBackend.FLASH_ATTENTION)]
    assert torch._C._get_sdp_priority_order() == before and torch.backends.cuda.cudnn_sdp_enabled()


def test_an_unknown_kernel_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE % {"kernels": "sdpa_kernels: [flash2]"})
    with pytest.raises(ConfigError, match="sdpa_kernels"):
        load_suite(path)
