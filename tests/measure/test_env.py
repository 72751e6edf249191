"""Every row's environment columns are present and typed."""

from __future__ import annotations

import re

import torch

from harness.measure.env import environment


def test_environment_columns():
    env = environment("cpu")
    assert set(env) == {"device", "gpu_name", "torch_version", "cuda_version", "driver", "git_commit",
                        "harness_version", "python_version", "hostname", "cpu_count"}
    assert env["device"] == "cpu" and env["gpu_name"] == "" and env["driver"] == ""
    assert env["torch_version"] == torch.__version__
    assert env["git_commit"] == "" or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", env["git_commit"])
    assert env["cpu_count"] >= 1
