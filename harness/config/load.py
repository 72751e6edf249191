"""Load a suite: parse YAML safely, resolve ``include:``, validate everything, report ``FILE:LINE: msg``.

Validation is complete before anything runs: every (task, variant, sweep point) configuration is built
and checked against its family's schemas here, so a typo never surfaces halfway through a suite.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ValidationError

from harness.config.claim_checks import check_claims
from harness.config.schema import SuiteFile, TaskEntry, VariantEntry
from harness.config.sections import MatchConfig, MeasureConfig, TrainConfig
from harness.config.yaml_lines import LineDict, LineList, line_of, load_yaml, merged
from harness.errors import ConfigError, DataError, HarnessError
from harness.families import FAMILIES, Family
from harness.plugins import PluginError, import_plugin, load_entry_points
from harness.registry import UnknownNameError, suggest

SECTION_MODELS: dict[str, type[BaseModel]] = {"train": TrainConfig, "measure": MeasureConfig, "match": MatchConfig}


@dataclass(frozen=True)
class ResolvedTask:
    """A task with everything checked: its family, variants (ablations expanded) and configs."""

    entry: TaskEntry
    family: type[Family]
    variants: tuple[VariantEntry, ...]
    train: dict[str, Any]
    measure: dict[str, Any]
    match: dict[str, Any]
    sweep: dict[str, list[Any]]
    metrics: tuple[str, ...]
    where: dict[str, tuple[str, int | None]] = field(default_factory=dict, compare=False)  # variant label -> FILE:LINE

    def is_ssm(self, variant: VariantEntry) -> bool:
        """Whether the variant, with its resolved ``model:`` block, contains an SSM (as its rows will say)."""
        model = self.family.ModelParams.model_validate(build_run_config(self, variant, {})["model"])
        return self.family.is_ssm(variant.uses, model)


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    seeds: tuple[int, ...]
    tasks: tuple[ResolvedTask, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    plugins: tuple[str, ...] = ()  # plugin modules (``plugins:``), imported again in every run's process


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


#: the suites and task files shipped with the package (package data; in a checkout, a link to the repository's
#: suites/), named from anywhere as ``harness:quick.yaml`` or ``include: harness:tasks/mqar.yaml``
SHIPPED_PREFIX = "harness:"
SHIPPED_SUITES = Path(__file__).resolve().parents[1] / "suites"


def shipped(path: str | Path) -> Path:
    """``harness:<file>`` names a shipped suite or task file; any other path is itself."""
    text = str(path)
    return SHIPPED_SUITES / text[len(SHIPPED_PREFIX):] if text.startswith(SHIPPED_PREFIX) else Path(path)


def _resolve_includes(node: Any, base_dir: Path, stack: tuple[Path, ...], where: tuple[str, int | None]) -> Any:
    """Replace each task entry ``{include: file, ...local}`` by the merged mapping (local keys win)."""
    if not isinstance(node, LineDict) or "include" not in node:
        return node
    inc = node["include"]
    if not isinstance(inc, str):
        raise ConfigError(node.file, node.key_lines.get("include"), "include: must be a file path string")
    target = (base_dir / shipped(inc)).resolve()  # an absolute path (a shipped file's) stays itself
    line = node.key_lines.get("include")
    if target in stack:
        chain = " -> ".join(_display(p) for p in (*stack, target))
        raise ConfigError(node.file, line, f"include cycle: {chain}")
    if not target.is_file():
        raise ConfigError(node.file, line, f"included file {inc!r} not found (looked for {_display(target)})")
    included = load_yaml(target, _display(target))
    if not isinstance(included, LineDict):
        raise ConfigError(_display(target), getattr(included, "line", 1), "an included task file must hold one mapping")
    included = _resolve_includes(included, target.parent, (*stack, target), where)
    local = LineDict({k: v for k, v in node.items() if k != "include"})
    local.line, local.file = node.line, node.file
    local.key_lines = {k: v for k, v in node.key_lines.items() if k != "include"}
    local.key_files = dict(node.key_files)
    return merged(included, local)


def _pydantic_errors(exc: ValidationError, root: Any, prefix: tuple[Any, ...], fallback: tuple[str, int | None]) -> ConfigError:
    """The first pydantic error as a ConfigError located in the YAML."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    clean = tuple(p for p in loc if not _is_union_tag(p))
    file, line = line_of(root, clean)
    if line is None:
        file, line = fallback
    dotted = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in (*prefix, *clean)).replace(".[", "[")
    msg = err["msg"].removeprefix("Value error, ")  # a validator's own message reads alone
    if "input" in err and err["type"] not in ("missing",):
        msg += f" (got {err['input']!r})"
    return ConfigError(file or fallback[0], line, f"{dotted}: {msg}" if dotted else msg)


def _is_union_tag(part: Any) -> bool:
    """Whether a pydantic ``loc`` part names a union branch ('str', 'list[int]', 'VariantEntry'), not a
    key: those are dropped for line lookup and printing. Field names are snake_case (``A_init`` too)."""
    if not isinstance(part, str):
        return False
    return part in {"str", "int", "float", "bool", "none"} or "[" in part or (part[:1].isupper() and "_" not in part)


def validate_section(model: type[BaseModel], data: Any, root: Any, prefix: tuple[Any, ...], fallback: tuple[str, int | None]) -> BaseModel:
    """Validate ``data`` with a pydantic model; unknown keys get a "did you mean" from its fields."""
    try:
        return model.model_validate(dict(data) if isinstance(data, dict) else data)
    except ValidationError as exc:
        raise _nested_unknown(exc, model, root, prefix, fallback) from None


def _nested_unknown(exc: ValidationError, model: type[BaseModel], root: Any, prefix: tuple[Any, ...], fallback: tuple[str, int | None]) -> ConfigError:
    err = exc.errors()[0]
    if err["type"] == "extra_forbidden":
        loc = tuple(err["loc"])
        fields = _fields_along(model, loc[:-1])
        file, line = line_of(root, loc)
        where = ".".join(str(p) for p in (*prefix, *loc[:-1]) if not isinstance(p, int)) or "top level"
        return ConfigError(
            file or fallback[0],
            line if line is not None else fallback[1],
            f"unknown key {loc[-1]!r} in {where}{suggest(str(loc[-1]), fields)}; allowed: {', '.join(fields)}",
        )
    return _pydantic_errors(exc, root, prefix, fallback)


def _fields_along(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) pydantic model at ``loc``, for "did you mean" suggestions."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        if part not in current.model_fields:
            continue
        ann = current.model_fields[part].annotation
        candidates = [ann, *typing.get_args(ann)]
        for sub in list(candidates):
            candidates.extend(typing.get_args(sub))
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), current)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    section, _, rest = key.partition(".")
    target = config.setdefault(section, {})
    parts = rest.split(".")
    for i, part in enumerate(parts[:-1]):
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            inner = ".".join([section, *parts[: i + 1]])
            raise ValueError(f"sweep key {key!r}: {inner} is a value ({target!r}), not a mapping with fields")
    target[parts[-1]] = value


def sweep_points(sweep: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The grid of a ``sweep:`` block in a stable order ([{}] when there is no sweep)."""
    keys = list(sweep)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sweep[k] for k in keys))] or [{}]


def _variants(raw: list[Any] | None, task: TaskEntry, where: tuple[str, int | None]) -> list[VariantEntry]:
    if raw is None:
        raise ConfigError(*where, f"task {task.name!r} has no variants: set variants: in the task or the suite")
    out = list(raw)
    if task.ablate is not None:
        base = next((v for v in out if v.name == task.ablate.base), None)
        if base is None:
            base = VariantEntry(name=task.ablate.base)
        ablated = [
            VariantEntry(name=a.name, use=base.uses, model={**base.model, **a.model}, ablation=a.name)
            for a in task.ablate.variants
        ]
        out = ([VariantEntry(name=base.name, use=base.use, model=base.model, ablation="base")] if task.ablate.include_base else []) + [
            v for v in out if v.name != base.name
        ] + ablated
    seen: set[str] = set()
    for v in out:
        if v.name in seen:
            raise ConfigError(*where, f"task {task.name!r}: variant label {v.name!r} appears twice")
        seen.add(v.name)
    return out


def build_run_config(
    task: ResolvedTask, variant: VariantEntry, point: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The unvalidated data/model/train/measure/match dicts for one (variant, sweep point)."""
    fam = task.family
    config = {
        "data": dict(task.entry.data),
        "model": {**fam().variant_defaults(variant.uses), **task.entry.model, **variant.model},
        "train": dict(task.train),
        "measure": dict(task.measure),
        "match": dict(task.match),
    }
    for key, value in point.items():
        set_dotted(config, key, value)
    return config


def _check_names(task: ResolvedTask, raw_task: Any, raw_variants: Any, match_line: tuple[str, int | None]) -> None:
    """Every name the task uses resolves in its family: dataset, variants, metrics, match fields."""
    fam = task.family
    entry = task.entry
    if entry.dataset not in fam.datasets:
        file, line = line_of(raw_task, ("dataset",))
        known = sorted(fam.datasets)
        raise ConfigError(file, line, f"unknown dataset {entry.dataset!r} for family {fam.name!r}{suggest(entry.dataset, known)}; known: {', '.join(known)}")
    for v in task.variants:
        if v.uses not in fam.variants:
            where = "ablate.base: " if v.ablation else ""  # the ablation's base is neither listed nor a family variant
            unfit = fam.variants.unfit(v.uses)  # a plugin mixer this family cannot place (not causal, no decoding)
            raise ConfigError(*task.where[v.name], f"{where}variant {v.uses!r} cannot be used in family {fam.name!r}: {unfit}"
                              if unfit else f"{where}unknown variant {v.uses!r} for family {fam.name!r}"
                              f"{suggest(v.uses, list(fam.variants))}; known: {', '.join(fam.variants)}")
    for name in task.metrics:
        if name not in fam.metrics:
            file, line = line_of(raw_task, ("metrics",))
            raise ConfigError(file, line, f"unknown metric {name!r} for family {fam.name!r}{suggest(name, list(fam.metrics))}; known: {', '.join(fam.metrics)}")
    for key in ("thresholds", "relative"):
        for name in getattr(entry.verdict, key):
            if name not in fam.metrics:
                file, line = line_of(raw_task, ("verdict", key, name))
                raise ConfigError(file, line, f"verdict.{key}: unknown metric {name!r}{suggest(name, list(fam.metrics))}; known: {', '.join(fam.metrics)}")
    match = validate_section(MatchConfig, task.match, raw_task.get("match"), (entry.name, "match"), match_line)
    assert isinstance(match, MatchConfig)
    if match.by != "none" and match.reference is None:
        raise ConfigError(*match_line, f"match.by {match.by!r} needs match.reference: the variant label whose {match.by} the others match")
    if match.reference is not None and match.reference not in {v.name for v in task.variants}:
        raise ConfigError(*match_line, f"match.reference {match.reference!r} is not one of the task's variants ({', '.join(v.name for v in task.variants)})")
    fields = list(fam.ModelParams.model_fields)
    if match.field is not None and match.field not in fields:
        raise ConfigError(*match_line, f"match.field {match.field!r} is not a model field of family {fam.name!r}{suggest(match.field, fields)}; known: {', '.join(fields)}")


def _missing_user_paths(params: BaseModel, loc: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """(field path, kind, value) of every ``user_path`` field whose file or folder does not exist."""
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        if isinstance(value, BaseModel):
            yield from _missing_user_paths(value, (*loc, name))
        kind = info.json_schema_extra.get("must_exist") if isinstance(info.json_schema_extra, dict) else None
        if not kind or value is None:
            continue
        paths = [((*loc, name), value)] if isinstance(value, str) else [((*loc, name, i), v) for i, v in enumerate(value)]
        for where, path in paths:  # one path, or each of a list of paths
            if not (Path(path).is_dir() if kind == "folder" else Path(path).is_file()):
                yield where, str(kind), path


def _check_data_source(fam: type[Family], entry: TaskEntry, data: BaseModel, root: Any, where: tuple[str, int | None],
                       checked: set[str]) -> None:
    """Open the data source of a ``data:`` block (``Family.check_data``) once per distinct block of the suite;
    its error is located at the block's ``path`` key (or the block)."""
    key = f"{fam.name}/{entry.dataset}/{data.model_dump_json()}"
    if key in checked:
        return
    try:
        fam().check_data(entry.dataset, data)
    except HarnessError as exc:
        field = exc.field if isinstance(exc, DataError) else ("path",)
        file, line = line_of(root, field) if root is not None else (None, None)
        raise ConfigError(file or where[0], line if line is not None else where[1], f"{entry.name}.data: {exc}") from None
    checked.add(key)


def _check_task(task: ResolvedTask, raw_task: Any, raw_variants: Any, sweep_line: tuple[str, int | None], match_line: tuple[str, int | None],
                checked_data: set[str]) -> None:
    """Build and validate every configuration the task will run."""
    fam = task.family
    entry = task.entry
    task_where = line_of(raw_task, ())
    _check_names(task, raw_task, raw_variants, match_line)
    swept = {key.split(".", 1)[1] for key in task.sweep if key.startswith("model.")}
    for i, v in enumerate(task.variants):
        clash = sorted(swept & set(v.model))
        if clash:  # the sweep is applied last: the variant's own value would be silently replaced
            node, path = (raw_task, ("ablate",)) if v.ablation else (raw_variants, (i,))
            raise ConfigError(*line_of(node, path), f"variant {v.name!r} sets model.{clash[0]}, which the sweep also sets: "
                              "the sweep value would replace it and the variant would repeat its base; drop one")
    data_schema = fam.datasets[entry.dataset].params
    # the configuration without sweep values first (errors point at the task's own lines), then every
    # sweep point (errors point at the sweep: line)
    points = [{}] + ([p for p in sweep_points(task.sweep)] if task.sweep else [])
    for point in points:
        for variant in task.variants:
            try:
                config = build_run_config(task, variant, point)
            except ValueError as exc:
                raise ConfigError(*sweep_line, f"{entry.name}.{exc}") from None
            if point:
                roots = dict.fromkeys(("data", "model", *SECTION_MODELS))
                where = {section: sweep_line for section in ("data", "model", *SECTION_MODELS)}
                model_prefix: tuple[Any, ...] = (entry.name, "model")
            else:
                model_root, model_prefix = raw_task.get("model"), (entry.name, "model")
                if variant.ablation and variant.ablation != "base":  # its own model: keys, under ablate.variants
                    model_root = _variant_model_node(raw_task["ablate"].get("variants"), variant.name) or model_root
                    model_prefix = (entry.name, "ablate", variant.name, "model")
                elif variant.model and isinstance(raw_variants, LineList):
                    model_root = _variant_model_node(raw_variants, variant.name) or model_root
                roots = {"data": raw_task.get("data"), "model": model_root, **{s: raw_task.get(s) for s in SECTION_MODELS}}
                where = {s: line_of(raw_task, (s,)) if s in raw_task else task_where for s in ("data", "model", *SECTION_MODELS)}
            data = validate_section(data_schema, config["data"], roots["data"], (entry.name, "data"), where["data"])
            for loc, kind, value in _missing_user_paths(data):
                file, line = line_of(roots["data"], loc) if roots["data"] is not None else where["data"]
                raise ConfigError(file or where["data"][0], line if line is not None else where["data"][1],
                                  f"{entry.name}.data.{'.'.join(map(str, loc))}: {kind} {value!r} not found (relative paths start at "
                                  f"the working directory, {Path.cwd()}); point it at your copy of the data")
            _check_data_source(fam, entry, data, roots["data"], where["data"], checked_data)
            model = validate_section(fam.ModelParams, config["model"], roots["model"], model_prefix, where["model"])
            try:
                fam().check_config(variant.uses, data, model)
            except ValueError as exc:
                raise ConfigError(*where["model"], f"{'.'.join(map(str, model_prefix))}: {exc}") from None
            sections = {section: validate_section(model, config[section], roots[section], (entry.name, section), where[section])
                        for section, model in SECTION_MODELS.items()}
            if entry.distributed is not None:
                ranks = entry.distributed.nproc_per_node * entry.distributed.nnodes
                batch = sections["train"].batch_size
                if batch % ranks:
                    file, line = line_of(raw_task, ("distributed",))
                    raise ConfigError(file, line, f"{entry.name}.distributed: train.batch_size {batch} must be divisible by nproc_per_node x nnodes = {ranks} (each rank trains on an equal shard of the global batch)")


def _variant_lines(variants: list[VariantEntry], raw_task: Any, raw_variants: Any) -> dict[str, tuple[str, int | None]]:
    """Where each variant label is declared: its entry in ``variants:``, or ``ablate.base`` for an ablation's."""
    listed = {item.get("name") if isinstance(item, LineDict) else item: i for i, item in enumerate(raw_variants or ())}
    out = {}
    for v in variants:
        if v.ablation:
            out[v.name] = line_of(raw_task, ("ablate", "base"))
        elif v.name in listed:
            out[v.name] = line_of(raw_variants, (listed[v.name],))
        else:
            out[v.name] = line_of(raw_task, ())
    return out


def load_plugins_of(suite: SuiteFile, raw: LineDict) -> tuple[str, ...]:
    """Import the installed plugins (entry points), then the suite's ``plugins:`` modules, each failure at
    its line: what they register is known before any variant, dataset or mixer name is checked."""
    load_entry_points()
    for i, module in enumerate(suite.plugins):
        try:
            import_plugin(module)
        except PluginError as exc:
            raise ConfigError(*line_of(raw, ("plugins", i)), f"plugins: {exc}") from None
    return tuple(suite.plugins)


def _variant_model_node(raw_variants: Any, name: str) -> Any:
    for item in raw_variants if isinstance(raw_variants, LineList) else ():
        if isinstance(item, LineDict) and item.get("name") == name:
            return item.get("model")
    return None


def load_suite(path: str | Path) -> Suite:
    """Parse, include, validate; raises ConfigError (``FILE:LINE: message``) on any problem. ``harness:NAME.yaml``
    names a shipped suite."""
    path = shipped(path)
    display = _display(path)
    raw = load_yaml(path, display)
    if not isinstance(raw, LineDict):
        raise ConfigError(display, getattr(raw, "line", 1), "a suite file must be a mapping with suite:, tasks:, ...")
    tasks_node = raw.get("tasks")
    if isinstance(tasks_node, LineList):
        resolved = LineList(_resolve_includes(t, path.parent, (path.resolve(),), (display, None)) for t in tasks_node)
        resolved.line, resolved.file, resolved.item_lines = tasks_node.line, tasks_node.file, tasks_node.item_lines
        raw["tasks"] = resolved
    suite = validate_section(SuiteFile, raw, raw, (), (display, 1))
    assert isinstance(suite, SuiteFile)
    plugins = load_plugins_of(suite, raw)
    for section, model in SECTION_MODELS.items():  # the suite's own defaults first: errors point at its lines
        if section in raw:
            validate_section(model, getattr(suite, section), raw[section], (section,), line_of(raw, (section,)))
    tasks: list[ResolvedTask] = []
    names: set[str] = set()
    checked_data: set[str] = set()  # data sources already opened (Family.check_data)
    for i, entry in enumerate(suite.tasks):
        raw_task = raw["tasks"][i]
        where = line_of(raw, ("tasks", i))
        if entry.name in names:
            raise ConfigError(*line_of(raw_task, ("name",)), f"duplicate task name {entry.name!r}")
        names.add(entry.name)
        try:
            family = FAMILIES.get(entry.family)
        except UnknownNameError as exc:
            raise ConfigError(*line_of(raw_task, ("family",)), str(exc)) from None
        except ImportError as exc:
            raise ConfigError(*line_of(raw_task, ("family",)), f"family {entry.family!r} cannot be imported: {exc}") from None
        raw_variants = raw_task.get("variants", raw.get("variants"))
        variants = _variants(entry.variants if entry.variants is not None else suite.variants, entry, where)
        resolved_task = ResolvedTask(
            entry=entry,
            family=family,
            variants=tuple(variants),
            train={**suite.train, **entry.train},
            measure={**suite.measure, **entry.measure},
            match={**suite.match, **entry.match},
            sweep={**suite.sweep, **entry.sweep},
            metrics=tuple(entry.metrics or family.task_metrics(entry.model)),
            where=_variant_lines(variants, raw_task, raw_variants),
        )
        timed = resolved_task.measure.get("latency_seeds")
        if timed is not None and not set(timed) & set(suite.seeds):
            node = raw_task if "measure" in raw_task else raw
            raise ConfigError(*line_of(node, ("measure",)), f"measure.latency_seeds {list(timed)} names none of the suite's seeds "
                              f"{list(suite.seeds)}: no run of task {entry.name!r} would be timed")
        for role, keys in (("factor", entry.factors), ("size", entry.sizes or [])):
            for key in keys:
                if key not in resolved_task.sweep:
                    raise ConfigError(*line_of(raw_task, (f"{role}s",)), f"{role} {key!r} is not a sweep key of task {entry.name!r} ({', '.join(resolved_task.sweep) or 'no sweep'})")
        for key in set(entry.factors) & set(entry.sizes or []):
            raise ConfigError(*line_of(raw_task, ("sizes",)), f"sweep key {key!r} is both a factor (studied) and a size (a scaling axis); list it once")
        sweep_node = raw_task if "sweep" in raw_task else raw
        match_node = raw_task if "match" in raw_task else raw
        _check_task(resolved_task, raw_task, raw_variants, line_of(sweep_node, ("sweep",)), line_of(match_node, ("match",)), checked_data)
        tasks.append(resolved_task)
    check_claims(tasks, raw["tasks"])  # expect: names resolved against every task (ids unique in the suite)
    return Suite(
        name=suite.suite,
        path=path,
        description=suite.description,
        seeds=tuple(suite.seeds),
        tasks=tuple(tasks),
        raw=suite.model_dump(),
        plugins=plugins,
    )
