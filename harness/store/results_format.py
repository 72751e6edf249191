"""The results folder's format, in one place: its files, how a row's columns read, and ``suite.json``.

``harness.store.ResultStore`` writes the folder (``harness.plan.describe`` makes its suite record) and
``harness.report`` reads it; neither defines any of this itself. Layout of ``results/<suite>/``::

    runs/<run_id>.json    one finished run: {"row": {...}, "config": {...}}
    logs/<run_id>.log     the run's subprocess output
    results.parquet/.csv  the merged table, one row per run
    suite.json            {"suite", "description", "seeds", "tasks": {task: {"family", "dataset", "description",
                           "causal", "primary_metric", "metrics": {m: {"higher_is_better", "unit", "primary"}},
                           "verdict": {"thresholds": {m: float}, "relative": {m: bool}}, "sweep_keys": [...],
                           "factor_keys": [...], "size_keys": [...], "variants": [...],
                           "claims": [{"claim": {...}, "metrics": {...}}]}}}

Sweep keys are of three kinds: *size* keys (sequence length, resolution, grid: the axis of a scaling
study, never tuned; a suite declares them with ``sizes:``), *factor* keys (``factors:``, studied: part of
the variant) and the rest, *hyper-parameter* keys (a tuning grid, under the equal-budget rule). Folders
written before ``size_keys`` existed have their size keys guessed from the key's name (``SIZE_KEY_NAMES``).
This module imports nothing heavy (no torch): the report reads through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import HarnessError

RUNS_DIR, LOGS_DIR = "runs", "logs"
RESULTS_PARQUET, RESULTS_CSV = "results.parquet", "results.csv"
SUITE_JSON = "suite.json"

#: last dotted component of a sweep key that makes it a *size* key when the suite declares none.
SIZE_KEY_NAMES = frozenset({
    "seq_len", "seqlen", "sequence_length", "length", "max_len", "n_tokens", "num_tokens", "context",
    "resolution", "res", "img_size", "image_size", "patch_size_hr", "grid", "grid_size", "n_grid",
    "size", "T", "t",
})

ID_COLUMNS = [
    "suite", "task", "family", "variant", "mixer", "is_ssm", "seed", "sweep", "status", "error",
    "backend", "device", "gpu_name", "torch_version", "cuda_version", "git_commit", "harness_version",
    "config_hash", "started_at", "ablation", "causal", "results_version", "accepted_stale",
]

#: the columns ``harness.measure.measure_model`` fills in every row (None where a phase is off)
MEASURED_COLUMNS = (
    "params", "flops_fwd", "macs_fwd_fvcore", "flops_train_step", "flops_skipped",
    "latency_ms_p10", "latency_ms_p50", "latency_ms_p90", "train_step_ms_p10", "train_step_ms_p50",
    "train_step_ms_p90", "peak_mem_mb_infer", "peak_mem_mb_train", "mem_approx", "throughput",
    "latency_protocol", "measure_dtype", "measure_status", "backend",
)

#: cost columns and their (label, unit) - lower is better except ``HIGHER_IS_BETTER_COSTS``.
COST_COLUMNS: dict[str, tuple[str, str]] = {
    "params": ("parameters", "count"),
    "flops_fwd": ("forward FLOPs", "FLOP"),
    "macs_fwd_fvcore": ("forward MACs (fvcore)", "MAC"),
    "flops_train_step": ("train-step FLOPs", "FLOP"),
    "latency_ms_p10": ("latency p10", "ms"),
    "latency_ms_p50": ("latency p50", "ms"),
    "latency_ms_p90": ("latency p90", "ms"),
    "train_step_ms_p50": ("train step p50", "ms"),
    "peak_mem_mb_infer": ("peak memory (inference)", "MB"),
    "peak_mem_mb_train": ("peak memory (train)", "MB"),
    "throughput": ("throughput", "items/s"),
    "train_time_s": ("train time", "s"),
}
#: numeric columns that describe the run rather than measure it.
DESCRIPTIVE_NUMERIC = {"seq_len", "d_model", "l_over_6d", "train_steps", "budget_mismatch", "seed",
                       "mem_approx"}
#: cost columns where higher is better (everything else in COST_COLUMNS is lower-is-better).
HIGHER_IS_BETTER_COSTS = {"throughput"}

#: metric names known even when suite.json does not list them.
KNOWN_METRICS: dict[str, dict[str, Any]] = {
    "accuracy": {"higher_is_better": True, "unit": "fraction"},
    "top1": {"higher_is_better": True, "unit": "%"},
    "top5": {"higher_is_better": True, "unit": "%"},
    "psnr": {"higher_is_better": True, "unit": "dB"},
    "ssim": {"higher_is_better": True, "unit": ""},
    "rel_l2": {"higher_is_better": False, "unit": ""},
    "nrmse": {"higher_is_better": False, "unit": ""},
    "nll_bits_per_token": {"higher_is_better": False, "unit": "bits/token"},
    "test_acc": {"higher_is_better": True, "unit": "fraction"},
    "train_acc": {"higher_is_better": True, "unit": "fraction"},
    "gen_gap": {"higher_is_better": False, "unit": "fraction"},
    "final_loss": {"higher_is_better": False, "unit": ""},
}


def guessed_size_key(key: str) -> bool:
    """Whether a sweep key reads as a size by its name (for suites and folders that declare none)."""
    return key.split(".")[-1] in SIZE_KEY_NAMES


@dataclass
class MetricInfo:
    name: str
    higher_is_better: bool = True
    unit: str = ""
    primary: bool = False


@dataclass
class TaskInfo:
    """One task's entry of ``suite.json`` with defaults filled."""

    name: str
    family: str = ""
    dataset: str = ""
    description: str = ""
    causal: bool | None = None
    primary_metric: str | None = None
    metrics: dict[str, MetricInfo] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    relative: dict[str, bool] = field(default_factory=dict)
    sweep_keys: list[str] = field(default_factory=list)
    factor_keys: list[str] = field(default_factory=list)  # studied factors: part of the variant, never tuned
    declared_size_keys: list[str] | None = None  # None: a folder from before size_keys, guessed by name
    variants: list[str] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)  # the task's expect: (harness.report.claims)

    def is_size_key(self, key: str) -> bool:
        return key in self.declared_size_keys if self.declared_size_keys is not None else guessed_size_key(key)

    @property
    def size_keys(self) -> list[str]:
        if self.declared_size_keys is not None:
            return list(self.declared_size_keys)
        return [k for k in self.sweep_keys if guessed_size_key(k)]

    @property
    def hp_keys(self) -> list[str]:
        return [k for k in self.sweep_keys if not self.is_size_key(k) and k not in self.factor_keys]

    def metric(self, name: str) -> MetricInfo:
        if name in self.metrics:
            return self.metrics[name]
        if name in KNOWN_METRICS:
            return MetricInfo(name, **KNOWN_METRICS[name])
        if name in COST_COLUMNS:
            return MetricInfo(name, higher_is_better=name in HIGHER_IS_BETTER_COSTS, unit=COST_COLUMNS[name][1])
        return MetricInfo(name)

    def threshold(self, metric: str, reference: float | None = None) -> float:
        """Practical-significance threshold in the metric's units (relative ones scaled by |reference|)."""
        thr = float(self.thresholds.get(metric, 0.0) or 0.0)
        if self.relative.get(metric, False) and reference is not None and np.isfinite(reference):
            thr = thr * abs(reference)
        return thr

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "dataset": self.dataset,
            "description": self.description,
            "causal": self.causal,
            "primary_metric": self.primary_metric,
            "metrics": {m: {"higher_is_better": i.higher_is_better, "unit": i.unit, "primary": i.primary}
                        for m, i in self.metrics.items()},
            "verdict": {"thresholds": dict(self.thresholds), "relative": dict(self.relative)},
            "sweep_keys": list(self.sweep_keys),
            "factor_keys": list(self.factor_keys),
            "size_keys": self.size_keys,
            "variants": list(self.variants),
            "claims": list(self.claims),
        }

    @classmethod
    def from_json(cls, name: str, t: dict[str, Any]) -> "TaskInfo":
        metrics = {
            m: MetricInfo(m, bool(v.get("higher_is_better", True)), str(v.get("unit", "") or ""), bool(v.get("primary", False)))
            for m, v in (t.get("metrics") or {}).items()
        }
        verdict = t.get("verdict") or {}
        sizes = t.get("size_keys")
        return cls(
            name=name, family=t.get("family", ""), dataset=t.get("dataset", ""), description=t.get("description", ""),
            causal=t.get("causal"),
            primary_metric=t.get("primary_metric") or next((m for m, v in metrics.items() if v.primary), None),
            metrics=metrics, thresholds={k: float(v) for k, v in (verdict.get("thresholds") or {}).items()},
            relative={k: bool(v) for k, v in (verdict.get("relative") or {}).items()},
            sweep_keys=list(t.get("sweep_keys") or []), factor_keys=list(t.get("factor_keys") or []),
            declared_size_keys=None if sizes is None else list(sizes), variants=list(t.get("variants") or []),
            claims=list(t.get("claims") or []),
        )


@dataclass
class SuiteInfo:
    """``suite.json``: what reading a results folder needs to know of its suite, without any model code."""

    name: str
    tasks: dict[str, TaskInfo]
    description: str = ""
    seeds: list[int] = field(default_factory=list)

    def task(self, name: str) -> TaskInfo:
        """The task's entry; a task the file does not list gets one with defaults."""
        if name not in self.tasks:
            self.tasks[name] = TaskInfo(name=name)
        return self.tasks[name]

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.name, "description": self.description, "seeds": list(self.seeds),
                "tasks": {name: t.to_json() for name, t in self.tasks.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SuiteInfo":
        tasks = {name: TaskInfo.from_json(name, t) for name, t in (data.get("tasks") or {}).items()}
        return cls(name=str(data.get("suite", "")), tasks=tasks, description=str(data.get("description", "") or ""),
                   seeds=list(data.get("seeds") or []))

    @classmethod
    def read(cls, results_dir: str | Path) -> "SuiteInfo":
        """The ``suite.json`` of a results folder (an empty record when there is none)."""
        p = Path(results_dir) / SUITE_JSON
        if not p.exists():
            return cls(name="", tasks={})
        try:
            data = json.loads(p.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not a mapping")
        except (OSError, ValueError) as exc:  # harness run writes suite.json afresh each time it runs the suite
            raise HarnessError(f"{p}: corrupt, not a harness suite.json ({exc}); "
                               "delete it and rerun the suite (harness run) to rewrite it") from None
        return cls.from_json(data)


def read_table(results_dir: str | Path) -> pd.DataFrame:
    """The merged table of a results folder (``results.parquet``, else ``results.csv``)."""
    d = Path(results_dir)
    if not d.is_dir():
        raise HarnessError(f"{d}: results folder not found")
    p = next((d / n for n in (RESULTS_PARQUET, RESULTS_CSV) if (d / n).exists()), None)
    if p is None:
        raise HarnessError(f"{d}: no {RESULTS_PARQUET} or {RESULTS_CSV} in this folder")
    try:
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
        if "task" not in df.columns:
            raise ValueError("no task column")
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid and pandas' parser errors are ValueErrors
        raise HarnessError(f"{p}: corrupt, not a harness results table ({exc}); harness run rebuilds it from "
                           f"{d / RUNS_DIR}/*.json after each run it finishes there") from None
    return df
