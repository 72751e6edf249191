"""suite.json has one owner: what the planner describes is what the report reads back; sweep keys a
suite declares as sizes are sizes, others guessed by name only in folders written before size_keys."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.config.load import load_suite
from harness.errors import ConfigError
from harness.plan.describe import describe_suite
from harness.report.load import ResultsSuite, normalize
from harness.store.results_format import SUITE_JSON, SuiteInfo
from harness.store.store import ResultStore

SUITE = """suite: s
seeds: [0, 1]
tasks:
  - name: t
    family: theory
    dataset: majority
    variants: [ssm, softmax_attention]
    sweep: {{data.seq_len: [8, 16], model.d_state: [2, 4], train.lr: [0.001, 0.01]}}
    {extra}
"""


def _suite(tmp_path: Path, extra: str = ""):
    (tmp_path / "s.yaml").write_text(SUITE.format(extra=extra))
    return load_suite(tmp_path / "s.yaml")


def test_what_is_written_is_what_is_read(tmp_path: Path) -> None:
    info = describe_suite(_suite(tmp_path, "factors: [model.d_state]"))
    ResultStore(tmp_path / "r").create().write_meta(SUITE_JSON, info.to_json())
    back = ResultsSuite.read(tmp_path / "r")
    assert back.to_json() == info.to_json() and back.name == "s" and back.seeds == [0, 1]
    t = back.task("t")
    assert (t.family, t.causal, t.primary_metric, t.variants) == ("theory", False, "test_acc", ["ssm", "softmax_attention"])
    assert t.size_keys == ["data.seq_len"] and t.factor_keys == ["model.d_state"] and t.hp_keys == ["train.lr"]


def test_declared_sizes_win_over_the_name_guess(tmp_path: Path) -> None:
    t = describe_suite(_suite(tmp_path, "sizes: [model.d_state]")).task("t")
    assert t.size_keys == ["model.d_state"] and t.hp_keys == ["data.seq_len", "train.lr"]
    rows = pd.DataFrame([{"task": "t", "variant": "ssm", "sweep": json.dumps({"data.seq_len": 8, "model.d_state": 4})}])
    df = normalize(rows, ResultsSuite(name="s", tasks={"t": t}))
    assert df["size_key"].iloc[0] == "model.d_state" and df["size"].iloc[0] == 4.0


def test_a_folder_from_before_size_keys_guesses_them_by_name() -> None:
    old = SuiteInfo.from_json({"suite": "s", "tasks": {"t": {"sweep_keys": ["data.seq_len", "model.d_state"]}}})
    assert old.task("t").size_keys == ["data.seq_len"] and old.task("t").hp_keys == ["model.d_state"]


@pytest.mark.parametrize("extra,message", [
    ("sizes: [model.width]", "size 'model.width' is not a sweep key of task 't'"),
    ("{sizes: [model.d_state], factors: [model.d_state]}", "is both a factor"),
])
def test_size_keys_are_checked(tmp_path: Path, extra: str, message: str) -> None:
    extra = extra.strip("{}").replace(", factors", "\n    factors")
    with pytest.raises(ConfigError, match=message):
        _suite(tmp_path, extra)
