"""The durable record of ``--until-decided``'s looks: ``RESULTS_DIR/looks.json``.

Each look is written, whole, before any of its runs starts (temp file + rename): a run killed at any moment
finds either no record of the look (it is decided again, from the same complete data, to the same runs) or
its full list of runs (the missing ones are run, with the look they were planned at). Runs are named by id
with their seed, so resuming re-plans exactly those seeds and checks that the suite still plans those ids.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.plan.planner import RunSpec
from harness.store.results_format import LOOKS_JSON
from harness.store.store import atomic_write_text

VERSION = 1


@dataclass(frozen=True)
class LookRun:
    run_id: str
    task: str
    variant: str
    seed: int
    sweep: dict[str, Any]


@dataclass(frozen=True)
class Look:
    """Look ``look`` (1, 2, ...): the runs it adds and why (each open item's ``describe()``)."""

    look: int
    runs: tuple[LookRun, ...]
    open: tuple[str, ...] = ()

    @classmethod
    def of(cls, look: int, specs: list[RunSpec], open_items: list[str]) -> "Look":
        runs = tuple(LookRun(s.run_id, s.run.task, s.run.variant, s.run.seed, dict(s.run.sweep)) for s in specs)
        return cls(look, runs, tuple(open_items))


@dataclass
class LookRecord:
    looks: list[Look] = field(default_factory=list)

    @classmethod
    def read(cls, results_dir: str | Path) -> "LookRecord":
        path = Path(results_dir) / LOOKS_JSON
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            looks = [Look(int(k["look"]), tuple(LookRun(str(r["run_id"]), str(r["task"]), str(r["variant"]),
                                                         int(r["seed"]), dict(r["sweep"])) for r in k["runs"]),
                          tuple(str(o) for o in k.get("open", ()))) for k in data["looks"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HarnessError(f"{path}: corrupt record of --until-decided's looks ({exc}); it is written before each "
                               "look's runs start, so a damaged one cannot be rebuilt: continue into a new results "
                               "folder") from None
        if [k.look for k in looks] != list(range(1, len(looks) + 1)):
            raise HarnessError(f"{path}: looks {[k.look for k in looks]} are not 1, 2, ...; continue into a new results folder")
        return cls(looks)

    def write(self, results_dir: str | Path) -> None:
        payload = {"version": VERSION, "looks": [asdict(k) for k in self.looks]}
        atomic_write_text(Path(results_dir) / LOOKS_JSON, json.dumps(payload, indent=1, sort_keys=True) + "\n")

    def append(self, look: Look, results_dir: str | Path) -> None:
        """Record ``look`` durably (before its runs start)."""
        if look.look != len(self.looks) + 1:
            raise ValueError(f"look {look.look} follows look {len(self.looks)}")
        self.looks.append(look)
        self.write(results_dir)

    def seeds(self) -> set[int]:
        return {r.seed for k in self.looks for r in k.runs}


def recorded_specs(look: Look, planned: dict[str, RunSpec]) -> list[RunSpec]:
    """The specs of a recorded look (``planned``: run id -> spec, planned at the look's seeds), each with
    its look; an id the suite no longer plans is an error (the suite changed since the look was recorded)."""
    missing = [r for r in look.runs if r.run_id not in planned]
    if missing:
        r = missing[0]
        raise HarnessError(f"look {look.look} recorded run {r.run_id} ({r.task}/{r.variant}/seed{r.seed}), which this "
                           f"suite no longer plans ({len(missing)} such runs): the suite, --device or --only changed "
                           "since; rerun the command that started the looks, or continue into a new results folder")
    return [replace(planned[r.run_id], look=look.look) for r in look.runs]
