"""Closed-form FLOP/MAC counts of the scans and the short conv, for both counters the harness uses.

A leaf of the kernel layer (no harness imports): ``harness.kernels.ops`` registers these forms for its
custom ops with FlopCounterMode, and the fvcore handles are here.

Conventions (one MAC = one multiply-add = 2 FLOPs; ``FlopCounterMode`` reports FLOPs, fvcore reports MACs):

* Selective scan (Mamba-1): mamba_ssm's own count, 9 * B * L * D * N FLOPs for the scan (Gu, state-spaces/
  mamba issue 110: discretisation, a work-efficient associative scan of 2L steps, the C contraction), plus
  2 * B * D * L for the ``D`` skip (one MAC per element) and 2 * B * D * L for the ``z`` gate (a multiply
  counted as one MAC, silu ignored, as in the VMamba/mamba_ssm-issue formula). MACs are FLOPs / 2.
* SSD (Mamba-2), the chunked algorithm with chunk length Q (Dao & Gu, arXiv 2405.21060, Sec. 6), per batch
  and head: C B^T inside chunks L*Q*N, its product with X L*Q*P, chunk states L*N*P, state-to-output
  L*N*P, the recurrence over L/Q chunk states (L/Q)*N*P; plus L*P each for ``D`` and ``z``. All MACs.
* Backward: twice the forward (the usual convention; our backward op is a single visible node).
* The short conv on causal_conv1d's kernel (``harness.kernels.short_conv``): 2 * B * C * L * K, as torch
  counts a depthwise conv; backward twice that (input and weight gradients).

mamba_ssm's kernels (a pybind CUDA call, Triton launches) never reach the dispatcher, so FlopCounterMode
cannot see them at all, not even as a skipped op. ``count_fused`` adds the same closed forms for them to
the counter that ``harness.measure.flops.counted_flops`` has open (forward at once, backward when the
output's gradient is computed), so a fused run and a reference run of one model report the same FLOPs.
mamba_ssm's fused mixer functions (``harness.kernels.fused_path``) never run while a counter watches: the
mixers take their unfused path then, which these forms cover.

``FVCORE_HANDLES`` maps the op names fvcore's JIT trace produces (our custom ops, and mamba_ssm's and
causal_conv1d's autograd Functions, which fvcore otherwise skips as ``prim::PythonOp``) to handles returning MACs:

    FlopCountAnalysis(model, inputs).set_op_handle(**FVCORE_HANDLES)
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

BACKWARD_FACTOR = 2


def selective_scan_flops(batch: int, dim: int, seqlen: int, dstate: int, has_D: bool = True, has_z: bool = False) -> int:
    """FLOPs of one selective scan (u: (batch, dim, seqlen), A: (dim, dstate)), mamba_ssm convention."""
    flops = 9 * batch * seqlen * dim * dstate
    flops += 2 * batch * dim * seqlen * (int(has_D) + int(has_z))
    return flops


def short_conv_flops(batch: int, channels: int, seqlen: int, width: int) -> int:
    """FLOPs of a depthwise conv with ``width`` taps over (batch, channels, seqlen), output as long as input."""
    return 2 * batch * channels * seqlen * width


def ssd_macs(batch: int, seqlen: int, nheads: int, headdim: int, dstate: int, chunk_size: int,
             has_D: bool = True, has_z: bool = False) -> int:
    """MACs of one chunked SSD scan (x: (batch, seqlen, nheads, headdim), B: (..., dstate))."""
    q = max(1, min(chunk_size, seqlen))
    per_head = seqlen * q * (dstate + headdim) + 2 * seqlen * dstate * headdim
    per_head += math.ceil(seqlen / q) * dstate * headdim
    per_head += seqlen * headdim * (int(has_D) + int(has_z))
    return batch * nheads * per_head


# ---- fused kernels, invisible to FlopCounterMode ----------------------------------------------------------

_OPEN_COUNTERS: list[FlopCounterMode] = []


@contextmanager
def counting(counter: FlopCounterMode) -> Iterator[None]:
    """Make ``counter`` the one ``count_fused`` adds to while the block runs."""
    _OPEN_COUNTERS.append(counter)
    try:
        yield
    finally:
        _OPEN_COUNTERS.remove(counter)


def count_fused(fwd_op: Any, bwd_op: Any, fwd_flops: int, out: torch.Tensor) -> None:
    """Add a fused kernel's FLOPs under our ops' names: forward now, backward when ``out``'s gradient flows."""
    if not _OPEN_COUNTERS:
        return
    counts = _OPEN_COUNTERS[-1].flop_counts["Global"]  # what FlopCounterMode.get_total_flops() sums
    counts[fwd_op] += fwd_flops
    if out.requires_grad:
        def on_grad(grad: torch.Tensor) -> None:
            counts[bwd_op] += BACKWARD_FACTOR * fwd_flops

        out.register_hook(on_grad)


#: namespaces of the custom ops inside fused kernels whose callers add closed forms through ``count_fused``
#: (causal_conv1d's ``DaoAILab::_causal_conv1d_*``): counted, so not reported as skipped.
COUNTED_BY_CALLER = ("DaoAILab",)


# ---- fvcore (MACs) ------------------------------------------------------------------------------------


def _shape(v: Any) -> list[int] | None:
    t = v.type() if isinstance(v, torch._C.Value) else None
    return t.sizes() if isinstance(t, torch._C.TensorType) and t.sizes() is not None else None


def _present(v: Any) -> bool:
    return _shape(v) is not None


def _scalar(v: Any) -> Any:
    return v.toIValue() if isinstance(v, torch._C.Value) else v


def _op_args(inputs: list[Any]) -> list[Any]:
    """A custom op's inputs are its schema's arguments, ``None`` included, in order: as they are."""
    return inputs


def _python_op_args(inputs: list[Any]) -> list[Any]:
    """An autograd Function's positional arguments: JIT values for the tensors, Python values for the rest.

    The trace keeps only the tensor arguments of a ``prim::PythonOp`` as inputs (``None``, ints and flags are
    its scalar args), so positions are rebuilt from the node's calling convention (``d`` a tensor, ``c`` a
    scalar); reading ``inputs[k]`` as the k-th argument would shift past every ``None``.
    """
    names = [v.debugName() for v in inputs]
    node = next(u.user for u in inputs[0].uses()
                if u.user.kind() == "prim::PythonOp" and [v.debugName() for v in u.user.inputs()] == names)
    tensors, scalars = iter(inputs), iter(node.scalar_args())
    return [next(tensors) if c == "d" else next(scalars) for c in node.cconv()]


def _fvcore_selective_scan(args: list[Any]) -> float:
    """args as ``selective_scan(u, delta, A, B, C, D, z, ...)`` (ours and mamba_ssm's SelectiveScanFn)."""
    (b, d, l), (_, n) = _shape(args[0]), _shape(args[2])
    return selective_scan_flops(b, d, l, n, _present(args[5]), _present(args[6])) / 2


def _fvcore_ssd(args: list[Any]) -> float:
    """args as ``mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D, z, ...)``."""
    b, l, h, p = _shape(args[0])
    n = _shape(args[3])[-1]
    return float(ssd_macs(b, l, h, p, n, int(_scalar(args[5])), _present(args[6]), _present(args[7])))


def _fvcore_short_conv(args: list[Any]) -> float:
    """args as ``causal_conv1d_fn(x, weight, ...)``: x (B, C, L), weight (C, K)."""
    (b, c, l), (_, k) = _shape(args[0]), _shape(args[1])
    return short_conv_flops(b, c, l, k) / 2


def _handle(count: Callable[[list[Any]], float], args: Callable[[list[Any]], list[Any]]) -> Callable[[list[Any], list[Any]], float]:
    return lambda inputs, outputs: count(args(inputs))


FVCORE_HANDLES: dict[str, Callable[[list[Any], list[Any]], float]] = {
    "harness::selective_scan": _handle(_fvcore_selective_scan, _op_args),
    "harness::ssd_scan": _handle(_fvcore_ssd, _op_args),
    "prim::PythonOp.SelectiveScanFn": _handle(_fvcore_selective_scan, _python_op_args),
    "prim::PythonOp.MambaChunkScanCombinedFn": _handle(_fvcore_ssd, _python_op_args),
    "prim::PythonOp.CausalConv1dFn": _handle(_fvcore_short_conv, _python_op_args),
}
