import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness.report import cli_compare
from harness.report.compare import compare_dirs

import synthetic


def _dirs(tmp_path, slow=1.0, mem=1.0, quality=0.0, jitter=0.02, fail=False):
    rng = np.random.default_rng(0)
    tasks = {"cls": synthetic.task_entry("classification", "top1", True, "%", 0.5)}
    old, new = [], []
    for v in ("mamba", "attention"):
        for s in range(3):
            lat = 1.0 + 0.1 * s
            old.append(synthetic.base_row("cls", "classification", v, s, top1=75.0, latency_ms_p50=lat,
                                          latency_ms_p10=lat * 0.9, latency_ms_p90=lat * 1.1))
            f = slow if v == "mamba" else 1.0
            nl = lat * f * (1 + rng.normal(0, jitter))
            new.append(synthetic.base_row("cls", "classification", v, s,
                                          top1=75.0 + (quality if v == "attention" else 0.0) + rng.normal(0, 0.05),
                                          latency_ms_p50=nl, latency_ms_p10=nl * 0.9, latency_ms_p90=nl * 1.1,
                                          peak_mem_mb_infer=100.0 * (mem if v == "attention" else 1.0),
                                          status="oom" if (fail and v == "attention" and s == 0) else "ok"))
    return synthetic.write(tmp_path / "a", old, tasks), synthetic.write(tmp_path / "b", new, tasks)


def test_null_change_flags_nothing(tmp_path):
    a, b = _dirs(tmp_path)
    res = compare_dirs(a, b)
    assert not res["regression"].any()
    assert set(res["matched_on"]) == {"config_hash"}
    assert cli_compare(a, b, fail_on_regression=True) == 0


def test_planted_regressions_flagged(tmp_path):
    a, b = _dirs(tmp_path, slow=1.5, mem=1.2, quality=-1.0, fail=True)
    res = compare_dirs(a, b)
    reg = res[res["regression"]]
    lat = reg[reg["metric"] == "latency_ms_p50"]
    assert set(lat["variant"]) == {"mamba"} and len(lat) == 3
    assert set(reg.loc[reg["metric"] == "peak_mem_mb_infer", "variant"]) == {"attention"}
    assert set(reg.loc[reg["metric"] == "top1", "variant"]) == {"attention"}
    assert len(reg[reg["kind"] == "status"]) == 1
    assert cli_compare(a, b, fail_on_regression=True) == 1
    assert cli_compare(a, b) == 0
    only = compare_dirs(a, b, metrics=["latency_ms_p50"])
    assert set(only["metric"]) == {"latency_ms_p50"}


def test_runs_measured_under_other_conditions_say_what_differed(tmp_path):
    """Same runs, but B's attention ran another kernel in another precision: its rows name both changes,
    the mamba rows name none, and the printout counts the unlike pairs."""
    import pandas as pd
    from rich.console import Console

    from harness.report.compare import print_comparison

    a, b = _dirs(tmp_path)
    df = pd.read_parquet(b / "results.parquet")
    attention = df["variant"] == "attention"
    df.loc[attention, "backend"] = "sdpa-math"
    df["measure_dtype"] = "bf16"
    df.loc[attention, "measure_dtype"] = "fp32"
    df["train_precision"] = "bf16"  # recorded on one side only (an older baseline): not a difference
    df.to_parquet(b / "results.parquet")
    old = pd.read_parquet(a / "results.parquet")
    old["measure_dtype"] = "bf16"
    old.to_parquet(a / "results.parquet")

    res = compare_dirs(a, b)
    assert set(res.loc[res["variant"] == "mamba", "conditions"]) == {""}
    assert set(res.loc[res["variant"] == "attention", "conditions"]) == {"backend: ref -> sdpa-math; measure_dtype: bf16 -> fp32"}
    console = Console(record=True, width=200)
    print_comparison(res, console)
    assert "3 matched runs were measured under different conditions (backend, measure_dtype)" in console.export_text()


def test_fallback_key_when_hash_differs(tmp_path):
    a, b = _dirs(tmp_path)
    import pandas as pd
    df = pd.read_parquet(b / "results.parquet")
    df["config_hash"] = None
    df.iloc[:1].to_csv(b / "dummy.csv")
    df.drop(index=0).to_parquet(b / "results.parquet")
    res = compare_dirs(a, b)
    assert set(res.loc[res["kind"] != "missing", "matched_on"]) == {"task+variant+seed+sweep"}
    assert (res["note"] == "only in A (baseline)").sum() == 1


def test_two_configs_of_one_run_key_compare_row_by_hash(tmp_path):
    """A folder holding two configs of one task/variant/seed (a rerun after changing train.steps): each
    hash pair compares its own two rows, whichever ran last on each side."""
    tasks = {"cls": synthetic.task_entry("classification", "top1", True, "%", 0.5)}

    def rows(late):
        return [synthetic.base_row("cls", "classification", "mamba", 0, top1=top1, config_hash=h,
                                   started_at=f"2025-01-0{2 if h == late else 1}T00:00:00")
                for h, top1 in (("a", 90.0), ("b", 50.0))]

    a = synthetic.write(tmp_path / "a", rows(late="a"), tasks)
    b = synthetic.write(tmp_path / "b", rows(late="b"), tasks)
    res = compare_dirs(a, b)
    top1 = res[res["metric"] == "top1"]
    assert sorted(zip(top1["old"], top1["new"])) == [(50.0, 50.0), (90.0, 90.0)]
    assert not res["regression"].any() and set(res["matched_on"]) == {"config_hash"}
    assert cli_compare(a, b, fail_on_regression=True) == 0
    # the printout counts two runs (not one task/variant/seed) and tells their rows apart by config
    from rich.console import Console

    from harness.report.compare import print_comparison

    console = Console(record=True, width=200)
    print_comparison(res, console, show_all=True)
    text = console.export_text()
    assert "2 matched runs" in text and "config" in text
    assert sorted(res.loc[res["metric"] == "top1", "config_hash"]) == ["a", "b"]


def test_cli_pairs_a_folder_of_suites_with_a_suite_by_name(tmp_path):
    """``harness compare baselines/h100 NEW``: the baseline folder holds one folder per suite."""
    a, b = _dirs(tmp_path, slow=1.5)
    baselines = tmp_path / "baselines"
    shutil.move(a, baselines / "synthetic")
    (baselines / "other").mkdir()
    harness = Path(sys.executable).with_name("harness")
    out = subprocess.run([harness, "compare", baselines, b, "--fail-on-regression"], capture_output=True, text=True)
    assert out.returncode == 1 and "3 regressions" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([harness, "compare", tmp_path / "nowhere", b], capture_output=True, text=True)
    assert out.returncode == 2 and "no results.parquet here or in its subfolders" in out.stderr


def test_cli_folder_of_suites_with_a_suite_json_lacking_its_name_or_corrupt(tmp_path):
    """A suite.json without ``suite`` pairs by folder name; an unreadable one is named, exit 2."""
    import json

    from typer.testing import CliRunner

    from harness import cli

    a, b = _dirs(tmp_path)
    old = tmp_path / "old"
    for name in ("synthetic", "other"):
        shutil.copytree(a, old / name)
    (old / "other" / "suite.json").write_text(json.dumps({"tasks": {}}))
    new = tmp_path / "new"
    shutil.copytree(b, new / "synthetic")
    shutil.copytree(b, new / "other")
    (new / "other" / "suite.json").write_text(json.dumps({"tasks": {}}))
    result = CliRunner().invoke(cli.app, ["compare", str(old), str(new)])
    assert result.exit_code == 0 and "other -> " in result.output.replace("\n", ""), result.output
    (old / "other" / "suite.json").write_text("{bad")
    result = CliRunner().invoke(cli.app, ["compare", str(old), str(new)])
    assert result.exit_code == 2 and f"{old / 'other' / 'suite.json'}: corrupt" in result.output.replace("\n", ""), result.output
