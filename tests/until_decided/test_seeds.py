"""Which seeds a look adds: paired on both sides, at every grid point, the last batch cut to max_seeds,
seeds some variants already ran reused first, and the same fresh seeds for two items of one cell."""

from __future__ import annotations

import pandas as pd

from harness.report.sequential import SequentialDesign
from harness.report.verdict import OpenItem
from harness.until_decided.seeds import TRIED_COLUMNS, plan_look

CELL = "{}"


def tried(runs: dict[str, dict[str, list[int]]], task: str = "copy") -> pd.DataFrame:
    """variant -> grid point -> seeds run there."""
    rows = [(task, CELL, v, hp, s) for v, points in runs.items() for hp, seeds in points.items() for s in seeds]
    return pd.DataFrame(rows, columns=TRIED_COLUMNS)


def item(*variants: str, task: str = "copy") -> OpenItem:
    return OpenItem(task, CELL, tuple(sorted(variants)), "undecided", 7, 3)


ALL = {("copy", CELL, v) for v in ("mamba", "attention", "gated_cnn", "lti")}


def test_both_sides_get_the_same_new_seeds_at_every_grid_point():
    runs = {"mamba": {'{"lr": 1}': [0, 1, 2], '{"lr": 2}': [0, 1, 2]}, "attention": {'{"lr": 1}': [0, 1, 2], '{"lr": 2}': [0, 1, 2]},
            "gated_cnn": {'{"lr": 1}': [0, 1, 2], '{"lr": 2}': [0, 1, 2]}}
    targets, steps = plan_look(tried(runs), [item("mamba", "attention")], SequentialDesign(10, 2), [0, 1, 2], ALL)
    assert steps[0].seeds == (3, 4)
    assert targets == {("copy", CELL, "mamba"): {3, 4}, ("copy", CELL, "attention"): {3, 4}}  # not gated_cnn


def test_the_last_batch_is_cut_to_max_seeds_and_then_nothing_is_added():
    runs = {"mamba": {CELL: list(range(9))}, "attention": {CELL: list(range(9))}}
    targets, steps = plan_look(tried(runs), [item("mamba", "attention")], SequentialDesign(10, 3), [0, 1, 2], ALL)
    assert steps[0].seeds == (9,)
    runs = {"mamba": {CELL: list(range(10))}, "attention": {CELL: list(range(10))}}
    targets, steps = plan_look(tried(runs), [item("mamba", "attention")], SequentialDesign(10, 3), [0, 1, 2], ALL)
    assert targets == {} and steps[0].seeds == () and "--max-seeds 10 reached" in steps[0].why_not


def test_seeds_one_side_already_ran_are_paired_first_and_the_budget_counts_grid_points():
    """mamba ran seeds 3, 4 for another comparison; gated_cnn's comparison with it first gets those."""
    runs = {"mamba": {CELL: [0, 1, 2, 3, 4]}, "gated_cnn": {CELL: [0, 1, 2]}}
    targets, steps = plan_look(tried(runs), [item("mamba", "gated_cnn")], SequentialDesign(10, 2), [0, 1, 2], ALL)
    assert steps[0].seeds == (3, 4) and targets == {("copy", CELL, "gated_cnn"): {3, 4}}
    # a grid point that lacks a seed the others have: the seed is not complete, so it is filled there
    runs = {"mamba": {'{"lr": 1}': [0, 1, 2, 3], '{"lr": 2}': [0, 1, 2]}, "attention": {'{"lr": 1}': [0, 1, 2, 3], '{"lr": 2}': [0, 1, 2, 3]}}
    targets, steps = plan_look(tried(runs), [item("mamba", "attention")], SequentialDesign(10, 2), [0, 1, 2], ALL)
    assert steps[0].seeds == (3, 4)  # 3 = complete it at mamba's second grid point, 4 = fresh


def test_two_items_of_one_cell_take_the_same_fresh_seeds():
    runs = {v: {CELL: [0, 1, 2]} for v in ("mamba", "attention", "lti")}
    items = [item("mamba", "attention"), item("mamba", "lti")]
    targets, steps = plan_look(tried(runs), items, SequentialDesign(10, 2), [0, 1, 2], ALL)
    assert [s.seeds for s in steps] == [(3, 4), (3, 4)]
    assert targets[("copy", CELL, "mamba")] == targets[("copy", CELL, "lti")] == {3, 4}


def test_fresh_seeds_start_above_every_seed_the_task_or_the_plan_used():
    runs = {"mamba": {CELL: [0, 1, 2]}, "attention": {CELL: [0, 1, 2]}, "gated_cnn": {CELL: [0, 1, 2, 7]}}
    _, steps = plan_look(tried(runs), [item("mamba", "attention")], SequentialDesign(10, 2), [0, 1, 2, 12], ALL)
    assert steps[0].seeds == (13, 14)


def test_items_seeds_cannot_decide_or_this_run_does_not_plan_get_none():
    runs = {"mamba": {CELL: [0, 1, 2]}, "attention": {CELL: [0, 1, 2]}}
    stuck = OpenItem("copy", CELL, (), "the effect sits on the threshold: more seeds will not help", None, 3)
    targets, steps = plan_look(tried(runs), [stuck, item("mamba", "attention")], SequentialDesign(10, 2), [0, 1, 2],
                               {("copy", CELL, "mamba")})
    assert targets == {} and [s.seeds for s in steps] == [(), ()]
    assert "not in this run's plan (attention" in steps[1].why_not
