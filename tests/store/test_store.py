"""The result store: atomic run files, merged tables, and no lost or duplicated rows under concurrency."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pandas as pd

from harness.store.store import ResultStore, StoredRun


def _row(i: int, **extra) -> dict:
    return {"config_hash": f"{i:016x}", "task": "t", "variant": f"v{i % 3}", "seed": i, "sweep": "{}", "status": "ok", "accuracy": i / 100, **extra}


def _writer(root: str, ids: list[int]) -> None:
    store = ResultStore(root).create()
    for i in ids:
        store.write_run(_row(i), {"seed": i})


def test_write_and_merge(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r").create()
    store.write_run(_row(1), {})
    store.write_run(_row(2, note=[1, 2]), {})
    df = pd.read_parquet(tmp_path / "r" / "results.parquet")
    assert list(df["config_hash"]) == [f"{1:016x}", f"{2:016x}"]
    assert store.finished() == {f"{1:016x}": StoredRun("ok", "0.0"), f"{2:016x}": StoredRun("ok", "0.0")}  # no version column: 0.0
    assert pd.read_csv(tmp_path / "r" / "results.csv").shape[0] == 2
    assert not list((tmp_path / "r").glob("**/*.tmp"))


def test_same_run_twice_is_one_row(tmp_path: Path) -> None:
    store = ResultStore(tmp_path).create()
    store.write_run(_row(7), {})
    store.write_run(_row(7, accuracy=0.5), {})
    df = store.rebuild()
    assert len(df) == 1 and df["accuracy"].iloc[0] == 0.5


def test_two_processes_lose_nothing(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    a = ctx.Process(target=_writer, args=(str(tmp_path), list(range(0, 30))))
    b = ctx.Process(target=_writer, args=(str(tmp_path), list(range(20, 50))))  # overlapping ids 20..29
    a.start(), b.start()
    a.join(60), b.join(60)
    assert a.exitcode == 0 and b.exitcode == 0
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert sorted(df["seed"]) == list(range(50))


def test_unreadable_leftover_is_not_done(tmp_path: Path) -> None:
    store = ResultStore(tmp_path).create()
    (store.runs_dir / "deadbeef.json").write_text('{"row": {"stat')
    assert store.finished() == {}


def test_a_failed_run_keeps_flag_columns_boolean_and_missing_values_null(tmp_path: Path) -> None:
    """A timed-out run's row knows its kind from the spec; what it cannot know (mem_approx, backend) is null,
    never the strings 'NaN', 'true', 'false'."""
    from harness.config.load import load_suite
    from harness.execute.launcher import failure_row
    from harness.plan.planner import plan

    (tmp_path / "s.yaml").write_text("""suite: s
seeds: [0]
variants: [mamba, attention]
tasks:
  - {name: recall, family: sequence, dataset: mqar, data: {seq_len: 16, num_kv: 2}, model: {d_model: 16, n_layers: 1},
     sweep: {data.seq_len: [16]}}
""")
    mamba, attention = plan(load_suite(tmp_path / "s.yaml"), device="cpu")
    timed_out = failure_row(mamba, "timed out after 3 s")
    assert timed_out["is_ssm"] is True and timed_out["causal"] is True and timed_out["sweep.data.seq_len"] == 16
    store = ResultStore(tmp_path / "r").create()
    store.write_run(timed_out, mamba.config)
    ok = {**failure_row(attention, ""), "status": "ok", "mem_approx": False, "backend": "sdpa", "accuracy": 0.5}
    store.write_run(ok, attention.config)
    df = pd.read_parquet(tmp_path / "r" / "results.parquet").set_index("variant")
    assert df["is_ssm"].to_dict() == {"mamba": True, "attention": False}
    assert df.loc["attention", "mem_approx"] is False and df.loc["mamba", "mem_approx"] is None
    assert df["backend"].isna().sum() == 1 and df["accuracy"].isna().sum() == 1
    assert not df.isin(["NaN", "nan", "true", "false"]).any().any()


def test_a_size_sweep_lists_in_numeric_order(tmp_path: Path) -> None:
    store = ResultStore(tmp_path).create()
    points = [{"data.seq_len": 256}, {"data.seq_len": 16}, {"data.seq_len": "full"}, {"data.seq_len": 64},
              {"data.seq_len": 64, "model.d_state": 16}, {"data.seq_len": 64, "model.d_state": 4}, {}]
    for i, point in enumerate(points):
        store.write_run(_row(i, sweep=json.dumps(point, sort_keys=True)), {})
    shown = [json.loads(s) for s in pd.read_csv(tmp_path / "results.csv")["sweep"]]
    assert shown == [{}, {"data.seq_len": 16}, {"data.seq_len": 64}, {"data.seq_len": 64, "model.d_state": 4},
                     {"data.seq_len": 64, "model.d_state": 16}, {"data.seq_len": 256}, {"data.seq_len": "full"}]
