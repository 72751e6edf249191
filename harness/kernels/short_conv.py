"""The causal depthwise short conv of Mamba, Mamba-2 and the causal Gated CNN on causal_conv1d's CUDA kernel.

Why: torch runs a depthwise ``Conv1d`` with a 2-4 tap kernel through its generic grouped-conv path, far
slower than the memory traffic it needs on long sequences (pytorch/pytorch issues 75747 and 192902, the
latter at 16K tokens on an H100). mamba_ssm's own blocks call Dao-AILab's ``causal_conv1d`` for exactly
this conv, so a mixer that does not is timed as slower than mamba_ssm's and a latency verdict tilts
against it. Every mixer with a causal short conv (``mamba``, ``mamba2``, the causal ``gated_cnn``) asks
:func:`fused_conv_usable` and calls :func:`causal_conv1d` when it says yes, so a pairing keeps one conv
implementation on each device; otherwise the mixer runs its torch conv, unchanged.

FLOPs: causal_conv1d's autograd Function is opaque to FlopCounterMode, so :func:`causal_conv1d` adds the
conv's closed form (``2 * B * C * L * K`` forward, twice that backward: input and weight gradients) under
``aten.convolution`` / ``aten.convolution_backward``, and fvcore gets a handle for its ``PythonOp``. The
torch path pads both sides and slices (as mamba_ssm's reference does), so its count is ``L + K - 1``
outputs long: the two differ by ``(K - 1) / L`` of the conv's own, small, share.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from harness.kernels import flop_formulas, ops

try:  # only importable where causal_conv1d was built (CUDA): pip install 'harness[gpu]'
    from causal_conv1d import causal_conv1d_fn
except ImportError:
    causal_conv1d_fn = None

FUSED_CONV_BACKEND = "causal_conv1d-cuda"
WIDTHS = (2, 3, 4)  # the kernel's limit
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
aten = torch.ops.aten
_torch_only = [False]


@contextmanager
def torch_conv_only() -> Iterator[None]:
    """Every short conv runs on torch's conv inside the block: to measure what the kernel buys."""
    _torch_only.append(True)
    try:
        yield
    finally:
        _torch_only.pop()


def fused_conv_usable(x: torch.Tensor, width: int, causal: bool = True, impl: str = "auto") -> bool:
    """Whether :func:`causal_conv1d` can run on ``x``: installed, CUDA, causal, 2-4 taps, a float type, and
    the mixer's ``impl`` is not ``ref`` (the reference path keeps torch's conv)."""
    return (causal_conv1d_fn is not None and not _torch_only[-1] and impl != "ref" and causal
            and x.device.type in ops.KERNEL_DEVICE_TYPES and width in WIDTHS and x.dtype in DTYPES)


def _kernel_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the kernel takes it: length-contiguous, or channel-last with channels and strides in 8s."""
    if x.stride(2) == 1:
        return x
    if x.stride(1) == 1 and x.shape[1] % 8 == 0 and x.stride(0) % 8 == 0 and x.stride(2) % 8 == 0:
        return x
    return x.contiguous()


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None) -> torch.Tensor:
    """``act(causal depthwise conv(x))``: x (B, C, L), weight (C, K), bias (C,) or None, act silu or None."""
    out = causal_conv1d_fn(_kernel_layout(x), weight, bias, activation=activation)
    b, c, l = x.shape
    flop_formulas.count_fused(aten.convolution, aten.convolution_backward,
                              flop_formulas.short_conv_flops(b, c, l, weight.shape[-1]), out)
    return out
