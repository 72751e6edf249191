"""Environment metadata that every result row carries (anchors.md: git commit, torch/CUDA/driver, GPU).

Numbers measured on different hardware or library versions are not comparable; these columns let the
report group and warn instead of mixing them. Cached: the environment does not change within a process.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

import harness


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    """Output of a read-only command, or '' when it is missing or fails."""
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the harness checkout, ``-dirty`` when tracked files differ from it (the code that ran is
    then not that commit); '' when it is not a git work tree (e.g. an installed wheel)."""
    if shutil.which("git") is None:
        return ""
    here = Path(harness.__file__).resolve().parent
    commit = _run(["git", "rev-parse", "HEAD"], cwd=here)
    if commit and _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here):
        commit += "-dirty"
    return commit


@functools.lru_cache(maxsize=1)
def cuda_driver() -> str:
    """NVIDIA driver version from nvidia-smi ('' without one)."""
    if shutil.which("nvidia-smi") is None:
        return ""
    lines = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]).splitlines()
    return lines[0].strip() if lines else ""


def package_version(name: str) -> str:
    """Installed version of a distribution ('' when absent), read without importing it."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.lru_cache(maxsize=4)
def _environment(device_type: str, index: int | None) -> tuple[tuple[str, Any], ...]:
    gpu_name = ""
    if device_type == "cuda" and torch.cuda.is_available():
        gpu_name = torch.cuda.get_device_name(index if index is not None else torch.cuda.current_device())
    row = {
        "device": device_type if index is None else f"{device_type}:{index}",
        "gpu_name": gpu_name,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "",
        "driver": cuda_driver() if device_type == "cuda" else "",
        # the fused kernels' libraries: their versions decide which kernels (and autotune choices) ran
        "mamba_ssm_version": package_version("mamba_ssm"),
        "triton_version": package_version("triton"),
        "git_commit": git_commit(),
        "harness_version": harness.__version__,
        "python_version": platform.python_version(),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count() or 0,
    }
    return tuple(row.items())


def environment(device: torch.device | str) -> dict[str, Any]:
    """The environment columns for rows measured on ``device``."""
    device = torch.device(device)
    return dict(_environment(device.type, device.index))

