"""Check a suite's claims (``expect:``) against its resolved tasks, at FILE:LINE, and export them for reports.

:func:`check_claims` runs once the suite's tasks are resolved (``harness.config.load``): ids unique in the
suite; every variant a claim names is one of its task's labels (an ablation's too, and its base); every
metric is one the task's rows carry (a family metric, a spine cost column, or a column the family
declares in ``Family.columns``); ``over`` and ``where:`` / ``at:`` keys are sweep keys and every value is
a point of that sweep. The structure (one check per claim, field types) is the schema's
(:mod:`harness.config.claims`), checked by pydantic with the rest of the suite.

:func:`claims_meta` is what ``suite.json`` stores per task: each claim and the direction and unit of every
metric it names, so the report reads claims without importing families.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any, Iterator

from harness.config.claims import Check, same_value
from harness.config.yaml_lines import line_of
from harness.errors import ConfigError
from harness.families.base import MetricSpec
from harness.store.results_format import MEASURED_COLUMNS
from harness.registry import suggest

if TYPE_CHECKING:
    from harness.config.load import ResolvedTask

#: the spine's numeric cost columns (every row has them): lower is better except throughput.
SPINE_COLUMNS: dict[str, MetricSpec] = {
    **{c: MetricSpec(higher_is_better=c == "throughput") for c in MEASURED_COLUMNS
       if c not in ("latency_protocol", "measure_dtype", "measure_status", "backend", "mem_approx", "flops_skipped")},
    "train_time_s": MetricSpec(higher_is_better=False, unit="s"),
    "final_loss": MetricSpec(higher_is_better=False),
}


def metric_spec(task: "ResolvedTask", name: str) -> MetricSpec | None:
    """How the column ``name`` of the task's rows reads, or None when its rows do not carry it."""
    fam = task.family
    if name in fam.metrics:
        return fam.metrics[name]
    if name in SPINE_COLUMNS:
        return SPINE_COLUMNS[name]
    return next((spec for pattern, spec in fam.columns.items() if fnmatch.fnmatchcase(name, pattern)), None)


def _labels(task: "ResolvedTask") -> list[str]:
    """The variant labels a claim may name: the task's (ablations included) and an ablation's base."""
    names = [v.name for v in task.variants]
    base = task.entry.ablate.base if task.entry.ablate is not None else None
    return names + ([base] if base is not None and base not in names else [])


def _checks(check: Check, path: tuple[Any, ...]) -> Iterator[tuple[Check, tuple[Any, ...]]]:
    """The check and, for ``any_of``, each alternative (recursively), with its path in the YAML."""
    yield check, path
    for i, alt in enumerate(check.any_of or ()):
        yield from _checks(alt, (*path, "any_of", i))


def check_claims(tasks: "tuple[ResolvedTask, ...] | list[ResolvedTask]", raw_tasks: Any) -> None:
    """Raise ConfigError at the offending line for the first claim that names something its task lacks."""
    first: dict[str, tuple[str, int | None]] = {}
    for task, raw_task in zip(tasks, raw_tasks):
        for j, claim in enumerate(task.entry.expect):
            where = line_of(raw_task, ("expect", j, "id"))
            if claim.id in first:
                file, line = first[claim.id]
                raise ConfigError(*where, f"duplicate claim id {claim.id!r} (first at {file}:{line}): claim ids are "
                                          "unique in the suite")
            first[claim.id] = where
            for check, path in _checks(claim, ("expect", j)):
                _check(task, check, raw_task, path)


def _check(task: "ResolvedTask", check: Check, raw_task: Any, path: tuple[Any, ...]) -> None:
    name = task.entry.name
    kind = check.kind
    body = check.body

    def fail(field: tuple[Any, ...], message: str) -> None:
        raise ConfigError(*line_of(raw_task, (*path, *field)), f"{name}.expect: {message}")

    if kind == "verdict":
        ssm = {v.name for v in task.variants if task.is_ssm(v) and v.ablation in ("", "base")}
        other = {v.name for v in task.variants if not task.is_ssm(v) and v.ablation in ("", "base")}
        if not ssm or not other:
            fail(("verdict",), f"a verdict claim needs an SSM and a no-SSM variant in task {name!r} "
                               f"(it has {', '.join(sorted(ssm | other)) or 'none'}): its verdict is never decided")
        _check_where(task, check.at or {}, (), fail, ("at",))
        return
    if kind == "any_of":
        return  # each alternative is checked on its own (see _checks)
    labels = _labels(task)
    for field in ("better", "worse", "variant"):
        label = getattr(body, field, None)
        if label is not None and label not in labels:
            fail((kind, field), f"{kind}.{field}: unknown variant {label!r} in task {name!r}{suggest(label, labels)}; "
                                f"known: {', '.join(labels)}")
    metric = getattr(body, "metric", None)
    if metric is not None and metric_spec(task, metric) is None:
        known = [*task.family.metrics, *SPINE_COLUMNS, *task.family.columns]
        fail((kind, "metric"), f"{kind}.metric: unknown metric {metric!r} for family {task.family.name!r}"
                               f"{suggest(metric, known)}; known: {', '.join(known)}")
    over = getattr(body, "over", None)
    if over is not None:
        _check_over(task, body, kind, over, fail)
    _check_where(task, body.where, (over,) if over else (), fail, (kind, "where"))


def _check_over(task: "ResolvedTask", body: Any, kind: str, over: str, fail) -> None:
    sweep = task.sweep
    if over not in sweep:
        fail((kind, "over"), f"{kind}.over: {over!r} is not a sweep key of task {task.entry.name!r}"
                             f"{suggest(over, list(sweep))}; sweep keys: {', '.join(sweep) or 'none (add a sweep:)'}")
    values = sweep[over]
    if len(values) < 2:
        fail((kind, "over"), f"{kind}.over: {over!r} sweeps one value ({values[0]!r}): a slope needs at least two")
    if kind == "scaling" or getattr(body, "scale", "linear") == "log2":
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0]
        if bad:
            why = "a log-log exponent" if kind == "scaling" else "scale: log2 (slope per doubling)"
            fail((kind, "over"), f"{kind}.over: {over!r} has the value {bad[0]!r}; {why} needs positive numbers"
                                 + ("" if kind == "scaling" else "; use scale: linear"))


def _check_where(task: "ResolvedTask", where: dict[str, Any], banned: tuple[str, ...], fail,
                 field: tuple[Any, ...]) -> None:
    sweep, label = task.sweep, ".".join(map(str, field))
    for key, value in where.items():
        if key in banned:
            fail((*field, key), f"{label}: {key!r} is the swept key the check reads (over:); where: cannot fix it")
        if key not in sweep:
            fail((*field, key), f"{label}: {key!r} is not a sweep key of task {task.entry.name!r}"
                                f"{suggest(key, list(sweep))}; sweep keys: {', '.join(sweep) or 'none'}")
        if not any(same_value(value, v) for v in sweep[key]):
            fail((*field, key), f"{label}: no sweep point of task {task.entry.name!r} has {key} = {value!r} "
                                f"(its values: {', '.join(map(repr, sweep[key]))})")


def claims_meta(task: "ResolvedTask") -> list[dict[str, Any]]:
    """``suite.json``'s claims of one task: each claim, and how each metric it names reads."""
    out = []
    for claim in task.entry.expect:
        names = {getattr(c.body, "metric", None) for c, _ in _checks(claim, ())} - {None}
        specs = {n: metric_spec(task, n) for n in sorted(names)}
        out.append({"claim": claim.stored(),
                    "metrics": {n: {"higher_is_better": s.higher_is_better, "unit": s.unit}
                                for n, s in specs.items() if s is not None}})
    return out


__all__ = ["check_claims", "claims_meta", "metric_spec", "SPINE_COLUMNS"]
