"""Whole CPU runs, the code at a git ref against the working tree: ``python -m harness.benchmarks.cpu_scan``.

    python -m harness.benchmarks.cpu_scan [--baseline REF] [--tasks copy64,digits32]
        [--variants mamba,mamba2,attention,gated_cnn] [--threads 1,2] [--repeats 3] [--steps N] [--out DIR]

Why whole runs: what issue #23 asks to shrink is the wall time of a suite's runs on a small CPU machine
(training, evaluation and the measurement protocol together), and the Mamba/attention ratio of it, so the
benchmark times exactly that: ``harness run`` of one task x variant at a time, as a user runs it, with
each side's code on PYTHONPATH (the baseline is ``git archive``d from ``--baseline`` into a temporary
folder). Workloads are the claims suite's slowest kind (see ``WORKLOADS``): selective copying at 64
tokens for 600 steps and digits at 32 px, for mamba, mamba2, attention and gated_cnn, at each
``--threads`` (the suite's ``measure.cpu_threads``). The machine may be shared: the sides run
interleaved, baseline first on odd repeats and the working tree first on even ones, so drift hits both
alike, and the 1-minute load average is sampled around every run. Wall time on a loaded machine mostly
measures the load, so each run's CPU time is taken too: the user + system time of the ``harness run``
process tree (Linux ``/proc``, polled every 0.2 s; a process's last 0.2 s may be missed), which includes
~10-15 s of interpreter and import start-up. Beside each run a probe process builds the same run's model
(the runner's own ``make_context`` / ``build``) and times, in its CPU time, the median of ``PROBE_STEPS``
training steps and of ``PROBE_CALLS`` forward calls at ``measure.batch_size`` under inference mode: the
mixer's cost without start-up and far less exposed to the load than the rows' wall-clock latency. Per
workload the summary gives the median [min, max] over repeats of the run's CPU seconds and wall seconds
(the row's ``duration_s``), the probe's step and forward CPU milliseconds, the rows' ``latency_ms_p50``,
the speed-ups of the medians, and each SSM variant's ratio to attention.

Writes ``runs.csv`` (every run, after each) and ``README.md`` (the summary, the command, the load) into
``--out``; ``--from-csv runs.csv`` renders the summary of runs already measured (e.g. a stopped benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from fnmatch import fnmatch
from io import BytesIO
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ("mamba", "mamba2", "attention", "gated_cnn")
SSM = ("mamba", "mamba2")
#: the claims suite's slow tasks, sized as issue #23 states them (600 steps of selective copying at 64
#: tokens; digits at 32 px with the vision quick task's backbone, 300 steps)
WORKLOADS = [
    {"name": "copy64", "family": "sequence", "dataset": "selective_copy",
     "data": {"seq_len": 64, "num_tokens": 4, "vocab": 8, "n_eval": 128},
     "model": {"d_model": 32, "n_layers": 2, "d_state": 8},
     "train": {"steps": 600, "batch_size": 32, "warmup_steps": 30}},
    {"name": "digits32", "family": "classification", "dataset": "digits", "data": {"resolution": 32},
     "model": {"depths": [1, 1, 1], "dims": [16, 16, 32], "head_dim": 16, "scan": "bidirectional", "window": 4},
     "train": {"steps": 300, "batch_size": 16, "warmup_steps": 10}},
]
MEASURE = {"batch_size": 8, "warmup_iters": 3, "warmup_s": 0.0, "min_iters": 10, "min_time_s": 0.2, "max_iters": 50}
ROW_COLUMNS = ("status", "duration_s", "train_time_s", "latency_ms_p50", "backend", "results_version")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROBE_STEPS, PROBE_CALLS = 20, 50
#: run with the side's tree on PYTHONPATH: suite file, task/variant, steps, calls -> one JSON line
PROBE = """
import json, statistics, sys, tempfile, time
from pathlib import Path
import torch
from harness.config.load import load_suite
from harness.families import FAMILIES
from harness.plan.planner import plan
from harness.run.runner import make_context, solve_budget
from harness.run.train import seed_everything

suite_file, only, steps, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
spec, cpu, cache = plan(load_suite(suite_file), only=only)[0], torch.device("cpu"), Path(tempfile.mkdtemp())
if hasattr(spec, "run"):  # typed run configs and build_experiment (the baseline may predate them)
    from harness.run.runner import build_experiment
    run = spec.run
    family = FAMILIES.get(run.family)()
    torch.set_num_threads(run.measure.cpu_threads)
    seed_everything(run.seed)
    ctx, _ = solve_budget(run, family, make_context(run, family, cpu, cache))
    exp = build_experiment(family, ctx)
    inputs = family.example_inputs(ctx, run.measure.batch_size, exp.data)
else:
    from harness.config.sections import MeasureConfig
    config = spec.config
    measure = MeasureConfig.model_validate(config["measure"])
    family = FAMILIES.get(config["family"])()
    torch.set_num_threads(measure.cpu_threads)
    seed_everything(config["seed"])
    ctx, _ = solve_budget(config, family, make_context(config, family, cpu, cache))
    exp = family.build(ctx)
    inputs = exp.example_inputs(measure.batch_size)
opt = torch.optim.AdamW(exp.model.parameters(), lr=1e-4)

def cpu_ms(fn, n):
    for i in range(3):
        fn(i)
    times = []
    for i in range(n):
        t = time.process_time()
        fn(i)
        times.append((time.process_time() - t) * 1e3)
    return statistics.median(times)

def step(i):
    loss = exp.loss(exp.train_batch(i))
    opt.zero_grad()
    loss.backward()
    opt.step()

step_ms = cpu_ms(step, steps)
exp.model.eval()
with torch.inference_mode():
    fwd_ms = cpu_ms(lambda i: exp.model(*inputs), calls)
print(json.dumps({"step_cpu_ms": step_ms, "fwd_cpu_ms": fwd_ms}))
"""


def suite(threads: int, steps: int | None = None) -> dict:
    """The benchmark's suite at ``threads``; ``steps`` replaces every workload's training steps (a smoke run)."""
    tasks = WORKLOADS if steps is None else [
        {**w, "train": {**w["train"], "steps": steps, "warmup_steps": min(w["train"]["warmup_steps"], steps // 10)}}
        for w in WORKLOADS]
    return {"suite": f"cpu_scan_t{threads}", "seeds": [0], "variants": list(VARIANTS),
            "train": {"steps": 600, "batch_size": 32, "eval_batch_size": 64, "lr": 3.0e-3, "warmup_steps": 30},
            "measure": {**MEASURE, "cpu_threads": threads}, "tasks": tasks}


def select_jobs(tasks: str, variants: str, only: str) -> list[str]:
    """``task/variant`` jobs: the comma-separated ``tasks`` x ``variants`` (empty: all), then the ``only`` globs.
    Raises ValueError naming an unknown task or variant."""
    names = [w["name"] for w in WORKLOADS]
    picked_tasks = [t for t in tasks.split(",") if t] or names
    picked_variants = [v for v in variants.split(",") if v] or list(VARIANTS)
    for kind, picked, known in (("task", picked_tasks, names), ("variant", picked_variants, VARIANTS)):
        if unknown := sorted(set(picked) - set(known)):
            raise ValueError(f"unknown {kind} {', '.join(unknown)}; choose from {', '.join(known)}")
    jobs = [f"{t}/{v}" for t in picked_tasks for v in picked_variants]
    if only:
        jobs = [j for j in jobs if any(fnmatch(j, p) for p in only.split(","))]
    return jobs


def export(ref: str, dest: Path) -> Path:
    """The tree of git ``ref`` of this repository, unpacked into ``dest``."""
    blob = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _tree_cpu(root: int, seen: dict[int, float]) -> None:
    """Record the user + system seconds of ``root`` and each of its live descendants into ``seen`` (by pid)."""
    procs = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # from field 3 (state): ppid, ..., utime, stime
        procs[int(pid)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, (ppid, _) in procs.items() if ppid in tree} - tree
        tree, grew = tree | new, bool(new)
    seen.update({pid: procs[pid][1] for pid in tree if pid in procs})


def probe(tree: Path, suite_file: Path, only: str) -> dict:
    """``PROBE`` of ``only`` with ``tree`` on PYTHONPATH -> step_cpu_ms, fwd_cpu_ms."""
    proc = subprocess.run([sys.executable, "-c", PROBE, str(suite_file), only, str(PROBE_STEPS), str(PROBE_CALLS)],
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=suite_file.parent, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"probe {only} in {tree} failed:\n{proc.stderr[-4000:]}")
    return {k: round(v, 3) for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def run_one(tree: Path, suite_file: Path, out: Path, only: str) -> dict:
    """One ``harness run`` of ``only`` with ``tree`` on PYTHONPATH -> its row's columns, CPU and wall time,
    load."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    load0, t0, cpu = os.getloadavg()[0], time.perf_counter(), {}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite_file), "--out", str(out),
                                 "--only", only, "--no-resume", "--device", "cpu"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True,
                                cwd=suite_file.parent)  # not the checkout: ``-m`` puts the cwd first on sys.path
        while proc.poll() is None:
            _tree_cpu(proc.pid, cpu)
            time.sleep(0.2)
        log.seek(0)
        output = log.read()
    wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    rows = [json.loads(p.read_text())["row"] for p in (out / "runs").glob("*.json")]
    if proc.returncode != 0 or len(rows) != 1:
        raise RuntimeError(f"harness run {only} in {tree} failed ({proc.returncode}):\n{output[-4000:]}")
    return {**{k: rows[0].get(k) for k in ROW_COLUMNS}, "cpu_s": round(sum(cpu.values()), 2),
            "wall_s": round(wall, 2), "load_before": load0, "load_after": load1}


def _cell(s: pd.Series, digits: int = 1) -> str:
    return f"{s.median():.{digits}f} [{s.min():.{digits}f}, {s.max():.{digits}f}]"


def summary(runs: pd.DataFrame) -> str:
    """Markdown: per threads x task x variant, both sides' medians [min, max] and the speed-ups; ratios."""
    cols = [("cpu_s", "run CPU s", 1), ("duration_s", "run wall s", 1), ("step_cpu_ms", "step CPU ms", 1),
            ("fwd_cpu_ms", "fwd CPU ms", 2), ("latency_ms_p50", "row fwd ms p50", 2)]
    head = "| threads | task | variant | " + " | ".join(
        f"{name} (baseline) | {name} (this tree) | speed-up" for _, name, _ in cols) + " |"
    lines = [head, "|" + "---|" * (3 + 3 * len(cols))]
    ratios = ["| threads | task | variant | " + " | ".join(
        f"{name} / attention (baseline) | {name} / attention (this tree)" for _, name, _ in cols) + " |",
        "|" + "---|" * (3 + 2 * len(cols))]
    for (threads, task), g in runs.groupby(["threads", "task"], sort=True):
        med = g.groupby(["variant", "side"])[[c for c, _, _ in cols]].median()
        for variant in [v for v in VARIANTS if v in set(g.variant)]:
            a, b = (g[(g.variant == variant) & (g.side == side)] for side in ("baseline", "this tree"))
            cells = [f"{_cell(a[c], k)} | {_cell(b[c], k)} | {a[c].median() / b[c].median():.2f}x" for c, _, k in cols]
            lines.append(f"| {threads} | {task} | {variant} | " + " | ".join(cells) + " |")
            if variant in SSM and "attention" in set(g.variant):
                r = {side: med.loc[(variant, side)] / med.loc[("attention", side)]
                     for side in ("baseline", "this tree")}
                ratios.append(f"| {threads} | {task} | {variant} | " + " | ".join(
                    f"{r['baseline'][c]:.2f} | {r['this tree'][c]:.2f}" for c, _, _ in cols) + " |")
    return "\n".join(lines + (["", *ratios] if len(ratios) > 2 else []))  # no ratios without attention


def readme(runs: pd.DataFrame, cmd: str) -> str:
    loads = pd.concat([runs.load_before, runs.load_after])
    baseline = ", ".join(sorted(set(runs.baseline_commit.astype(str))))
    steps = "" if "steps" not in runs else " Training steps per run: " + ", ".join(
        f"{task} {n}" for task, n in runs.groupby("task").steps.first().items()) + "."
    return (f"# CPU scan: whole runs, {baseline} against this tree\n\n`{cmd}`: {len(runs)} runs, "
            f"{runs.wall_s.sum() / 60:.0f} min of `harness run` on {os.cpu_count()} cores; 1-minute load average "
            f"around the runs: median {loads.median():.1f}, max {loads.max():.1f}. Cells: median [min, max] over "
            f"{runs.repeat.nunique()} repeats, the sides interleaved.{steps}\n\n{summary(runs)}\n")


EXAMPLES = """examples:
  # the whole benchmark (8 workloads x 2 threads x 3 repeats x 2 sides, 96 runs: over an hour on
  # 2 idle cores; 1 thread and 2 repeats took 22 min)
  python -m harness.benchmarks.cpu_scan --baseline main --out /tmp/cpu-scan
  # the Mamba variants and attention on selective copying only, 1 thread, 2 repeats
  python -m harness.benchmarks.cpu_scan --baseline dd429fc --tasks copy64 --variants mamba,mamba2,attention \\
      --threads 1 --repeats 2 --out /tmp/cpu-scan
  # a smoke run proving the comparison works (steps shortened: not the issue's workload)
  python -m harness.benchmarks.cpu_scan --tasks copy64 --variants mamba --threads 1 --repeats 1 --steps 20
  # re-render README.md from the runs.csv of a stopped benchmark
  python -m harness.benchmarks.cpu_scan --from-csv /tmp/cpu-scan/runs.csv --out /tmp/cpu-scan
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m harness.benchmarks.cpu_scan", description=__doc__,
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="main",
                    help="git ref (branch, tag, commit) of this repository whose code is compared with the working "
                         "tree (default: main); resolved to its commit, recorded in every row")
    ap.add_argument("--tasks", default="", help=f"comma-separated workloads (default: all of "
                                                f"{','.join(w['name'] for w in WORKLOADS)})")
    ap.add_argument("--variants", default="", help=f"comma-separated variants (default: all of {','.join(VARIANTS)})")
    ap.add_argument("--only", default="", help="comma-separated task/variant globs, applied after --tasks and "
                                               "--variants (e.g. 'copy64/mamba*,digits32/attention')")
    ap.add_argument("--threads", default="1,2", help="comma-separated measure.cpu_threads values (default: 1,2)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="repeats per workload and side, the sides' order alternating (default: 3)")
    ap.add_argument("--steps", type=int, help="replace every workload's training steps (a quick check that the "
                                              "comparison runs; the numbers are then not the issue's workload)")
    ap.add_argument("--out", type=Path, default=Path("results/bench-cpu-scan"),
                    help="folder for runs.csv and README.md (default: results/bench-cpu-scan)")
    ap.add_argument("--from-csv", type=Path, help="only render README.md from this runs.csv")
    args = ap.parse_args(argv)
    cmd = "python -m harness.benchmarks.cpu_scan " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.from_csv:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "README.md").write_text(text := readme(pd.read_csv(args.from_csv), cmd))
        print(text)
        return
    threads = [int(t) for t in args.threads.split(",") if t]
    try:
        jobs = select_jobs(args.tasks, args.variants, args.only)
    except ValueError as e:
        ap.error(str(e))
    if not jobs:
        ap.error("no task/variant left to run: check --tasks, --variants and --only")
    if args.steps is not None and args.steps < 1:
        ap.error("--steps must be at least 1")
    ref = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--short", f"{args.baseline}^{{commit}}"],
                         capture_output=True, text=True)
    if ref.returncode != 0:
        ap.error(f"--baseline {args.baseline!r} is not a commit of {REPO}: {ref.stderr.strip()}")
    commit = ref.stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    with tempfile.TemporaryDirectory(prefix="cpu_scan_") as tmp:
        tmp = Path(tmp)
        trees = {"baseline": export(commit, tmp / "baseline"), "this tree": REPO}
        for t in threads:
            (tmp / f"t{t}.yaml").write_text(yaml.safe_dump(suite(t, args.steps), sort_keys=False))
        for t in threads:
            for rep in range(args.repeats):
                order = ("baseline", "this tree") if rep % 2 == 0 else ("this tree", "baseline")
                for job in jobs:
                    for side in order:
                        out = tmp / "runs" / f"{side.replace(' ', '_')}-t{t}-{rep}-{job.replace('/', '-')}"
                        rec = run_one(trees[side], tmp / f"t{t}.yaml", out, job)
                        rec.update(probe(trees[side], tmp / f"t{t}.yaml", job))
                        task, variant = job.split("/")
                        records.append({"repeat": rep, "threads": t, "task": task, "variant": variant,
                                        "side": side, "baseline_commit": commit,
                                        "steps": args.steps or next(w["train"]["steps"] for w in WORKLOADS
                                                                   if w["name"] == task), **rec})
                        pd.DataFrame(records).to_csv(args.out / "runs.csv", index=False)  # kept if stopped
                        print(f"rep {rep} t={t} {job:20s} {side:9s} run {rec['cpu_s']:6.1f} CPU s "
                              f"{rec['duration_s']:6.1f} s  step {rec['step_cpu_ms']:7.2f} CPU ms  fwd "
                              f"{rec['fwd_cpu_ms']:6.2f} CPU ms  load {rec['load_before']:.1f}", flush=True)
    text = readme(pd.DataFrame(records), cmd)
    (args.out / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
