"""Every row's environment columns are present and typed."""

from __future__ import annotations

import re

import torch

from harness.measure.env import environment


def test_environment_columns():
    env = environment("cpu")
    assert set(env) == {"device", "gpu_name", "torch_version", "cuda_version", "driver", "mamba_ssm_version",
                        "triton_version", "git_commit", "harness_version", "python_version", "hostname", "cpu_count"}
    assert env["device"] == "cpu" and env["gpu_name"] == "" and env["driver"] == ""
    assert env["torch_version"] == torch.__version__
    assert env["git_commit"] == "" or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", env["git_commit"])
    assert env["cpu_count"] >= 1


def test_package_versions_are_read_from_metadata():
    from harness.measure.env import package_version

    assert package_version("torch") and torch.__version__.startswith(package_version("torch"))  # wheels may add +cu
    assert package_version("no-such-distribution-here") == ""
