"""``harness bench``: whole mixers (projections included) across sequence lengths, one row per (mixer, L).

anchors.md's reference figures pair a Mamba *layer* with a bare SDPA call, which is not a fair pairing;
this measures every mixer as the full module a model would hold, with the suite's measurement protocol
(``measure_model``), so its columns are the result rows' columns where they overlap, plus ``status``
(``ok`` | ``oom`` | ``error: ...``) and the mixer's kernel ``backend``. Inputs are 1-D sequences, so a
mixer whose default is 2-D gets its 1-D form (``SEQUENCE_DEFAULTS``). Every (mixer, L) is built afresh
with the same seed; an OOM or error is a row, not a crash.
"""

from __future__ import annotations

import inspect
import json
import traceback
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from harness.config.sections import MeasureConfig
from harness.measure.env import environment
from harness.measure.measurer import COLUMNS, measure_model
from harness.measure.memory import is_oom, release_memory
from harness.modules.registry import MIXERS, create_mixer

# Keyword arguments that turn a mixer whose default is 2-D into its 1-D sequence form.
SEQUENCE_DEFAULTS: dict[str, dict[str, Any]] = {"gated_cnn": {"conv_dims": 1}}


def _accepted(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The subset of shared kwargs (e.g. ``causal``) this mixer's constructor takes."""
    params = inspect.signature(MIXERS.get(name)).parameters  # a class or a plugin's factory function
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def measure_layer(build: Callable[[], nn.Module], batch_size: int, length: int, d_model: int,
                  device: torch.device, cfg: MeasureConfig,
                  context: Callable[[], AbstractContextManager[Any]] = nullcontext) -> dict[str, Any]:
    """The cost columns (``COLUMNS``) of ``build()`` on a (batch_size, length, d_model) input, and ``status``
    (``ok`` | ``oom`` | ``error: ...``): an OOM or error is a row, not a crash.

    Weights from seed 0, the input from its own generator (seed 0): every layer measured at one size gets
    the same input, whatever its constructor drew. ``context`` is entered around building and measuring.
    """
    row: dict[str, Any] = {**dict.fromkeys(COLUMNS), "status": "ok"}
    model: nn.Module | None = None
    try:
        with context():
            torch.manual_seed(0)
            model = build().to(device)
            x = torch.randn(batch_size, length, d_model, generator=torch.Generator().manual_seed(0)).to(device)
            row.update(measure_model(model, (x,), None, cfg, device))
        if row["measure_status"] != "ok":
            row["status"] = "oom"
    except Exception as exc:  # noqa: BLE001 - a failing configuration is a result row
        if is_oom(exc):
            row["status"] = "oom"
        else:
            row["status"] = f"error: {type(exc).__name__}: {exc}"[:500]
            traceback.print_exc()
    finally:
        del model
        release_memory(device)
    return row


def bench_mixers(mixers: list[str], lengths: list[int], d_model: int, batch_size: int, device: torch.device | str,
                 dtype: str, cfg: MeasureConfig, mixer_kwargs: dict[str, Any] | None = None,
                 per_mixer: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Measure each mixer at each length; ``dtype`` overrides ``cfg.dtype`` (auto | fp32 | bf16 | fp16).

    ``mixer_kwargs`` go to every mixer that accepts them; ``per_mixer[name]`` to that mixer only. The
    kwargs a mixer actually got are recorded in the ``mixer_kwargs`` column.
    """
    device = torch.device(device)
    cfg = cfg.model_copy(update={"dtype": dtype, "batch_size": batch_size})
    env = environment(device)
    rows = []
    for name in mixers:
        kwargs = {**SEQUENCE_DEFAULTS.get(MIXERS.canonical(name), {}), **_accepted(name, mixer_kwargs or {}),
                  **(per_mixer or {}).get(name, {})}
        for length in lengths:
            costs = measure_layer(lambda: create_mixer(name, d_model, **kwargs), batch_size, length, d_model, device, cfg)
            rows.append({"mixer": name, "seq_len": length, "d_model": d_model, "batch_size": batch_size,
                         "dtype": dtype, "mixer_kwargs": json.dumps(kwargs, sort_keys=True), **costs, **env})
    return pd.DataFrame(rows)
