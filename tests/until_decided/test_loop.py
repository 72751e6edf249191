"""The loop of ``--until-decided`` on a suite whose runs are synthetic rows (a launcher that writes planted
outcomes in-process, so many looks cost seconds): the seeds it adds are paired and at every grid point,
rows record their look and keep their ids, and a run killed anywhere resumes to the very same sequence."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from rich.console import Console

from harness.config.load import load_suite
from harness.execute.launcher import ExecutionSummary, Launcher, Recorder
from harness.plan.describe import describe_suite
from harness.plan.planner import RunSpec, plan
from harness.report.sequential import SequentialDesign
from harness.run.runner import spec_columns
from harness.store.results_format import LOOKS_JSON, SUITE_JSON
from harness.store.store import ResultStore
from harness.until_decided import until_decided

SUITE = """suite: synth
seeds: [0, 1, 2]
variants: [mamba, attention, gated_cnn]
tasks:
  - name: copy
    family: sequence
    dataset: selective_copy
    data: {seq_len: 16, num_tokens: 4, vocab: 8, n_eval: 16}
    model: {d_model: 16, n_layers: 1, d_state: 4}
    sweep: {train.lr: [0.001, 0.003]}
    verdict: {thresholds: {accuracy: 0.02}}
    expect:
      - id: attention-learns
        claim: attention is far ahead of the gated CNN
        source: synthetic
        compare: {better: attention, worse: gated_cnn, margin: 0.6}
"""
#: planted mean accuracy: mamba ahead of attention by a little more than the threshold (about 17 seeds would
#: decide it, so it stays open up to --max-seeds), the gated CNN at chance (decided after a look or two)
MEAN = {"mamba": 0.84, "attention": 0.78, "gated_cnn": 0.125}


class Killed(BaseException):
    """A kill -9 of ``harness run``: nothing after it runs."""


class Synthetic(Launcher):
    """Writes each run's row with its planted accuracy, in-process; dies after ``budget`` runs if given."""

    options: ClassVar[dict[str, Any]] = {}
    budget: ClassVar[int | None] = None

    def launch(self, todo: list[RunSpec], summary: ExecutionSummary) -> None:
        with Recorder(self.store, summary, self.console, total=len(todo)) as recorder:
            for spec in todo:
                if Synthetic.budget is not None:
                    if Synthetic.budget == 0:
                        raise Killed
                    Synthetic.budget -= 1
                r = spec.run
                shared = np.random.default_rng([r.seed]).normal(0, 0.05)  # a seed's luck, shared by every variant
                own = np.random.default_rng([r.seed, int(r.train.lr * 1e4), len(r.variant)]).normal(0, 0.03)
                acc = MEAN[r.variant] + (0.01 if r.train.lr > 0.002 else 0.0) + (shared + own) / (10 if r.variant == "gated_cnn" else 1)
                recorder.record(spec, {**spec_columns(r, spec.run_id), "status": "ok", "error": "", "accuracy": acc,
                                       "primary_metric": "accuracy", "baseline": 0.125, "baseline_kind": "chance",
                                       "train_steps": 10, "started_at": "2025-01-01T00:00:00"})


def run(folder: Path, budget: int | None = None) -> int:
    """``harness run synth.yaml --until-decided --max-seeds 8 --seed-batch 2``, in-process."""
    suite = load_suite(folder / "synth.yaml")
    store = ResultStore(folder / "results").create()
    store.write_meta(SUITE_JSON, describe_suite(suite).to_json())
    quiet = Console(file=io.StringIO(), width=200)
    launcher = Synthetic(store, folder / "cache", console=quiet)
    Synthetic.budget = budget
    try:
        planned = plan(suite)
        launcher.execute(planned)
        return until_decided(suite, store, launcher, SequentialDesign(8, 2), planned_seeds=[0, 1, 2], only=None,
                             device="cpu", console=quiet, out=quiet)
    finally:
        Synthetic.budget = None


def sequence(folder: Path) -> list[tuple]:
    rows = ResultStore(folder / "results").rows()
    return sorted((r["variant"], r["seed"], r["sweep"], r["look"], r["config_hash"]) for r in rows)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reference")
    (folder / "synth.yaml").write_text(SUITE)
    assert run(folder) == 0
    return folder


def test_seeds_are_added_paired_at_every_grid_point_with_their_look_and_unchanged_ids(reference: Path):
    rows = ResultStore(reference / "results").rows()
    looks = json.loads((reference / "results" / LOOKS_JSON).read_text())["looks"]
    assert len(looks) >= 2 and max(r["look"] for r in rows) == len(looks)
    assert {r["look"] for r in rows if r["seed"] in (0, 1, 2)} == {0}  # the planned seeds are look 0
    seeds = {}
    for r in rows:
        seeds.setdefault(r["variant"], {}).setdefault(r["sweep"], set()).add(r["seed"])
    for variant, points in seeds.items():
        assert len(points) == 2 and len(set(map(frozenset, points.values()))) == 1, variant  # every grid point alike
        assert len(next(iter(points.values()))) <= 8
    assert seeds["mamba"] == seeds["attention"]  # the comparison on the threshold: the same new seeds on both sides
    assert len(seeds["mamba"]['{"train.lr": 0.001}']) == 8  # it stays undecided up to --max-seeds
    assert len(seeds["gated_cnn"]['{"train.lr": 0.001}']) == 7  # decided at 7: the last look leaves it out
    suite = load_suite(reference / "synth.yaml")
    for r in rows:  # the look is a row column, not part of the run id
        ids = {s.run.variant + json.dumps(s.run.sweep, sort_keys=True): s.run_id for s in plan(suite, seeds=[r["seed"]])}
        assert ids[r["variant"] + r["sweep"]] == r["config_hash"]
    first = {(r["run_id"]) for r in looks[0]["runs"]}
    assert {r["config_hash"] for r in rows if r["look"] == 1} == first
    assert any("seeds for" in why for why in looks[0]["open"])


@pytest.mark.parametrize("budget", [0, 5, 18, 23, 35, 42, 44])
def test_a_kill_anywhere_resumes_to_the_same_sequence(tmp_path: Path, reference: Path, budget: int):
    """18 planned runs, then looks of 12, 12 and 4 runs: killed before the planned runs end, right after a look
    is recorded, and half-way through later looks, a rerun continues to exactly the uninterrupted sequence."""
    (tmp_path / "synth.yaml").write_text(SUITE)
    with pytest.raises(Killed):
        run(tmp_path, budget)
    assert run(tmp_path) == 0
    assert sequence(tmp_path) == sequence(reference)
    assert (tmp_path / "results" / LOOKS_JSON).read_text() == (reference / "results" / LOOKS_JSON).read_text()


def test_a_changed_design_is_refused(tmp_path: Path, reference: Path):
    from harness.errors import HarnessError

    suite = load_suite(reference / "synth.yaml")
    store = ResultStore(reference / "results")
    with pytest.raises(HarnessError, match="records --max-seeds 8 --seed-batch 2"):
        until_decided(suite, store, Synthetic(store, tmp_path), SequentialDesign(10, 2), planned_seeds=[0, 1, 2],
                      only=None, device="cpu", console=Console(file=io.StringIO()), out=Console(file=io.StringIO()))
