"""The ``harness`` command line (typer): run, validate, list, show, report, claims, compare, bench.

Bad input (a suite that does not validate, a missing folder) prints ``FILE:LINE: message`` and exits
with code 2, with no traceback and nothing written.
"""

from __future__ import annotations

import math
import os
import shutil
from enum import Enum
from pathlib import Path
from typing import Iterator, Optional, get_args

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from harness.errors import HarnessError
from harness.execute import LAUNCHERS
from harness.execute.launcher import PLUGIN_TIMEOUT_S

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Does this task need a state-space model? Paired Mamba / attention / Gated-CNN runs, honest measurement, verdicts.")
# Tables are wide: never narrower than 160 columns, even when stdout is a file or a pipe.
console = Console(width=max(160, shutil.get_terminal_size((160, 24)).columns))
err_console = Console(stderr=True)


#: ``--until-decided``'s design unless given: up to 10 seeds per grid point, 2 more per look
DEFAULT_MAX_SEEDS, DEFAULT_SEED_BATCH = 10, 2


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


ExecutorChoice = Enum("ExecutorChoice", {name: name for name in LAUNCHERS.names()}, type=str)


class FailOnRun(str, Enum):
    oom = "oom"
    diverged = "diverged"


class ListWhat(str, Enum):
    families = "families"
    variants = "variants"
    datasets = "datasets"
    mixers = "mixers"
    suites = "suites"


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)  # paths hold [brackets]
    raise typer.Exit(code=2)


def _resolve_device(choice: DeviceChoice) -> str:
    import torch

    if choice is DeviceChoice.auto:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice is DeviceChoice.cuda and not torch.cuda.is_available():
        fail("--device cuda was asked for but CUDA is not available on this machine (use --device cpu or auto)")
    return choice.value


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"--seeds must be comma-separated integers, got {text!r}")
    if not seeds:
        fail("--seeds is empty")
    from harness.config.schema import check_seeds

    try:
        return check_seeds(seeds)
    except ValueError as exc:
        fail(f"--seeds: {exc}")


def _load(suite_path: Path):
    from harness.config.load import load_suite

    try:
        return load_suite(suite_path)
    except HarnessError as exc:
        fail(str(exc))


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


@app.command()
def run(
    suite: Path = typer.Argument(..., help="suite YAML file, or harness:NAME.yaml for a shipped one"),
    out: Optional[Path] = typer.Option(None, "--out", help="results folder (default: results/<suite name>)"),
    device: DeviceChoice = typer.Option(DeviceChoice.auto, help="where runs train and are measured"),
    seeds: Optional[str] = typer.Option(None, help="comma-separated seeds, overriding the suite's"),
    only: Optional[str] = typer.Option(None, help="comma-separated glob patterns over task, variant or task/variant"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and write nothing"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="skip runs already stored (default) or rerun them"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="rerun stored runs whose status is error or oom"),
    accept_stale: bool = typer.Option(False, "--accept-stale", help="keep stored runs made by an older results version of the code instead of rerunning them (their rows say so)"),
    executor: ExecutorChoice = typer.Option("local", help="where runs execute (one subprocess per run)"),
    timeout: Optional[float] = typer.Option(None, help="seconds after which a run is stopped and recorded as error"),
    plugin_timeout: float = typer.Option(PLUGIN_TIMEOUT_S, "--plugin-timeout", min=0, help="without --timeout: seconds after which a run that executes plugin code is stopped (0: never)"),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="local: runs side by side on the device; latency is still timed with the device to itself"),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster to join (auto or HOST:PORT); default: start a local Ray instance"),
    gpus_per_run: Optional[float] = typer.Option(None, "--gpus-per-run", min=0, help="ray: GPUs per run process (default 1 with --device cuda, else 0)"),
    cpus_per_run: Optional[float] = typer.Option(None, "--cpus-per-run", min=0, help="ray: CPUs per run process (default measure.cpu_threads or 1)"),
    memory_per_run: Optional[float] = typer.Option(None, "--memory-per-run", min=0, help="ray: memory (GiB) per run process"),
    max_retries: int = typer.Option(2, "--max-retries", min=0, help="ray: resubmissions of a run whose worker or node died"),
    fail_on: list[FailOnRun] = typer.Option([], "--fail-on", help="also exit 1 when a run ended oom or diverged (repeatable); runs that ended error always do"),
    until_decided: bool = typer.Option(False, "--until-decided", help="after the planned seeds, add seeds in looks to the variants of every undecided verdict cell and claim, until decided or --max-seeds"),
    max_seeds: Optional[int] = typer.Option(None, "--max-seeds", help=f"--until-decided: seeds per grid point at most (default {DEFAULT_MAX_SEEDS})"),
    seed_batch: Optional[int] = typer.Option(None, "--seed-batch", help=f"--until-decided: seeds added per look (default {DEFAULT_SEED_BATCH}; the last look is cut to reach --max-seeds)"),
    answer: bool = typer.Option(True, "--answer/--no-answer", help="end by printing the verdict and claims of each task run (as harness report / harness claims read the folder); never changes the exit code"),
) -> None:
    """Plan and execute a suite: task x variant x seed x sweep point, one row per run; then the verdict and
    claims of each task it ran.

    Exit code 0 when every run of the suite (run now or resumed) ended ok (or oom / diverged: results,
    unless --fail-on names them), 1 when any ended error, 2 on bad input, 130 when interrupted."""
    from harness.execute import launcher_options
    from harness.plan.describe import describe_suite
    from harness.plan.planner import plan
    from harness.store.results_format import SUITE_JSON
    from harness.store.store import ResultStore
    from harness.store.summary import failure_lines, print_summary

    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        fail(f"--timeout must be a positive number of seconds, got {timeout}")
    design = _sequential_design(until_decided, max_seeds, seed_batch, resume)
    loaded = _load(suite)
    specs = plan(loaded, seeds=_parse_seeds(seeds), only=only, device=_resolve_device(device))
    if not specs:
        fail(f"--only {only!r} matches no run of suite {loaded.name!r}" if only else f"suite {loaded.name!r} plans no runs")
    given = dict(jobs=jobs, address=address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run,
                 memory_per_run=memory_per_run, max_retries=max_retries)
    launcher = LAUNCHERS.get(executor.value)
    try:
        options = launcher_options(executor.value, given)
        launcher.check(specs, **options)  # what it cannot run is refused before anything is written
    except HarnessError as exc:
        fail(str(exc))
    if dry_run:
        for spec in specs:
            console.print(f"{spec.run_id}  {spec.label}", highlight=False)
        console.print(f"{len(specs)} runs planned (dry run: nothing written)"
                      + (f"; then seeds added until decided, up to {design.max_seeds} per grid point" if design else ""))
        return
    root = out or Path("results") / loaded.name
    _check_results_out(root, loaded.name)
    created = next((p for p in reversed((root, *root.parents)) if not p.exists()), None)  # the top folder this run makes
    if design is not None:
        from harness.report.sequential import write_design

        try:
            write_design(root, design)  # before any seed is added; another design than the recorded one is refused
        except HarnessError as exc:
            fail(str(exc))
    store = ResultStore(root).create()
    store.write_meta(SUITE_JSON, describe_suite(loaded).to_json())
    try:
        summary = launcher(store, cache_dir(), timeout=timeout, plugin_timeout=plugin_timeout or None, console=err_console,
                           **options).execute(
            specs, resume=resume, retry=frozenset({"error", "oom"}) if retry_failed else frozenset(), accept_stale=accept_stale)
    except HarnessError as exc:  # e.g. no Ray cluster to join, or one that cannot place a multi-node run: refused before any run
        if created is not None and not store.finished():
            shutil.rmtree(created)  # nothing partial left behind
        fail(str(exc))
    table = store.table()
    ids = {s.run_id for s in specs}
    print_summary(console, table[table["config_hash"].isin(ids)] if not table.empty else table)
    console.print(
        f"{len(summary.ran)} ran, {len(summary.skipped)} resumed from {store.root}/ "
        f"(results.parquet, results.csv)",
        highlight=False,
    )
    if summary.stale:
        console.print(f"{len(summary.stale)} of the runs were stored by an older results version of the code and were redone "
                      "(the old rows are kept under runs/superseded/; --accept-stale keeps them instead)", highlight=False)
    if summary.accepted_stale:
        console.print(f"[yellow]{len(summary.accepted_stale)} resumed runs were stored by an older results version of the code "
                      "and were kept (--accept-stale); their rows say accepted_stale, and reports do not pool them with current rows", highlight=False)
    if summary.interrupted:
        raise typer.Exit(code=130)
    if design is not None:
        from harness.until_decided import until_decided as run_looks

        planned_seeds = sorted({s.run.seed for s in specs})
        try:
            code = run_looks(loaded, store, launcher(store, cache_dir(), timeout=timeout, console=err_console, **options),
                             design, planned_seeds=planned_seeds, only=only, device=specs[0].run.device,
                             console=err_console, out=console, retry=frozenset({"error", "oom"}) if retry_failed else frozenset(),
                             accept_stale=accept_stale)
        except HarnessError as exc:
            fail(str(exc))
        if code:
            raise typer.Exit(code=code)
    if answer:
        from harness.report.cli import print_run_answer

        try:
            print_run_answer(store.root, {s.run.task for s in specs}, console)
        except KeyboardInterrupt:  # every run is stored already; Ctrl-C here is an interruption, as during the runs
            raise typer.Exit(code=130) from None
    failing = ("error", *(f.value for f in fail_on))
    lines = failure_lines(table[table["config_hash"].isin(ids)] if not table.empty else table, failing, set(summary.skipped))
    for line in lines:
        err_console.print(f"[bold red]failed:[/bold red] {escape(line)}", highlight=False, soft_wrap=True)
    if lines:
        raise typer.Exit(code=1)


def _sequential_design(until_decided: bool, max_seeds: int | None, seed_batch: int | None, resume: bool):
    """The ``--until-decided`` design, or None; its options alone, or with ``--no-resume``, are refused."""
    if not until_decided:
        if max_seeds is not None or seed_batch is not None:
            fail("--max-seeds and --seed-batch apply with --until-decided only")
        return None
    if not resume:
        fail("--until-decided continues from what is stored; --no-resume would rerun the looks already taken "
             "(use a new --out to start over)")
    from harness.report.sequential import SequentialDesign

    try:
        return SequentialDesign(DEFAULT_MAX_SEEDS if max_seeds is None else max_seeds,
                                DEFAULT_SEED_BATCH if seed_batch is None else seed_batch)
    except HarnessError as exc:
        fail(f"--max-seeds / --seed-batch: {exc}")


@app.command()
def validate(
    suite: Path = typer.Argument(..., help="suite YAML file, or harness:NAME.yaml for a shipped one"),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1, help="seconds each plugin mixer's tiny forward may take before it counts as hung (default 60)"),
) -> None:
    """Check a suite without running it: schema, includes, families, variants, datasets, sweeps, and a tiny
    forward of each plugin mixer its runs contain."""
    from harness.plan.planner import plan

    loaded = _load(suite)
    specs = plan(loaded)
    _check_plugin_mixers(loaded, timeout)
    console.print(f"{suite}: OK — {len(loaded.tasks)} tasks, {len(specs)} runs", highlight=False)


def _check_plugin_mixers(loaded, timeout: float | None) -> None:
    """A tiny forward of each plugin mixer (``harness.run.preflight``): a failure is the variant's FILE:LINE."""
    from harness.plugins import describe
    from harness.modules.registry import MIXERS
    from harness.run.preflight import TIMEOUT_S, check_plugin_mixers

    checks = check_plugin_mixers(loaded, timeout or TIMEOUT_S)
    for c in checks:
        if c.status != "failed":
            console.print(f"plugin mixer {c.mixer} ({describe(MIXERS.source(c.mixer))}): {c.status}"
                          + (f" ({c.message})" if c.message else ""), highlight=False)
    failed = [c for c in checks if c.status == "failed"]
    if failed:
        fail("\n".join(f"{c.where[0]}:{c.where[1] or 1}: variant {c.variant!r} of task {c.task!r}: plugin mixer {c.mixer!r} "
                       f"({describe(MIXERS.source(c.mixer))}) failed a tiny forward (x of shape (2, 16, 32)): {c.message}"
                       for c in failed))


@app.command("list")
def list_(
    what: ListWhat = typer.Argument(ListWhat.families),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="datasets: every data: key, its type, default and meaning"),
    plugin: list[str] = typer.Option([], "--plugin", help="also import this plugin module (as a suite's plugins: does); repeatable"),
) -> None:
    """List registered families, variants, datasets, mixers (installed plugins included, with the package
    each came from), or the suites (in ./suites, and shipped: harness:NAME.yaml)."""
    from harness.families import FAMILIES
    from harness.modules.registry import MIXERS, mixer_spec
    from harness.plugins import describe, load_plugins
    from harness.registry import BUILTIN

    try:
        load_plugins(plugin)
    except HarnessError as exc:
        fail(str(exc))

    def origin(source: str) -> str:
        return "" if source == BUILTIN else escape(f" (plugin: {describe(source)})")

    if what is ListWhat.mixers:
        for name in MIXERS.names():
            s = mixer_spec(name)
            aliases = f" (aliases: {', '.join(MIXERS.aliases(name))})" if MIXERS.aliases(name) else ""
            console.print(f"[bold]{name}[/bold]{aliases}  ssm={s.is_ssm} causal={s.causal} decode={s.decode} "
                          f"flops={'closed form' if s.flops else 'counted'} devices={','.join(s.devices)}"
                          f"{origin(MIXERS.source(name))}  {escape(s.description)}", highlight=False)
    elif what is ListWhat.suites:
        from harness.config.load import SHIPPED_PREFIX, SHIPPED_SUITES

        local = Path("suites")
        if local.is_dir() and local.resolve() != SHIPPED_SUITES.resolve():  # a checkout's suites/ is the shipped one
            for path in sorted(local.glob("*.yaml")):
                console.print(str(path))
        for path in sorted(SHIPPED_SUITES.glob("*.yaml")):  # runnable from any folder
            console.print(f"{SHIPPED_PREFIX}{path.name}", highlight=False)
    else:
        for name in FAMILIES.names():
            try:
                fam = FAMILIES.get(name)
            except ImportError as exc:
                console.print(f"{name}: [red]not importable[/red] ({exc})")
                continue
            if what is ListWhat.families:
                console.print(f"[bold]{name}[/bold]  {fam.description}")
            elif what is ListWhat.variants:
                console.print(f"[bold]{name}[/bold]: " + ", ".join(f"{v}{origin(fam.variants[v].source)}" for v in fam.variants),
                              highlight=False)
            else:
                for ds, spec in fam.datasets.items():
                    console.print(f"[bold]{name}[/bold]/{ds}: {escape(spec.description)}{origin(spec.source)}", highlight=False,
                                  soft_wrap=True)
                    if verbose:
                        for key, kind, default, meaning in data_keys(spec.params):
                            console.print(f"    {key}: {escape(kind)} = {escape(default)}  {escape(meaning)}", highlight=False, soft_wrap=True)


def data_keys(params: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """``(key, type, default, description)`` of every ``data:`` key, nested sections as dotted keys."""
    for name, info in params.model_fields.items():
        sub = info.annotation if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel) else None
        if sub is not None:
            yield from data_keys(sub, f"{prefix}{name}.")
            continue
        kind = getattr(info.annotation, "__name__", None) if isinstance(info.annotation, type) else None
        kind = kind or str(info.annotation).replace("typing.", "")
        default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
        yield f"{prefix}{name}", kind, default, info.description or ""


def _check_results_out(root: Path, suite_name: str) -> None:
    """Refuse, before anything is written, a folder that cannot be written or holds another suite's
    results (its rows would mix with these and its suite.json be overwritten); the same suite resumes."""
    from harness.store.results_format import SuiteInfo
    from harness.store.store import check_writable_dir

    try:
        check_writable_dir(root)
        stored = SuiteInfo.read(root).name
    except HarnessError as exc:
        fail(str(exc))
    if stored and stored != suite_name:
        fail(f"{root} holds suite {stored!r} results, this is suite {suite_name!r}; choose another --out")


def _results_dir(path: Path) -> Path:
    if not (path / "results.parquet").exists():
        fail(f"{path}: no results.parquet here (run a suite first: harness run SUITE --out {path})")
    return path


@app.command()
def show(results: Path = typer.Argument(..., help="a results folder (results/<suite>)"), runs: bool = typer.Option(False, "--runs", help="one line per run instead of per task x variant")) -> None:
    """Print a results table in the terminal."""
    from harness.report.load import drop_superseded, keep_one_version
    from harness.store.results_format import read_table
    from harness.store.summary import print_runs, print_summary

    try:
        df, superseded = drop_superseded(read_table(_results_dir(results)))
        df, version_notes = keep_one_version(df)
    except HarnessError as exc:
        fail(str(exc))
    (print_runs if runs else print_summary)(console, df)
    if superseded:
        console.print(f"[yellow]{superseded} older rows left out: a later config of the same run replaced them")
    for note in version_notes:
        console.print(f"[yellow]results version: {escape(note)}")


@app.command()
def report(
    results: Path = typer.Argument(..., help="a results folder"),
    format: str = typer.Option("html", "--format", help="html or md"),
    baseline: Optional[Path] = typer.Option(None, help="another results folder to compare against"),
    out: Optional[Path] = typer.Option(None, help="output file (default: inside the results folder)"),
) -> None:
    """Write the comparison report (statistics, verdicts, plots)."""
    from harness.report import cli_report

    if format not in ("html", "md"):
        fail(f"--format must be html or md, got {format!r}")
    raise typer.Exit(code=cli_report(_results_dir(results), fmt=format, baseline=baseline, out=out, console=console))


class FailOn(str, Enum):
    contradicted = "contradicted"
    undecided = "undecided"


@app.command()
def claims(
    results: Path = typer.Argument(..., help="a results folder"),
    fail_on: Optional[FailOn] = typer.Option(None, "--fail-on", help="exit 1 when a claim is contradicted, or (undecided) not reproduced"),
) -> None:
    """Check the suite's claims (expect:): reproduced, contradicted or undecided; writes claims.csv beside the results."""
    from harness.report import cli_claims

    raise typer.Exit(code=cli_claims(_results_dir(results), fail_on=fail_on.value if fail_on else None, console=console))


def _suite_dirs(path: Path) -> dict[str, Path]:
    """Suite name -> results folder, for a results folder or a folder of them (e.g. baselines/h100)."""
    from harness.store.results_format import SuiteInfo

    folders = [path] if (path / "results.parquet").exists() else sorted(p.parent for p in path.glob("*/results.parquet"))
    if not folders:
        fail(f"{path}: no results.parquet here or in its subfolders (run a suite first: harness run SUITE --out {path})")
    try:
        return {SuiteInfo.read(f).name or f.name: f for f in folders}
    except HarnessError as exc:
        fail(str(exc))


@app.command()
def compare(
    old: Path = typer.Argument(..., help="baseline: a results folder, or a folder of them (e.g. baselines/h100)"),
    new: Path = typer.Argument(..., help="new: a results folder, or a folder of them"),
    fail_on_regression: bool = typer.Option(False, "--fail-on-regression", help="exit 1 when a regression is found"),
) -> None:
    """Flag runs that got slower or worse beyond noise; suites are paired by name when a side holds several."""
    from harness.report import cli_compare

    olds, news = _suite_dirs(old), _suite_dirs(new)
    if len(olds) == 1 and len(news) == 1:
        pairs = [(next(iter(olds.values())), next(iter(news.values())))]
    else:
        pairs = [(olds[name], news[name]) for name in sorted(olds.keys() & news.keys())]
        if not pairs:
            fail(f"no suite in both: {old} has {', '.join(sorted(olds))}; {new} has {', '.join(sorted(news))}")
    codes = []
    for a, b in pairs:
        if len(pairs) > 1:
            console.rule(f"{a} -> {b}")
        codes.append(cli_compare(a, b, fail_on_regression=fail_on_regression, console=console))
    raise typer.Exit(code=max(codes))


@app.command()
def bench(
    mixers: str = typer.Option("mamba,mamba2,attention,gated_cnn", help="comma-separated mixer names"),
    lengths: str = typer.Option("256,1024,4096", help="comma-separated sequence lengths"),
    d_model: int = typer.Option(256, min=1, help="model width (the same for every mixer)"),
    batch_size: int = typer.Option(1, min=1),
    device: DeviceChoice = typer.Option(DeviceChoice.auto),
    dtype: str = typer.Option("auto", help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16"),
    out: Path = typer.Option(Path("results/bench"), help="folder for bench.parquet / bench.csv"),
    causal: bool = typer.Option(True, help="causal attention / gated CNN"),
) -> None:
    """Measure whole mixers across sequence lengths (latency, memory, FLOPs) with the suite protocol."""
    from harness.config.sections import MeasureConfig
    from harness.benchmarks.bench import bench_mixers
    from harness.modules.registry import MIXERS
    from harness.plugins import load_entry_points
    from harness.store.store import atomic_write_text, check_writable_dir

    try:
        load_entry_points()  # installed plugins' mixers can be benched too
    except HarnessError as exc:
        fail(str(exc))
    names = [m.strip() for m in mixers.split(",") if m.strip()]
    if not names:
        fail(f"--mixers is empty; known: {', '.join(MIXERS.names())}")
    for name in names:
        if name not in MIXERS:
            fail(f"--mixers: unknown mixer {name!r}; known: {', '.join(MIXERS.names())}")
    try:
        lens = [int(x) for x in lengths.split(",") if x.strip()]
    except ValueError:
        fail(f"--lengths must be comma-separated integers, got {lengths!r}")
    if not lens or min(lens) < 1:
        fail(f"--lengths must be comma-separated positive integers, got {lengths!r}")
    dtypes = get_args(MeasureConfig.model_fields["dtype"].annotation)
    if dtype not in dtypes:
        fail(f"--dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    try:
        check_writable_dir(out)
    except HarnessError as exc:
        fail(str(exc))
    import torch

    dev = torch.device(_resolve_device(device))
    df = bench_mixers(names, lens, d_model=d_model, batch_size=batch_size, device=dev, dtype=dtype, cfg=MeasureConfig(), mixer_kwargs={"causal": causal})
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / "bench.parquet", index=False)
    atomic_write_text(out / "bench.csv", df.to_csv(index=False))
    shown = ["mixer", "seq_len", "status", "params", "flops_fwd", "latency_ms_p50", "train_step_ms_p50", "peak_mem_mb_infer", "peak_mem_mb_train", "backend"]
    console.print(df[[c for c in shown if c in df.columns]].to_string(index=False), highlight=False)
    console.print(f"full table (protocol, environment): {out / 'bench.parquet'}", highlight=False)
