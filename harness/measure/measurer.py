"""Cost columns of a result row, measured the same way for every variant (optimum-benchmark's scenario).

``measure_model`` gives parameters, FLOPs (forward, train step, both counters), latency of the forward
(``torch.inference_mode``) and of a whole train step (forward + backward + AdamW step) apart, peak memory
per phase, throughput at the median latency, and the protocol string. ``Measurer`` hands the same protocol
to families for their own costs (e.g. AR decode), so families never time themselves.

The train step uses AdamW with ``lr=0`` (the optimizer's full compute, weights unmoved) and the model's
parameters and buffers are restored afterwards, so measuring never changes a trained model.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import nn

from harness.config.sections import MeasureConfig
from harness.measure.budget import count_params
from harness.measure.flops import count_flops, counted_flops
from harness.measure.latency import TimingStats, protocol_string, time_fn
from harness.measure.memory import MemoryResult, is_oom, peak_memory, release_memory
from harness.measure.precision import autocast, resolve
from harness.modules.registry import backends_of
from harness.store.results_format import MEASURED_COLUMNS as COLUMNS


class Measurer:
    """The measurement protocol bound to one config and device."""

    def __init__(self, cfg: MeasureConfig, device: torch.device | str):
        self.cfg = cfg
        self.device = torch.device(device)

    def autocast(self, cuda_graph: bool = False):
        """The precision context every timed/measured call runs in (no cast cache inside a CUDA graph)."""
        return autocast(self.cfg.dtype, self.device, cache_enabled=not cuda_graph)

    def wrap(self, fn: Callable[[], Any], inference: bool, cuda_graph: bool = False) -> Callable[[], Any]:
        """``fn`` inside the protocol's precision (and ``inference_mode``): what every timer calls."""

        def call() -> Any:
            with torch.inference_mode() if inference else nullcontext(), self.autocast(cuda_graph):
                return fn()

        return call

    def time(self, fn: Callable[[], Any], *, inference: bool = False, cuda_graph: bool = False) -> TimingStats:
        """Latency stats of ``fn`` under the protocol (``inference``: inside ``torch.inference_mode``)."""
        return time_fn(self.wrap(fn, inference, cuda_graph), self.cfg, self.device, cuda_graph=cuda_graph)

    def memory(self, fn: Callable[[], Any], *, inference: bool = False) -> MemoryResult:
        """Peak memory of one call with its status (``oom``) and whether it is approximate (CPU)."""
        return peak_memory(self.wrap(fn, inference), self.device)

    def peak_memory(self, fn: Callable[[], Any], *, inference: bool = False) -> float | None:
        """Peak memory in MB of one call of ``fn``; None when it ran out of memory."""
        return self.memory(fn, inference=inference).peak_mb

    def flops(self, fn: Callable[[], Any]) -> int:
        """FLOPs (2 per multiply-add) of one call of ``fn``, attention and scan kernels included."""
        return counted_flops(fn)[0]

    def protocol(self, cuda_graph: bool = False) -> str:
        return protocol_string(self.cfg, self.device, cuda_graph)


def _surrogate_loss(out: Any) -> torch.Tensor:
    """A scalar to backpropagate when the caller gives no loss: the mean of the first floating output."""
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        out = next(o for o in out if torch.is_tensor(o) and o.is_floating_point())
    return out.float().mean()


def _batch_size(inputs: tuple) -> int:
    return next(x.shape[0] for x in inputs if torch.is_tensor(x) and x.ndim > 0)


def measure_model(model: nn.Module, inputs: tuple, loss_fn: Callable[[], torch.Tensor] | None,
                  cfg: MeasureConfig, device: torch.device | str) -> dict[str, Any]:
    """The cost columns (``COLUMNS``) of ``model(*inputs)``; phases the config turns off are None.

    ``loss_fn`` computes a training loss with ``model`` (on a fixed batch); without it the train step
    backpropagates the mean of the output. An out-of-memory phase gives None columns and
    ``measure_status = "oom:<phase>"``; other errors propagate.
    """
    m = Measurer(cfg, device)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(params=count_params(model), mem_approx=m.device.type != "cuda", flops_skipped="",
               latency_protocol=m.protocol(cfg.cuda_graphs), measure_dtype=resolve(cfg.dtype, m.device))
    loss = loss_fn if loss_fn is not None else (lambda: _surrogate_loss(model(*inputs)))
    status: list[str] = []
    was_training = model.training
    # parameters and buffers by name, restored in place afterwards (not through ``state_dict``: libraries
    # keep extra entries there, e.g. neuraloperator's ``_metadata``, that ``load_state_dict`` rejects)
    tensors = dict(itertools.chain(model.named_parameters(), model.named_buffers()))
    saved = {name: t.detach().to("cpu", copy=True) for name, t in tensors.items()}

    def forward() -> Any:
        return model(*inputs)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with m.autocast():
            value = loss()
        value.backward()
        opt.step()

    def attempt(phase: str, fn: Callable[[], Any]) -> Any:
        """Run one phase; an out-of-memory error marks the phase instead of failing the row."""
        try:
            return fn()
        except Exception as exc:
            if not is_oom(exc):
                raise
            release_memory(m.device)
            status.append(f"oom:{phase}")
            return None

    def peak(phase: str, fn: Callable[[], Any]) -> float | None:
        mem = attempt(phase, fn)
        if mem is not None and mem.status != "ok":
            status.append(f"{mem.status}:{phase}")
        return None if mem is None else mem.peak_mb

    try:
        model.eval()
        if cfg.flops:
            counts = attempt("flops", lambda: count_flops(model, inputs, loss if cfg.train_step else None))
            if counts is not None:
                row.update(counts.as_row())
        if cfg.memory:
            row["peak_mem_mb_infer"] = peak("infer", lambda: m.memory(forward, inference=True))
        if cfg.latency and "oom:infer" not in status:
            stats = attempt("infer", lambda: m.time(forward, inference=True, cuda_graph=cfg.cuda_graphs))
            if stats is not None:
                row.update(stats.as_row("latency_ms"), throughput=_batch_size(inputs) / (stats.p50_ms / 1e3))
        row["backend"] = backends_of(model)
        if cfg.train_step:
            model.train()
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
            if cfg.memory:
                row["peak_mem_mb_train"] = peak("train", lambda: peak_memory(train_step, m.device))
            if cfg.latency and "oom:train" not in status:
                stats = attempt("train", lambda: time_fn(train_step, cfg, m.device))
                if stats is not None:
                    row.update(stats.as_row("train_step_ms"))
            del opt
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, t in tensors.items():
                t.copy_(saved[name])
        model.train(was_training)
    row["measure_status"] = ",".join(status) or "ok"
    return row
