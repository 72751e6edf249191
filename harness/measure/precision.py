"""The numeric precision a run trains and is measured in, resolved from the config's ``auto``.

One place decides what ``auto`` means (bf16 autocast on CUDA, fp32 elsewhere) for the training loop, the
timers and the result row, so a row always says the precision that ran, never the word ``auto``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(setting: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16``: ``auto`` is bf16 on CUDA and fp32 elsewhere."""
    if setting == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if setting not in _DTYPES:
        raise ValueError(f"unknown precision {setting!r}: use one of auto, {', '.join(_DTYPES)}")
    return setting


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``setting`` on ``device``; None means plain fp32 (no autocast)."""
    return _DTYPES[resolve(setting, device)]


def autocast(setting: str, device: torch.device, cache_enabled: bool = True) -> AbstractContextManager:
    """The context training and timing run in: autocast to the resolved dtype, or nothing for fp32."""
    dtype = autocast_dtype(setting, device)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled)
