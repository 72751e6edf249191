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
- Recurrent layers (``nn.LSTM`` / ``GRU`` / ``RNN``): on CPU an LSTM runs as one ``mkldnn_rnn_layer`` call
  per layer and direction, on CUDA as ``_cudnn_rnn``, and fvcore sees ``aten::lstm``; neither counter has
  formulas for them (an LSTM counted near zero). Formulas here count every weight matrix once per token
  (``2 x tokens x weights``: the gate products; the gate nonlinearities are elementwise), backward twice that.
- A mixer whose spec declares a closed form (``MixerSpec.flops``, for kernels no counter sees) is counted
  by it instead of by its operations: forward hooks replace what the counter saw inside the mixer with the
  closed form, backward hooks do the same with twice it; fvcore's count of that module is replaced too.
Every op a counter runs without a formula is returned in ``skipped`` (``"counter:op"``) unless it is on the
explicit list of zero-FLOP ops (``ZERO_FLOP_OPS``, and aten ops torch tags pointwise or reduction: the
elementwise, normalisation, data-movement and indexing work that neither convention counts). Nothing is
dropped silently: an unknown op is listed, and the report flags a FLOP count with skips as incomplete.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

from harness.kernels import flop_formulas

aten = torch.ops.aten

#: aten ops that do no multiply-add work by the counters' conventions (besides those torch tags pointwise
#: or reduction): views, copies and creation; indexing and sorting; normalisation, softmax and losses
#: (elementwise and reductions); random fills; resampling (interpolation weights, elementwise by
#: convention); RNN cells whose gate products run, and are counted, before them. Any other op without a
#: formula is reported in ``flops_skipped``.
ZERO_FLOP_OPS = frozenset({
    # views, shapes, copies, creation
    "_conj", "_reshape_alias", "_to_copy", "_unsafe_view", "alias", "arange", "as_strided", "cat", "chunk",
    "clone", "constant_pad_nd", "contiguous", "copy_", "detach", "empty", "empty_like", "empty_strided", "expand",
    "expand_as", "fill_", "flatten", "flip", "full", "full_like", "lift_fresh", "linspace", "meshgrid", "narrow",
    "new_empty", "new_empty_strided", "new_full", "new_ones", "new_zeros", "ones", "ones_like", "pad", "permute",
    "pixel_shuffle", "pixel_unshuffle", "repeat", "reshape", "roll", "scalar_tensor", "select", "select_backward",
    "slice", "slice_backward", "split", "split_with_sizes", "squeeze", "stack", "t", "transpose", "transpose_",
    "tril", "triu", "unbind", "unflatten", "unfold", "unsafe_split", "unsqueeze", "view", "view_as_complex",
    "view_as_real", "zero_", "zeros", "zeros_like", "_local_scalar_dense", "item", "resize_", "set_",
    # indexing, sorting, selection
    "argsort", "embedding", "embedding_dense_backward", "gather", "index", "index_add", "index_add_", "index_copy",
    "index_fill", "index_put", "index_put_", "index_select", "masked_scatter", "masked_select", "nonzero",
    "scatter", "scatter_", "scatter_add", "scatter_add_", "scatter_reduce", "sort", "topk", "_unique2", "unique_dim",
    # normalisation, softmax, losses, cumulative sums, dropout
    "_log_softmax", "_log_softmax_backward_data", "_safe_softmax", "_softmax", "_softmax_backward_data",
    "log_softmax", "softmax", "native_batch_norm", "native_batch_norm_backward", "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional", "native_layer_norm",
    "native_layer_norm_backward", "native_group_norm", "native_group_norm_backward", "rms_norm", "_fused_rms_norm",
    "_fused_rms_norm_backward", "nll_loss_forward", "nll_loss_backward", "nll_loss2d_forward", "nll_loss2d_backward",
    "mse_loss", "mse_loss_backward", "smooth_l1_loss", "smooth_l1_loss_backward", "binary_cross_entropy",
    "binary_cross_entropy_backward", "binary_cross_entropy_with_logits", "cumsum", "cumprod", "logcumsumexp",
    "softplus_backward", "native_dropout", "native_dropout_backward",
    # random fills
    "bernoulli", "bernoulli_", "exponential_", "normal_", "rand", "rand_like", "randint", "randn", "randn_like",
    "randperm", "uniform_",
    # resampling and pooling windows
    "upsample_bilinear2d", "upsample_bilinear2d_backward", "upsample_nearest1d", "upsample_nearest1d_backward",
    "upsample_nearest2d", "upsample_nearest2d_backward", "upsample_bicubic2d", "upsample_bicubic2d_backward",
    "_upsample_bicubic2d_aa", "_upsample_bicubic2d_aa_backward", "_upsample_bilinear2d_aa",
    "_upsample_bilinear2d_aa_backward", "grid_sampler_2d", "grid_sampler_2d_backward", "avg_pool2d",
    "avg_pool2d_backward", "max_pool2d_with_indices", "max_pool2d_with_indices_backward", "_adaptive_avg_pool2d",
    "_adaptive_avg_pool2d_backward", "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
    # dispatch bookkeeping, and RNN cells fed by gate products counted before them
    "_fused_sdp_choice", "_thnn_fused_lstm_cell", "_thnn_fused_lstm_cell_backward_impl", "_thnn_fused_gru_cell",
    "_thnn_fused_gru_cell_backward",
})


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


def _rnn_formula(packet: Any, backward: bool) -> Callable[..., int]:
    """A recurrent kernel (``mkldnn_rnn_layer``, ``_cudnn_rnn`` and their backward): every weight matrix it
    holds meets every token once, ``2 x tokens x sum(weight matrices)`` FLOPs (the gate products of an LSTM,
    GRU or RNN, all layers and directions of the call); the backward twice that, as for the scans."""

    def formula(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        a = _bind(packet, args, kwargs)
        weights = [w for name, v in a.items() if name.startswith("weight") and name != "weight_stride0"
                   for w in (v if isinstance(v, (list, tuple)) else [v]) if isinstance(w, torch.Tensor) and w.dim() == 2]
        tokens = a["input"].numel() // a["input"].shape[-1]
        flops = 2 * tokens * sum(w.numel() for w in weights)
        return flops * (flop_formulas.BACKWARD_FACTOR if backward else 1)

    formula._get_raw = True
    return formula


_RNN_OPS = {False: ("mkldnn_rnn_layer", "_cudnn_rnn", "miopen_rnn"),
            True: ("mkldnn_rnn_layer_backward", "_cudnn_rnn_backward", "miopen_rnn_backward")}


def rnn_formulas() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode formulas for the fused recurrent kernels of this torch build."""
    return {getattr(aten, name): _rnn_formula(getattr(aten, name), backward)
            for backward, names in _RNN_OPS.items() for name in names if hasattr(aten, name)}


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
_FVCORE_RNN_OPS = ("aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu")


def _fvcore_rnn(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of ``aten::lstm`` / ``gru`` / ``rnn_*`` (input, hx, params, ...): tokens x the weight matrices."""
    from fvcore.nn.jit_handles import get_shape

    x = get_shape(inputs[0])
    params = inputs[2].node().inputs() if inputs[2].node().kind() == "prim::ListConstruct" else []
    shapes = [get_shape(p) for p in params]
    return math.prod(x[:-1]) * sum(math.prod(s) for s in shapes if s is not None and len(s) == 2)


def _fvcore_sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of ``aten::scaled_dot_product_attention``: ``B*H*pairs*(d_qk + d_v)``."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    is_causal = bool(inputs[5].toIValue()) if len(inputs) > 5 else False
    lq, lk = q[-2], k[-2]
    pairs = causal_pairs(lq, lk) if is_causal else lq * lk
    return math.prod(q[:-2]) * pairs * (q[-1] + v[-1])


@lru_cache(maxsize=None)
def zero_flop(name: str) -> bool:
    """Whether aten op ``name`` (no overload) does no multiply-add work by convention: it is on
    ``ZERO_FLOP_OPS``, or torch tags one of its overloads pointwise or reduction."""
    if name in ZERO_FLOP_OPS:
        return True
    packet = getattr(aten, name, None)
    if packet is None:
        return False
    tags = {tag for overload in packet.overloads() for tag in getattr(packet, overload).tags}
    return bool(tags & {torch.Tag.pointwise, torch.Tag.reduction})


def needs_formula(op: str) -> bool:
    """Whether an op a counter ran without a formula is a skip to report: every op (an autograd Function
    fvcore saw as ``prim::PythonOp``, a custom op, an aten op) but the zero-FLOP aten ops and TorchScript's
    own prim nodes. ``op``: FlopCounterMode's ``aten.mm`` or fvcore's ``aten::mm``."""
    namespace, _, rest = op.replace("::", ".").partition(".")
    if op.startswith("prim::PythonOp"):
        return True
    if namespace in ("prim", "prims"):
        return False
    if namespace == "aten":
        return not zero_flop(rest.split(".")[0])
    return True


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


def fvcore_macs(model: nn.Module, inputs: tuple, closed: dict[str, int] | None = None) -> tuple[float, list[str]]:
    """Forward multiply-adds by fvcore (plus the handles above) and the compute ops it skipped; ``closed``:
    the forward FLOPs of closed-form mixers by module name (:class:`ClosedForms`), which replace fvcore's."""
    from fvcore.nn import FlopCountAnalysis

    closed = closed or {}
    handles = {"aten::scaled_dot_product_attention": _fvcore_sdpa, **{op: _fvcore_rnn for op in _FVCORE_RNN_OPS},
               **flop_formulas.FVCORE_HANDLES}
    analysis = FlopCountAnalysis(_TensorStateOnly(model), inputs).set_op_handle(**handles)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    total = float(analysis.total())
    unsupported = analysis.unsupported_ops()
    for name, flops in closed.items():  # a closed-form mixer: its own MACs instead of what fvcore saw in it
        total += flops / 2 - float(analysis.by_module().get(f"model.{name}", 0))
        unsupported -= analysis.unsupported_ops(f"model.{name}")
    return total, sorted(f"fvcore:{op}" for op in unsupported if needs_formula(op))


# -- FlopCounterMode ------------------------------------------------------------------------------
class _OpRecorder(TorchDispatchMode):
    """Records every aten/custom op that runs, to list the ones FlopCounterMode had no formula for; ops
    inside a closed-form mixer (``hidden`` > 0) are not its business."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[Any] = set()
        self.hidden = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.hidden:
            self.seen.add(func.overloadpacket)
        return func(*args, **(kwargs or {}))


class ClosedForms:
    """While open, every outermost mixer of ``model`` whose spec has a closed form (``MixerSpec.flops``) is
    counted by it: what the counter saw between the mixer's forward pre- and post-hook (and between its
    backward pre- and post-hook) is taken back out, and the closed form (twice it for the backward) goes in
    under ``closed_form:<name>``. ``forward`` keeps the forward FLOPs per module name, for fvcore."""

    def __init__(self, model: nn.Module | None, counter: flop_counter.FlopCounterMode, recorder: _OpRecorder):
        self.counter, self.recorder = counter, recorder
        self.forward: dict[str, int] = {}
        self.mixers: list[tuple[str, nn.Module]] = []
        for name, module in model.named_modules() if model is not None else ():
            spec = getattr(module, "mixer_spec", None)
            if getattr(spec, "flops", None) is not None and not any(name.startswith(f"{o}.") for o, _ in self.mixers):
                self.mixers.append((name, module))
        self.handles: list[Any] = []

    def _open(self) -> dict[Any, int]:
        self.recorder.hidden += 1
        return dict(self.counter.flop_counts["Global"])

    def _close(self, saved: dict[Any, int], key: str, flops: int) -> None:
        self.recorder.hidden -= 1
        counts = self.counter.flop_counts["Global"]
        counts.clear()
        counts.update(saved)
        counts[key] += flops

    def __enter__(self) -> "ClosedForms":
        for name, module in self.mixers:
            spec, state = module.mixer_spec, {}

            def pre(mod: nn.Module, args: tuple, kwargs: dict, state: dict = state) -> None:
                state["saved"] = self._open()

            def post(mod: nn.Module, args: tuple, kwargs: dict, out: Any, name: str = name, spec: Any = spec,
                     state: dict = state) -> None:
                x = args[0] if args else kwargs["x"]
                state["flops"] = int(spec.flops(mod, x.shape, kwargs.get("shape", args[1] if len(args) > 1 else None)))
                self.forward[name] = self.forward.get(name, 0) + state["flops"]
                self._close(state.pop("saved"), f"closed_form:{spec.name}", state["flops"])

            def back_pre(mod: nn.Module, grad_out: Any, state: dict = state) -> None:
                state["saved_bwd"] = self._open()

            def back(mod: nn.Module, grad_in: Any, grad_out: Any, spec: Any = spec, state: dict = state) -> None:
                if "saved_bwd" in state:
                    flops = flop_formulas.BACKWARD_FACTOR * state.get("flops", 0)
                    self._close(state.pop("saved_bwd"), f"closed_form_backward:{spec.name}", flops)

            self.handles += [module.register_forward_pre_hook(pre, with_kwargs=True),
                             module.register_forward_hook(post, with_kwargs=True),
                             module.register_full_backward_pre_hook(back_pre),
                             module.register_full_backward_hook(back)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()


def counted_flops(fn: Callable[[], Any], model: nn.Module | None = None) -> tuple[int, list[str]]:
    """FLOPs (2 per multiply-add) of everything ``fn`` runs, forward and any backward it calls, with
    ``model``'s closed-form mixers counted by their closed forms; and the ops run without a formula."""
    flops, skipped, _ = _count(fn, model)
    return flops, skipped


def _count(fn: Callable[[], Any], model: nn.Module | None) -> tuple[int, list[str], dict[str, int]]:
    """``counted_flops``, and the forward FLOPs of each closed-form mixer by module name (for fvcore)."""
    mapping = {**sdpa_formulas(), **fft_formulas(), **rnn_formulas(), aten.convolution_backward: _conv_backward_formula}
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=mapping)
    recorder = _OpRecorder()
    # counting: fused kernels add their closed forms; ClosedForms: mixers that declare one are counted by it
    with counter, recorder, flop_formulas.counting(counter), ClosedForms(model, counter, recorder) as closed:
        fn()
    skipped = {str(op) for op in recorder.seen if op not in counter.flop_registry
               and str(op).split(".")[0] not in flop_formulas.COUNTED_BY_CALLER}
    return counter.get_total_flops(), sorted(f"flop_counter:{op}" for op in skipped if needs_formula(str(op))), closed.forward


def count_fwd_flops(model: nn.Module, inputs: tuple) -> int:
    """Forward FLOPs of ``model(*inputs)`` (FlopCounterMode convention, SDPA and scan kernels included)."""
    with torch.no_grad():
        return counted_flops(lambda: model(*inputs), model)[0]


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
        flops_fwd, skip, closed = _count(lambda: model(*inputs), model)
    skipped += skip
    macs = None
    if fvcore:
        try:
            macs, skip = fvcore_macs(model, inputs, closed)
            skipped += skip
        except Exception as exc:  # jit tracing fails on some models (dict outputs, data-dependent control flow)
            skipped.append(f"fvcore: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    flops_train = None
    if loss_fn is not None:  # a train step runs in train mode (detection heads compute losses only there)
        was_training = model.training
        buffers = {name: b.detach().clone() for name, b in model.named_buffers()}  # BatchNorm statistics
        model.train()
        try:
            flops_train, skip = counted_flops(lambda: loss_fn().backward(), model)
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(buffers[name])
        skipped += skip
    return FlopCounts(flops_fwd, macs, flops_train, sorted(set(skipped)))
