"""Honest measurement: FLOPs with the kernels counted, latency and memory under one protocol, budgets.

One purpose per file: ``flops`` (fvcore + FlopCounterMode, causal-aware SDPA, scan-op formulas),
``latency`` (warm-up, CUDA events, percentiles), ``memory`` (per-phase peaks, OOM as a status), ``env``
(the environment columns), ``precision`` (what ``auto`` means on a device), ``budget`` (width matching),
``measurer`` (the row's cost columns and the ``Measurer`` families use). Benchmarks that build mixers
to measure them live above, in ``harness.benchmarks``.

    costs = measure_model(model, inputs, loss_fn, MeasureConfig(), device)
    stats = Measurer(cfg, device).time(decode)          # same protocol for family-specific costs
"""

from harness.measure.measurer import COLUMNS, Measurer, measure_model

__all__ = ["COLUMNS", "Measurer", "measure_model"]
