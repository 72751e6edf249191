"""FLOP counts that include the attention and SSM kernels, forward and train step, with skips recorded.

Two counters, two conventions, both kept as columns:
- ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add) for ``flops_fwd`` and
  ``flops_train_step`` (forward + backward; the optimizer's elementwise work is not counted).
- fvcore's ``FlopCountAnalysis`` (1 per multiply-add, the convention of published GMACs such as timm's
  and MambaOut's tables) for ``macs_fwd_fvcore``; it also counts normalisation layers, FlopCounterMode
  does not.

What the libraries get wrong, and what this file adds (anchors.md: published SSM FLOPs are often wrong
because fvcore silently skips kernels it cannot see):
- fvcore reports ``aten::scaled_dot_product_attention`` as unsupported: a handle counts it here.
- FlopCounterMode has no formula for the CPU flash kernel ``_scaled_dot_product_flash_attention_for_cpu``
  (SDPA then counts 0 on CPU), and its SDPA formulas ignore ``is_causal``. Formulas here cover every SDPA
  kernel and count a causal call as the ``Lq x Lk`` pairs it attends (top-left aligned, torch's
  semantics); calls with an explicit mask, and the math fallback (which FlopCounterMode sees as its
  matmuls), are counted in full, as those kernels compute every score.
- FlopCounterMode's ``convolution_backward`` formula counts a grouped conv's weight gradient as if the
  conv were dense (``groups`` times too many: 64x for a 64-channel depthwise conv, the conv of every Mamba
  and Gated CNN block), which inflated train-step FLOPs of conv-bearing variants against attention. The
  formula here counts the weight gradient as what it is, one more pass of the forward's multiply-adds.
- einsum, checked (tests): both counters count contractions exactly; an einsum with no summed index
  (an outer/elementwise product) is 1 FLOP per multiply for fvcore (half a MAC) and 0 for FlopCounterMode,
  which lowers it to an elementwise ``mul`` and, by its convention, counts no elementwise op.
- The harness scan ops (``harness::selective_scan``, ``harness::ssd_scan``) get their formulas from
  ``harness.kernels.flop_formulas`` (registered with FlopCounterMode by ``harness.kernels.ops``, which
  defines the ops; fvcore handles from ``FVCORE_HANDLES``).
Any compute op a counter still has no formula for is returned in ``skipped`` (``"counter:op"``), never
dropped silently. Elementwise/normalisation ops are outside both conventions and not listed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

from harness.kernels import flop_formulas

aten = torch.ops.aten

# Op names that do matmul-class work; an op matching this (or outside aten/prim) without a formula is a skip.
_COMPUTE_OP = re.compile(r"mm|matmul|conv(?!ert)|attention|einsum|(?<!bi)linear|scan|fft|dot")  # not bilinear upsampling


def causal_pairs(lq: int, lk: int) -> int:
    """Query/key pairs a top-left-aligned causal mask keeps (``tril(ones(lq, lk))``)."""
    if lq <= lk:
        return lq * (lq + 1) // 2
    return lk * (lk + 1) // 2 + (lq - lk) * lk


def _bind(packet: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments of an aten call by schema name, defaults filled."""
    schema = packet.default._schema
    bound = {a.name: a.default_value for a in schema.arguments if a.has_default_value()}
    bound.update(zip((a.name for a in schema.arguments), args))
    bound.update(kwargs)
    return bound


def _sdpa_formula(packet: Any, backward: bool) -> Callable[..., int]:
    """A FlopCounterMode formula for one SDPA kernel that honours ``is_causal``."""

    def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        a = _bind(packet, args, kwargs)
        q, k, v = a["query"].shape, a["key"].shape, a["value"].shape
        if backward:
            grad = a.get("grad_out", a.get("grad_out_")).shape
            full = flop_counter.sdpa_backward_flop_count(grad, q, k, v)
        else:
            full = flop_counter.sdpa_flop_count(q, k, v)
        if not a.get("is_causal", False):
            return full
        lq, lk = q[-2], k[-2]
        return full * causal_pairs(lq, lk) // (lq * lk)

    formula._get_raw = True  # FlopCounterMode passes tensors, so the schema binding sees every argument
    return formula


_SDPA_OPS = {
    False: ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu"),
    True: ("_scaled_dot_product_flash_attention_backward", "_scaled_dot_product_efficient_attention_backward",
           "_scaled_dot_product_cudnn_attention_backward", "_scaled_dot_product_flash_attention_for_cpu_backward"),
}


def _fft_formula(packet: Any, complex_input: bool) -> Callable[..., int]:
    """FFT FLOPs by the Cooley-Tukey estimate, 5 N log2 N per complex transform of N points (half that for
    a real-input/real-output transform). FlopCounterMode has no FFT formulas (FNO's spectral layers)."""

    def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        a = _bind(packet, args, kwargs)
        signal = a["self"] if packet is not aten._fft_c2r else out_val
        dims = [d % signal.dim() for d in a["dim"]]
        n = math.prod(signal.shape[d] for d in dims)
        transforms = signal.numel() // max(n, 1)
        per = 5 * n * math.log2(n) if n > 1 else 0
        return int(transforms * per * (1.0 if complex_input and packet is aten._fft_c2c else 0.5))

    formula._get_raw = True
    return formula


def fft_formulas() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode formulas for the FFT kernels (FNO's spectral convolutions)."""
    return {
        aten._fft_r2c: _fft_formula(aten._fft_r2c, complex_input=False),
        aten._fft_c2r: _fft_formula(aten._fft_c2r, complex_input=True),
        aten._fft_c2c: _fft_formula(aten._fft_c2c, complex_input=True),
    }


def _conv_backward_formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """``aten.convolution_backward``: torch's count for the input gradient (a transposed conv, which it
    gets right for groups), plus the weight gradient as 2 x batch x positions x weight.numel() (the
    forward's multiply-adds again: every weight meets every position it was applied at once)."""
    a = _bind(aten.convolution_backward, args, kwargs)
    names = [arg.name for arg in aten.convolution_backward.default._schema.arguments]
    grad_input_only = [a[n] if n != "output_mask" else [a["output_mask"][0], False, False] for n in names]
    total = flop_counter.conv_backward_flop(*grad_input_only, out_val=out_val)
    if a["output_mask"][1]:
        positions = (a["input"] if a["transposed"] else a["grad_output"]).shape[2:]
        total += 2 * a["input"].shape[0] * math.prod(positions) * a["weight"].numel()
    return total


_conv_backward_formula._get_raw = True  # type: ignore[attr-defined]


def sdpa_formulas() -> dict[Any, Callable[..., int]]:
    """``custom_mapping`` for FlopCounterMode: every SDPA kernel of this torch build, causal-aware."""
    mapping = {}
    for backward, names in _SDPA_OPS.items():
        for name in names:
            if hasattr(aten, name):
                packet = getattr(aten, name)
                mapping[packet] = _sdpa_formula(packet, backward)
    return mapping


# -- fvcore handles -------------------------------------------------------------------------------
def _fvcore_sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of ``aten::scaled_dot_product_attention``: ``B*H*pairs*(d_qk + d_v)``."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    is_causal = bool(inputs[5].toIValue()) if len(inputs) > 5 else False
    lq, lk = q[-2], k[-2]
    pairs = causal_pairs(lq, lk) if is_causal else lq * lk
    return math.prod(q[:-2]) * pairs * (q[-1] + v[-1])


def _is_compute(op: str) -> bool:
    namespace = re.split(r"::|\.", op, maxsplit=1)[0]
    return op.startswith("prim::PythonOp") or namespace not in ("aten", "prim", "prims") or bool(_COMPUTE_OP.search(op))


class _TensorStateOnly(nn.Module):
    """``model`` with only tensors in its state dict, so that JIT tracing (fvcore) accepts it.

    The tracer passes every state-dict value to the graph as an input; neuraloperator's models add a
    ``_metadata`` dict to theirs, which made fvcore fail on every FNO.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: Any) -> Any:
        return self.model(*inputs)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().state_dict(*args, **kwargs)
        for key in [k for k, v in state.items() if not isinstance(v, torch.Tensor)]:
            del state[key]
        return state


def fvcore_macs(model: nn.Module, inputs: tuple) -> tuple[float, list[str]]:
    """Forward multiply-adds by fvcore (plus the handles above) and the compute ops it skipped."""
    from fvcore.nn import FlopCountAnalysis

    handles = {"aten::scaled_dot_product_attention": _fvcore_sdpa, **flop_formulas.FVCORE_HANDLES}
    analysis = FlopCountAnalysis(_TensorStateOnly(model), inputs).set_op_handle(**handles)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    total = float(analysis.total())
    return total, sorted(f"fvcore:{op}" for op in analysis.unsupported_ops() if _is_compute(op))


# -- FlopCounterMode ------------------------------------------------------------------------------
class _OpRecorder(TorchDispatchMode):
    """Records every aten/custom op that runs, to list the ones FlopCounterMode had no formula for."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[Any] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.add(func.overloadpacket)
        return func(*args, **(kwargs or {}))


def counted_flops(fn: Callable[[], Any]) -> tuple[int, list[str]]:
    """FLOPs (2 per multiply-add) of everything ``fn`` runs, forward and any backward it calls."""
    mapping = {**sdpa_formulas(), **fft_formulas(), aten.convolution_backward: _conv_backward_formula}
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=mapping)
    recorder = _OpRecorder()
    with counter, recorder, flop_formulas.counting(counter):  # counting: fused kernels add their closed forms
        fn()
    skipped = {str(op) for op in recorder.seen if op not in counter.flop_registry
               and str(op).split(".")[0] not in flop_formulas.COUNTED_BY_CALLER}
    return counter.get_total_flops(), sorted(f"flop_counter:{op}" for op in skipped if _is_compute(str(op)))


def count_fwd_flops(model: nn.Module, inputs: tuple) -> int:
    """Forward FLOPs of ``model(*inputs)`` (FlopCounterMode convention, SDPA and scan kernels included)."""
    with torch.no_grad():
        return counted_flops(lambda: model(*inputs))[0]


@dataclass(frozen=True)
class FlopCounts:
    flops_fwd: int | None
    macs_fwd_fvcore: float | None
    flops_train_step: int | None
    skipped: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return {"flops_fwd": self.flops_fwd, "macs_fwd_fvcore": self.macs_fwd_fvcore,
                "flops_train_step": self.flops_train_step, "flops_skipped": ",".join(self.skipped)}


def count_flops(model: nn.Module, inputs: tuple, loss_fn: Callable[[], torch.Tensor] | None = None, *,
                fvcore: bool = True) -> FlopCounts:
    """Forward FLOPs (both counters) and, when ``loss_fn`` is given, the forward+backward of one train step.

    A counter that cannot trace/run the model gives ``None`` and a ``"counter: failed: ..."`` entry in
    ``skipped`` instead of a number.
    """
    skipped: list[str] = []
    with torch.no_grad():
        flops_fwd, skip = counted_flops(lambda: model(*inputs))
    skipped += skip
    macs = None
    if fvcore:
        try:
            macs, skip = fvcore_macs(model, inputs)
            skipped += skip
        except Exception as exc:  # jit tracing fails on some models (dict outputs, data-dependent control flow)
            skipped.append(f"fvcore: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    flops_train = None
    if loss_fn is not None:  # a train step runs in train mode (detection heads compute losses only there)
        was_training = model.training
        buffers = {name: b.detach().clone() for name, b in model.named_buffers()}  # BatchNorm statistics
        model.train()
        try:
            flops_train, skip = counted_flops(lambda: loss_fn().backward())
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(buffers[name])
        skipped += skip
    return FlopCounts(flops_fwd, macs, flops_train, sorted(set(skipped)))
