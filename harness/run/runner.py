"""Execute one planned run and return its result row; every failure becomes a row with a status.

Status values: ``ok``; ``oom`` (CUDA or CPU allocation failure); ``diverged`` (non-finite or exploding
loss); ``error`` (anything else, with its message; the traceback goes to the run's log).
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from harness import __version__
from harness.config.run_config import RunConfig
from harness.errors import Diverged, HarnessError
from harness.families import FAMILIES, Experiment, Family, RunContext
from harness.modules.attention import sdpa_kernels
from harness.modules.registry import backends_of, mixer_spec
from harness.plugins import load_plugins
from harness.run import distributed
from harness.run.train import fit, seed_everything, train
from harness.versions import results_version

OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def classify_failure(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return "diverged"
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return "oom"
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MARKERS):
        return "oom"
    return "error"


def primary_metric(family: type[Family], values: dict[str, Any]) -> str:
    """The first metric flagged primary that this run filled (dense tasks fill map or miou, not both)."""
    def is_filled(value: Any) -> bool:
        return value is not None and not (isinstance(value, float) and math.isnan(value))

    names = [m for m, spec in family.metrics.items() if spec.primary and is_filled(values.get(m))]
    return names[0] if names else ""


def make_context(run: RunConfig, family: Family, device: torch.device, cache_dir: Path) -> RunContext:
    """The family's view of the run: its ``data:`` and ``model:`` blocks parsed by its own schemas."""
    fam = type(family)
    return RunContext(
        task=run.task,
        variant=run.variant,
        use=run.use,
        dataset=run.dataset,
        data=fam.datasets[run.dataset].params.model_validate(run.data),
        model=fam.ModelParams.model_validate(run.model),
        seed=run.seed,
        device=device,
        cache_dir=cache_dir,
        train_batch_size=run.train.batch_size,
        eval_batch_size=run.train.eval_batch_size,
        fit=fit,
    )


def build_experiment(family: Family, ctx: RunContext) -> Experiment:
    """The run's experiment, composed the same way for every family: check the config, load the data,
    seed, build the model on the device, wrap them. The model's initialisation depends on the seed alone,
    not on what data loading, a cache or budget matching drew from the RNG before it."""
    family.check_config(ctx.use, ctx.data, ctx.model)
    check_devices(family, ctx)
    data = family.load_data(ctx)
    torch.manual_seed(ctx.seed)
    model = family.build_model(ctx, data).to(ctx.device)
    return family.experiment_class(ctx, model, data)


def check_devices(family: Family, ctx: RunContext) -> None:
    """Refuse a run whose mixers cannot run on its device (a CUDA-only plugin kernel on a CPU run)."""
    for name in type(family).variants[ctx.use].mixers(ctx.model):
        devices = mixer_spec(name).devices
        if ctx.device.type not in devices:
            raise RuntimeError(f"mixer {name!r} runs on {', '.join(devices)} only; this run is on {ctx.device.type}")


def solve_budget(run: RunConfig, family: Family, ctx: RunContext) -> tuple[RunContext, dict[str, Any]]:
    """Solve this variant's width so its params/FLOPs match the reference variant's (MatchConfig)."""
    from harness.measure.budget import count_params, match_budget
    from harness.measure.flops import count_fwd_flops

    match, ref = run.match, run.match_reference
    if match.by == "none" or ref is None:
        return ctx, {}
    field = match.field or type(family).width_field

    def count(c: RunContext) -> float:
        model = family.build_model(c)
        if match.by == "params":
            return float(count_params(model))
        return float(count_fwd_flops(model, family.example_inputs(c, run.measure.batch_size)))

    ref_ctx = replace(ctx, use=ref.use, device=torch.device("cpu"))
    ref_ctx = ref_ctx.with_model(**type(family).ModelParams.model_validate(ref.model).model_dump())
    target = count(ref_ctx)
    start = int(getattr(ctx.model, field))
    result = match_budget(
        lambda v: ctx.with_model(**{field: v}),
        count,
        target,
        lo=max(1, start // 8),
        hi=start * 8,
        multiple_of=family.width_step(ctx.use, ctx.model),
        tolerance=match.tolerance,
    )
    ctx = ctx.with_model(**{field: result.value})
    return ctx, {
        "budget_by": match.by,
        "budget_reference": match.reference,
        "budget_field": field,
        "budget_value": result.value,
        "budget_target": result.target,
        "budget_achieved": result.achieved,
        "budget_mismatch": result.mismatch,
    }


def spec_columns(run: RunConfig, run_id: str) -> dict[str, Any]:
    """The columns the config alone decides; a run process that dies leaves a failure row built from the
    same (``harness.execute.launcher``), so reports still know its kind (is_ssm, causal) and sweep point.
    ``is_ssm`` and ``mixers`` come from what the variant contains (a hybrid: its pattern), ``plugins`` names
    the plugin modules whose code the run executes (empty for the harness's own)."""
    family_cls = FAMILIES.get(run.family)
    model = family_cls.ModelParams.model_validate(run.model)
    return {
        "suite": run.suite,
        "task": run.task,
        "family": family_cls.name,
        "dataset": run.dataset,
        "variant": run.variant,
        "mixer": run.use,
        "mixers": "+".join(dict.fromkeys(family_cls.variants[run.use].mixers(model))),
        "is_ssm": family_cls.is_ssm(run.use, model),
        "plugins": ",".join(family_cls.plugin_sources(run.use, run.dataset, model)),
        "ablation": run.ablation,
        "causal": bool(family_cls.causal),
        "seed": run.seed,
        "sweep": json.dumps(run.sweep, sort_keys=True),
        "config_hash": run_id,
        "harness_version": __version__,
        "results_version": results_version(family_cls.results_version),
        "distributed": distributed.label(run.distributed),
        **{f"sweep.{key}": value for key, value in run.sweep.items()},
    }


def execute_run(run: RunConfig, run_id: str, cache_dir: Path) -> dict[str, Any]:
    """Build, train, evaluate and measure one run. Never raises for run failures: returns a row."""
    from harness.measure.env import environment

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    load_plugins(run.plugins)  # in this process too (a fresh worker, a Ray worker, a torchrun rank); a failure
    # leaves no row here: the launcher records the run as error with this log's tail
    device = torch.device(run.device)
    family_cls = FAMILIES.get(run.family)
    row: dict[str, Any] = {
        **spec_columns(run, run_id),
        "status": "ok",
        "error": "",
        "started_at": started.isoformat(timespec="seconds"),
        **environment(device),
    }
    if run.measure.cpu_threads is not None:
        torch.set_num_threads(run.measure.cpu_threads)
    row["cpu_threads"] = torch.get_num_threads()
    try:
        with sdpa_kernels(run.measure.sdpa_kernels):
            seed_everything(run.seed)
            family = family_cls()
            ctx = make_context(run, family, device, cache_dir)
            family.check_config(ctx.use, ctx.data, ctx.model)  # before budget matching builds trial models
            ctx, budget = solve_budget(run, family, ctx)
            row.update(budget)
            row.update(_train_and_measure(family, ctx, run, device))
    except BaseException as exc:  # noqa: BLE001 - every failure is a result row; Ctrl-C still propagates
        if isinstance(exc, KeyboardInterrupt):
            raise
        row["status"] = classify_failure(exc)
        # a HarnessError already says what is wrong and what to do (bad data found mid-run): no type name
        row["error"] = (str(exc) if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}")[:2000]
        traceback.print_exc()
    row["duration_s"] = round(time.perf_counter() - t0, 3)
    return row


def _train_and_measure(family: Family, ctx: RunContext, run: RunConfig, device: torch.device) -> dict[str, Any]:
    from harness.measure import Measurer, measure_model, precision

    train_cfg, measure_cfg = run.train, run.measure
    if measure_cfg.latency_seeds is not None and run.seed not in measure_cfg.latency_seeds:
        measure_cfg = measure_cfg.model_copy(update={"latency": False})
    exp = build_experiment(family, ctx)
    out: dict[str, Any] = dict(exp.row_extras())
    if "l_over_6d" not in out and out.get("seq_len") and out.get("d_model"):  # MambaOut's ratio, every family
        out["l_over_6d"] = out["seq_len"] / (6 * out["d_model"])
    result = train(exp, train_cfg, device, on_step=_log_step(train_cfg.steps))
    out.update(train_steps=result.steps, train_time_s=round(result.train_time_s, 3), final_loss=result.final_loss,
               train_precision=precision.resolve(train_cfg.precision, device))
    out.update(result.tracked)
    exp.model.eval()
    with torch.no_grad():
        metrics = distributed.all_reduce_mean(exp.evaluate(), device)  # identical on every rank
    unknown = set(metrics) - set(type(family).metrics)
    if unknown:
        raise RuntimeError(f"family {family.name!r} returned undeclared metrics {sorted(unknown)}")
    out.update({k: v for k, v in metrics.items() if k in run.metrics})
    out["primary_metric"] = primary_metric(type(family), out)
    out["backend"] = backends_of(exp.model)
    if not distributed.is_main():
        return out  # DDP: only rank 0 measures (single device, unwrapped model) and writes the row
    inputs = tuple(t.to(device) for t in family.example_inputs(ctx, measure_cfg.batch_size, exp.data))
    sample = exp.train_batch(0)  # the global batch, unsharded: the train-step costs of one optimizer step
    out.update(measure_batch=measure_cfg.batch_size, train_step_batch=train_cfg.batch_size)
    out.update(measure_model(exp.model, inputs, lambda: exp.loss(sample), measure_cfg, device))
    out.update(exp.extra_measurements(Measurer(measure_cfg, device)))
    out["backend"] = backends_of(exp.model) or out["backend"]
    if distributed.active():
        out["latency_protocol"] = f"{out.get('latency_protocol') or ''}; single-device: rank 0 of {distributed.label(run.distributed)}, unwrapped model".lstrip("; ")
    return out


def _log_step(total: int):
    every = max(1, total // 10)

    def log(step: int, loss: float) -> None:
        if step % every == 0 or step == total - 1:
            print(f"step {step + 1}/{total} loss {loss:.4f}", flush=True)

    return log
