"""Which seeds a look adds: a pure function of the stored runs and the open items.

For an open item (a task, a size point, the variant labels of its open comparisons) with ``n`` seeds
shared by all its variants at every grid point (any status: a failed run spent its seed), the look brings
that shared set to ``min(max_seeds, n + seed_batch)`` seeds. The new shared seeds are first the seeds
some of its variants already ran there (pairing what exists costs fewer runs), in increasing order, then
fresh ones above every seed the task or the suite's plan has used; every variant of the item gets each of
them at every grid point it lacks. Two items of one cell that take fresh seeds take the same ones, so
every comparison between their variants stays paired too. The budget counts seeds per grid point, not
rows: a swept variant gets each seed at each of its grid points, so the best-of-grid choice stays fair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from harness.report.sequential import SequentialDesign
from harness.report.verdict import OpenItem

#: (task, size point, variant label): one variant of one cell, as the report names it
Key = tuple[str, str, str]
TRIED_COLUMNS = ["task", "size_point", "variant", "hp_point", "seed"]


@dataclass(frozen=True)
class Step:
    """What one open item gets at this look: ``seeds`` (new shared seeds; empty when none) and why not."""

    item: OpenItem
    seeds: tuple[int, ...] = ()
    why_not: str = ""


def _seed_sets(rows: pd.DataFrame) -> tuple[set[int], set[int]]:
    """(seeds every grid point of these rows ran, seeds any of them ran)."""
    per_point = [set(map(int, s)) for _, s in rows.groupby("hp_point")["seed"]]
    if not per_point:
        return set(), set()
    return set.intersection(*per_point), set.union(*per_point)


def plan_look(tried: pd.DataFrame, items: Iterable[OpenItem], design: SequentialDesign, planned_seeds: Iterable[int],
              servable: set[Key]) -> tuple[dict[Key, set[int]], list[Step]]:
    """``(targets, steps)``: the seeds each variant of a cell must have at every grid point after the look
    (only keys that gain one), and what each item got. ``tried``: the stored runs (columns
    :data:`TRIED_COLUMNS`, the report's labels, any status); ``servable``: the keys this run plans (others,
    e.g. left out by ``--only``, get no seeds)."""
    by_key = {k: _seed_sets(g) for k, g in tried.groupby(["task", "size_point", "variant"], sort=False)}
    planned = {int(s) for s in planned_seeds}
    fresh_from = {t: max({*map(int, g["seed"]), *planned}) + 1 for t, g in tried.groupby("task")}
    targets: dict[Key, set[int]] = {}
    steps = []
    for item in items:
        if not item.variants:
            steps.append(Step(item, why_not="more seeds will not decide it"))
            continue
        keys = [(item.task, item.size_point, v) for v in item.variants]
        if not set(keys) <= servable:
            left = ", ".join(k[2] for k in keys if k not in servable)
            steps.append(Step(item, why_not=f"not in this run's plan ({left}; see --only)"))
            continue
        complete = [by_key.get(k, (set(), set()))[0] for k in keys]
        shared = set.intersection(*complete)
        goal = min(design.max_seeds, len(shared) + design.seed_batch)
        if goal <= len(shared):
            steps.append(Step(item, why_not=f"--max-seeds {design.max_seeds} reached"))
            continue
        start = fresh_from.get(item.task, max(planned, default=-1) + 1)
        ran = sorted(set.union(*(by_key.get(k, (set(), set()))[1] for k in keys)) - shared)
        new = (ran + list(range(start, start + goal)))[: goal - len(shared)]
        for key, have in zip(keys, complete):
            if set(new) - have:
                targets.setdefault(key, set()).update(new)
        steps.append(Step(item, tuple(new)))
    return targets, steps
