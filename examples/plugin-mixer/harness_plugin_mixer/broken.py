"""Mixers that break the contract on purpose: what the harness does when a plugin is wrong.

Not an entry point: ``broken.yaml`` lists this module under ``plugins:``. ``harness validate broken.yaml``
catches ``wrong_shape`` and ``raises`` in a tiny forward (and skips ``cuda_only`` on a machine without
CUDA, with ``hangs`` reported after its time limit); ``harness run broken.yaml`` records each as an
``error`` row with its message (``hangs`` stopped by the per-run timeout plugin code gets) and finishes
the suite.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from harness.extend import MixerSpec, register_mixer


class Raises(nn.Module):
    def __init__(self, dim: int, **_: object):
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        raise RuntimeError("this mixer always fails (example of a broken plugin)")


class WrongShape(Raises):
    """Returns (B, 1, D): it would broadcast silently into the block's residual without the contract check."""

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        return self.proj(x.mean(dim=1, keepdim=True))


class Hangs(Raises):
    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        while True:
            time.sleep(1.0)


class CudaOnly(Raises):
    """A stand-in for a CUDA-only kernel: fine where it may run, never built on a CPU run."""

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        return self.proj(x)


for name, cls, devices in (("raises", Raises, ("cpu", "cuda")), ("wrong_shape", WrongShape, ("cpu", "cuda")),
                           ("hangs", Hangs, ("cpu", "cuda")), ("cuda_only", CudaOnly, ("cuda",))):
    register_mixer(MixerSpec(name, cls, is_ssm=False, causal="always", devices=devices,
                             description=f"broken on purpose ({name})"))
