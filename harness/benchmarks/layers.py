"""Our Mamba / Mamba-2 layers beside mamba_ssm's own modules: the rows of ``layers.csv``.

Why: a latency verdict is only fair if the SSM runs at its authors' speed. Every layer here is timed in
one process under the harness protocol (``measure_model``: first call apart, warm-up, CUDA events, p10 /
p50 / p90 of the forward in inference mode and of a train step), on the same input (``measure_layer``)
and in the same dtype (the protocol's autocast: bf16 on CUDA). Per kind and length, mamba_ssm's module
first, then ours three ways:

* ``mamba_ssm.Mamba`` / ``mamba_ssm.Mamba2``: mamba_ssm's module on its default (fused) path;
* ``ours``: our mixer as a suite runs it, on mamba_ssm's fused function where it runs;
* ``ours, unfused``: the scan and conv kernels apart (``fused_path.unfused_only``);
* ``ours, unfused, torch conv``: torch's depthwise conv too (``short_conv.torch_conv_only``).

``latency_ratio`` / ``train_step_ratio``: our p50 over mamba_ssm's at the same size (goal <= 1.05). FLOP
columns are counted for our layers only (mamba_ssm's modules call kernels no counter sees). A layer that
cannot run here says why in ``status`` (``unavailable: ...``); rows past the deadline say ``skipped:
deadline``. Sizes default to ``suites/scaling.yaml``'s (d_model 768, batch 8, its Mamba and Mamba-2).
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator

import torch

from harness.benchmarks.bench import measure_layer
from harness.config.sections import MeasureConfig
from harness.kernels import ops
from harness.kernels.fused_path import unfused_only
from harness.kernels.short_conv import torch_conv_only
from harness.measure import COLUMNS
from harness.measure.env import environment
from harness.modules.registry import create_mixer

LAYER_CONFIGS: dict[str, dict[str, Any]] = {"mamba": {}, "mamba2": {"d_state": 128, "headdim": 64}}
LENGTHS = (1024, 4096, 16384)
OURS: dict[str, tuple[Callable[[], Any], ...]] = {
    "ours": (),
    "ours, unfused": (unfused_only,),
    "ours, unfused, torch conv": (unfused_only, torch_conv_only),
}
THEIRS = {"mamba": "Mamba", "mamba2": "Mamba2"}


def _entered(*contexts: Callable[[], Any]) -> Callable[[], Any]:
    """A context-manager factory that enters each of ``contexts`` (factories too), in order."""

    @contextmanager
    def all_of() -> Iterator[None]:
        with ExitStack() as stack:
            for ctx in contexts:
                stack.enter_context(ctx())
            yield

    return all_of


def mamba_ssm_module(kind: str) -> tuple[type | None, str]:
    """mamba_ssm's module class for ``kind``, or None and why it cannot be imported here."""
    try:
        import mamba_ssm
    except Exception as exc:  # noqa: BLE001 - ImportError, or a kernel that does not load
        return None, f"mamba_ssm does not import: {type(exc).__name__}: {exc}".splitlines()[0]
    return getattr(mamba_ssm, THEIRS[kind]), ""


def layer_rows(device: torch.device | str, d_model: int = 768, batch_size: int = 8,
               lengths: tuple[int, ...] = LENGTHS, cfg: MeasureConfig | None = None,
               deadline: float | None = None) -> Iterator[dict[str, Any]]:
    """One row per (kind, length, layer), yielded as measured; ``deadline`` (``time.time()``) skips the rest."""
    device = torch.device(device)
    cfg = cfg or MeasureConfig()
    env = environment(device)
    for kind, kw in LAYER_CONFIGS.items():
        theirs_cls, why = mamba_ssm_module(kind)
        if theirs_cls is not None and device.type not in ops.KERNEL_DEVICE_TYPES:
            theirs_cls, why = None, "mamba_ssm's modules run on CUDA only"
        theirs = f"mamba_ssm.{THEIRS[kind]}"
        for length in lengths:
            ids = {"kind": kind, "seq_len": length, "d_model": d_model, "batch_size": batch_size,
                   "mixer_kwargs": json.dumps(kw, sort_keys=True)}

            def measure(build: Callable[[], Any], context: Callable[[], Any], layer_cfg: MeasureConfig) -> dict[str, Any]:
                if deadline is not None and time.time() > deadline:
                    return {"status": "skipped: deadline"}
                return measure_layer(build, batch_size, length, d_model, device, layer_cfg, context)

            if theirs_cls is None:
                reference = {"status": f"unavailable: {why}"}
            else:
                reference = measure(lambda: theirs_cls(d_model=d_model, **kw), _entered(), cfg.model_copy(update={"flops": False}))
                reference["backend"] = "mamba_ssm" if reference["status"] == "ok" else None
            yield _row(ids, theirs, reference, {}, env)
            for label, contexts in OURS.items():
                costs = measure(lambda: create_mixer(kind, d_model, **kw), _entered(*contexts), cfg)
                yield _row(ids, label, costs, reference, env)


ROW_COLUMNS = ("kind", "layer", "seq_len", "d_model", "batch_size", "mixer_kwargs", "status", *COLUMNS,
               "latency_ratio", "train_step_ratio")


def _row(ids: dict[str, Any], layer: str, costs: dict[str, Any], reference: dict[str, Any],
         env: dict[str, Any]) -> dict[str, Any]:
    """The row's columns in ``ROW_COLUMNS`` order (missing ones None), then the environment; ratios are our
    p50 over mamba_ssm's (``reference``), None where either is missing."""
    row = dict.fromkeys(ROW_COLUMNS)
    row.update(ids, layer=layer, **costs)
    for column, ratio in (("latency_ms_p50", "latency_ratio"), ("train_step_ms_p50", "train_step_ratio")):
        a, b = costs.get(column), reference.get(column)
        row[ratio] = a / b if a is not None and b else None
    return {**row, **env}
