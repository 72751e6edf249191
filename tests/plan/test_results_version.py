"""Results versions: resume redoes exactly the runs whose family (or the spine) was bumped, keeps them
with --accept-stale (the rows say so), never loses the old row; reports never pool versions and say what
they left out; compare still pairs the runs and names the version change."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.config.load import load_suite
from harness.execute.launcher import pending
from harness.plan.planner import plan
from harness.store.store import ResultStore
from harness.versions import SPINE_RESULTS_VERSION as SPINE

SUITE = """suite: versions
seeds: [0, 1]
train: {steps: 1, batch_size: 8}
variants: [mamba, attention]
tasks:
  - {name: recall, family: sequence, dataset: mqar, data: {seq_len: 16, num_kv: 2, key_vocab: 8, value_vocab: 8}, model: {d_model: 16, n_layers: 1}}
  - {name: majority, family: theory, dataset: majority, variants: [ssm, softmax_attention], data: {seq_len: 8}}
"""


def _specs(tmp_path: Path):
    (tmp_path / "s.yaml").write_text(SUITE)
    return plan(load_suite(tmp_path / "s.yaml"))


def _store_rows(store: ResultStore, specs, version: str | None) -> None:
    """Rows as the code at ``version`` stored them (None: a row from before the column existed)."""
    for spec in specs:
        row = {"config_hash": spec.run_id, "task": spec.config["task"], "variant": spec.config["variant"],
               "seed": spec.config["seed"], "sweep": "{}", "status": "ok", "started_at": "2026-01-01T00:00:00+00:00"}
        if version is not None:
            row["results_version"] = version
        store.write_run(row, spec.config)


@pytest.fixture
def code_at_version_zero(monkeypatch) -> None:
    """Both families of SUITE at results version 0, so the tests below read the same at any version."""
    from harness.families.sequence.family import SequenceFamily
    from harness.families.theory.family import TheoryFamily

    monkeypatch.setattr(SequenceFamily, "results_version", 0)
    monkeypatch.setattr(TheoryFamily, "results_version", 0)


def test_a_family_bump_reruns_exactly_that_familys_runs(tmp_path: Path, monkeypatch, code_at_version_zero) -> None:
    from harness.families.sequence.family import SequenceFamily

    store = ResultStore(tmp_path / "r").create()
    _store_rows(store, _specs(tmp_path), f"{SPINE}.0")
    todo, summary = pending(_specs(tmp_path), store, resume=True, retry=frozenset())
    assert todo == [] and len(summary.skipped) == 8  # the current code is <spine>.0 everywhere: all resume

    monkeypatch.setattr(SequenceFamily, "results_version", 1)
    specs = _specs(tmp_path)
    assert {s.config["family"]: s.results_version for s in specs} == {"sequence": f"{SPINE}.1", "theory": f"{SPINE}.0"}
    assert [s.run_id for s in specs] == [s.run_id for s in _specs(tmp_path)]  # the version is not part of the id
    todo, summary = pending(specs, store, resume=True, retry=frozenset())
    assert {s.config["task"] for s in todo} == {"recall"} and len(todo) == 4
    assert sorted(summary.stale) == sorted(s.run_id for s in todo) and len(summary.skipped) == 4


def test_accept_stale_keeps_the_rows_and_marks_them(tmp_path: Path, monkeypatch, code_at_version_zero) -> None:
    from harness.families.sequence.family import SequenceFamily

    store = ResultStore(tmp_path / "r").create()
    _store_rows(store, _specs(tmp_path), f"{SPINE}.0")
    monkeypatch.setattr(SequenceFamily, "results_version", 1)
    todo, summary = pending(_specs(tmp_path), store, resume=True, retry=frozenset(), accept_stale=True)
    assert todo == [] and len(summary.accepted_stale) == 4
    df = pd.read_parquet(store.root / "results.parquet")
    marked = df.set_index("task")["accepted_stale"]
    assert set(marked.loc["recall"]) == {f"{SPINE}.1"} and marked.loc["majority"].isna().all()


def test_redoing_a_run_under_a_new_version_keeps_the_old_row(tmp_path: Path) -> None:
    store = ResultStore(tmp_path).create()
    row = {"config_hash": "a" * 16, "task": "t", "variant": "v", "seed": 0, "sweep": "{}", "status": "ok", "accuracy": 0.5}
    store.write_run(row, {"x": 1})
    store.write_run({**row, "accuracy": 0.7, "results_version": "0.1"}, {"x": 1})
    old = json.loads((store.runs_dir / "superseded" / f"{'a' * 16}.v0.0.json").read_text())
    assert old["row"]["accuracy"] == 0.5
    df = store.rebuild()
    assert len(df) == 1 and df["accuracy"].iloc[0] == 0.7  # the merged table holds the current row only
    store.write_run({**row, "accuracy": 0.8, "results_version": "0.1"}, {"x": 1})  # same version: plain overwrite
    assert len(list((store.runs_dir / "superseded").glob("*.json"))) == 1


def _table(versions: dict[int, str | None], stale: dict[int, str] | None = None) -> pd.DataFrame:
    rows = []
    for seed, version in versions.items():
        for variant, acc in (("mamba", 0.9), ("gated_cnn", 0.5)):
            rows.append({"task": "t", "variant": variant, "seed": seed, "sweep": "{}", "status": "ok", "accuracy": acc,
                         "config_hash": f"{variant}{seed}", "results_version": version,
                         "accepted_stale": (stale or {}).get(seed)})
    return pd.DataFrame(rows)


def test_the_report_keeps_one_version_per_task_and_says_what_it_left_out() -> None:
    from harness.report.load import keep_one_version

    kept, notes = keep_one_version(_table({0: None, 1: "0.1", 2: "0.1"}))
    assert sorted(kept["seed"].unique()) == [1, 2] and len(kept) == 4
    assert len(notes) == 1 and "task t: 2 rows left out (2 of version 0.0)" in notes[0] and "results version 0.1" in notes[0]
    kept, notes = keep_one_version(_table({0: "0.0", 1: "0.0"}, stale={0: "0.1", 1: "0.1"}))
    assert len(kept) == 4 and "kept with --accept-stale under version 0.1" in notes[0]
    kept, notes = keep_one_version(_table({0: "0.1", 1: "0.1"}))
    assert len(kept) == 4 and notes == []


def test_compare_pairs_across_versions_and_names_the_change(tmp_path: Path) -> None:
    from harness.report.compare import compare_dirs

    for name, version in (("old", None), ("new", "0.1")):
        store = ResultStore(tmp_path / name).create()
        for row in _table({0: version}).to_dict("records"):
            store.write_run({k: v for k, v in row.items() if v is not None}, {})
    out = compare_dirs(tmp_path / "old", tmp_path / "new")
    matched = out[out["kind"] != "missing"]
    assert len(matched) and set(matched["matched_on"]) == {"config_hash"}
    assert set(matched["conditions"]) == {"results_version: 0.0 -> 0.1"}
