"""mamba_ssm's fused mixer functions, and when a mixer may call them.

mamba_ssm's own blocks do not call the scan kernel alone. ``Mamba`` runs ``mamba_inner_fn``: the causal
conv, x_proj, dt_proj, the selective scan with D and the z gate, and out_proj in one autograd Function
(its backward recomputes the conv and delta instead of keeping them). ``Mamba2`` runs
``mamba_split_conv1d_scan_combined``: the conv, the SSD scan, the gated RMSNorm and out_proj. Our
``mamba`` / ``mamba2`` mixers call the same functions with their own parameters (mamba_ssm's names and
layouts: outputs equal the unfused path within kernel tolerance, checkpoints stay interchangeable), so a
pairing times the SSM at its authors' speed; their ``last_backend`` is then ``FUSED_PATH_BACKEND``.

A mixer takes the fused path when (``usable``) the function is installed with its CUDA parts, the scan
runs on mamba_ssm's kernel (``ops.resolve_impl``: CUDA, ``impl`` not ``ref``), the short conv on
causal_conv1d's (``short_conv.fused_conv_usable``: the functions call it inside), ``unfused_only`` is not
in force, and no op-level observer is active; and when the function covers its configuration (the
mixer checks: raster order, and for Mamba also a causal conv, input-dependent Delta/B/C and ZOH).

FLOPs. The counters see part of these functions (the projections inside are aten calls, the scan and conv
kernels are not, and ``mamba_inner_fn``'s backward recomputes delta with one more matmul), so no fixed
correction makes their count equal the unfused path's. Instead, while a dispatch mode (FlopCounterMode,
the op recorder of ``harness.measure.flops``) or a JIT trace (fvcore) watches, the mixers take the
unfused path, whose every op is seen or counted by closed form (``harness.kernels.flop_formulas``): the
FLOP columns are the same numbers whichever path is timed (tested).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from harness.kernels.ops import FUSED_BACKEND

try:  # None unless mamba_ssm's selective-scan kernel and causal_conv1d's kernel both loaded
    from mamba_ssm.ops import selective_scan_interface as _mamba_ops

    mamba_inner_fn = (_mamba_ops.mamba_inner_fn if _mamba_ops.selective_scan_cuda is not None
                      and _mamba_ops.causal_conv1d_fwd_function is not None else None)
except ImportError:
    mamba_inner_fn = None

try:  # Triton SSD; None unless causal_conv1d's kernel loaded
    from mamba_ssm.ops.triton import ssd_combined as _ssd_ops

    mamba_split_conv1d_scan_combined = (_ssd_ops.mamba_split_conv1d_scan_combined
                                        if _ssd_ops.causal_conv1d_fwd_function is not None else None)
except ImportError:
    mamba_split_conv1d_scan_combined = None

FUSED_PATH_BACKEND = "mamba_ssm-fused"
_unfused = [False]


@contextmanager
def unfused_only() -> Iterator[None]:
    """Mixers keep their unfused path (scan and conv kernels apart) inside the block: to measure the fusion."""
    _unfused.append(True)
    try:
        yield
    finally:
        _unfused.pop()


def observed() -> bool:
    """Whether something watches op by op: a dispatch mode (FlopCounterMode, ...) or a JIT trace (fvcore)."""
    return torch.jit.is_tracing() or is_in_torch_dispatch_mode()


def usable(fn: Callable[..., Any] | None, scan_backend: str, conv_usable: bool) -> bool:
    """Whether a mixer may call ``fn`` (one of the functions above, read at call time) instead of its unfused
    path; the mixer checks its own configuration besides."""
    return (fn is not None and scan_backend == FUSED_BACKEND and conv_usable and not _unfused[-1]
            and not observed())
