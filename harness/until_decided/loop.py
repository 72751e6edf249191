"""The loop of ``harness run --until-decided``: look, add seeds where they can decide, run them, look again.

Every look is analysed exactly as ``harness report`` analyses the folder (the same verdicts, claims and
p-values, adjusted for the design in ``sequential.json``), so what the loop stops on is what the report
says. The loop never reads anything but the results folder and the suite: the same folder and suite give
the same sequence, however often it is interrupted (see the package docstring).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape

from harness.config.load import Suite
from harness.execute.launcher import Launcher
from harness.plan.planner import RunSpec, plan
from harness.report.claims import ClaimResult, claim_open_items, evaluate_claims
from harness.report.load import ResultsSuite
from harness.report.load import load_results, normalize
from harness.report.paired import size_label
from harness.report.sequential import SequentialDesign, write_design
from harness.report.verdict import Evidence, OpenItem, TaskVerdict, gather_evidence, open_items, task_verdicts
from harness.store.store import ResultStore
from harness.until_decided.looks import Look, LookRecord, recorded_specs
from harness.until_decided.seeds import TRIED_COLUMNS, Key, Step, plan_look

INTERRUPTED = 130


@dataclass
class Analysis:
    """One look at the folder: what the report would say, and what is still open."""

    rows: pd.DataFrame
    suite: ResultsSuite
    evidence: Evidence
    verdicts: list[TaskVerdict]
    claims: list[ClaimResult]
    items: list[OpenItem]


def analyse(store: ResultStore, design: SequentialDesign) -> Analysis:
    df, suite = load_results(store.root)
    ev = gather_evidence(df, suite, design)
    verdicts = task_verdicts(df, suite, evidence=ev, design=design)
    claims = evaluate_claims(df, suite, design)
    return Analysis(df, suite, ev, verdicts, claims, open_items(verdicts) + claim_open_items(claims))


def report_keys(specs: list[RunSpec], suite: ResultsSuite) -> list[Key]:
    """(task, size point, variant label) of each spec, as the report will name its row (a studied factor's
    value is part of the label, e.g. ``ssm[s_A=0.1]``)."""
    if not specs:
        return []
    rows = pd.DataFrame([{"task": s.run.task, "variant": s.run.variant, "ablation": s.run.ablation, "seed": s.run.seed,
                          "sweep": json.dumps(s.run.sweep, sort_keys=True)} for s in specs])
    n = normalize(rows, suite)
    return list(zip(n["task"], n["size_point"], n["variant"]))


def until_decided(suite: Suite, store: ResultStore, launcher: Launcher, design: SequentialDesign, *,
                  planned_seeds: list[int], only: str | None, device: str, console: Console, out: Console,
                  **execute: Any) -> int:
    """Run looks until nothing seeds can decide is open (or ``max_seeds``); the exit code (130: interrupted).

    ``execute``: the options of ``Launcher.execute`` (retry, accept_stale); stored runs always resume."""
    write_design(store.root, design)  # before any added seed; refuses a design other than the recorded one
    record = LookRecord.read(store.root)
    for look in record.looks:  # a look recorded before an interruption is completed, never re-decided
        seeds = sorted({r.seed for r in look.runs})
        specs = recorded_specs(look, {s.run_id: s for s in plan(suite, seeds=seeds, device=device)})
        if launcher.execute(specs, resume=True, **execute).interrupted:
            return INTERRUPTED
    while True:
        now = analyse(store, design)
        servable = set(report_keys(plan(suite, seeds=planned_seeds[:1], only=only, device=device), now.suite))
        tried = now.rows[TRIED_COLUMNS] if len(now.rows) else pd.DataFrame(columns=TRIED_COLUMNS)
        targets, steps = plan_look(tried, now.items, design, planned_seeds, servable)
        number = len(record.looks) + 1
        _progress(console, number, steps)
        if not targets:
            break
        candidates = plan(suite, seeds=sorted(set().union(*targets.values())), only=only, device=device)
        stored = store.finished()
        specs = [replace(s, look=number) for s, key in zip(candidates, report_keys(candidates, now.suite))
                 if s.run.seed in targets.get(key, ()) and s.run_id not in stored]
        if not specs:  # the runs are stored but the report does not count them (another results version)
            console.print(f"[yellow]look {number}: the runs it would add are stored already but not analysed "
                          "(rows of another results version?); stopping", highlight=False)
            break
        record.append(Look.of(number, specs, [s.item.describe() for s in steps if s.seeds]), store.root)
        if launcher.execute(specs, resume=True, **execute).interrupted:
            return INTERRUPTED
    print_closing(out, now, record, design)
    return 0


def _progress(console: Console, number: int, steps: list[Step]) -> None:
    """Which cells and claims are open and why, and what look ``number`` gives each."""
    if not steps:
        console.print(f"look {number}: nothing open: every verdict and claim is decided", highlight=False)
        return
    adding = sum(bool(s.seeds) for s in steps)
    console.print(f"look {number}: {len(steps)} open, {adding} getting seeds", highlight=False)
    for s in steps:
        action = f"-> seeds {', '.join(map(str, s.seeds))}" if s.seeds else f"-> no seeds: {s.why_not}"
        console.print(f"  {escape(s.item.describe())} {action}", highlight=False, soft_wrap=True)  # one line per item in logs


def print_closing(out: Console, now: Analysis, record: LookRecord, design: SequentialDesign) -> None:
    """What was decided, the seeds each comparison used, and what stays open (with what would decide it)."""
    runs = sum(len(k.runs) for k in record.looks)
    out.rule("until decided")
    out.print(f"{len(record.looks)} looks added {runs} runs (--max-seeds {design.max_seeds} --seed-batch "
              f"{design.seed_batch}; p-values adjusted for every look the design allows)", highlight=False)
    for v in now.verdicts:
        rec = f" (recommended: {v.recommended})" if v.recommended else ""
        out.print(f"  {escape(v.task)}: [bold]{v.verdict}[/bold]{escape(rec)}", highlight=False)
    comps = now.evidence.comparisons
    if len(comps):
        out.print("seeds used per comparison:", highlight=False)
        for r in comps.itertuples():
            where = size_label(r.size_point)
            out.print(f"  {escape(r.task)}{' at ' + where if where else ''}: {escape(r.variant_a)} vs "
                      f"{escape(r.variant_b)}: {int(r.n)} seeds in {int(r.looks)} look(s): {r.decision}", highlight=False)
    for c in now.claims:
        out.print(f"  claim {escape(c.id)}: {c.outcome} (n={c.check.n})", highlight=False)
    if now.items:
        out.print("still open:", highlight=False)
        for item in now.items:
            out.print(f"  {escape(item.describe())}", highlight=False)
    else:
        out.print("nothing left open.", highlight=False)
