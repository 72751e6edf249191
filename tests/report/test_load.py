"""Reading a results folder: a suite rerun with a changed config keeps its old run files, and the
report, ``show`` and the verdict must read only each run's latest config (never old rows as extra seeds)."""

import numpy as np
import pytest
from typer.testing import CliRunner

from harness import cli
from harness.report.load import load_results

import synthetic


def rerun_folder(tmp_path, csv=False):
    """mqar, 2 seeds x 2 variants at steps 5 (started first), then the same runs at steps 6."""
    rows = []
    for steps, started, acc in ((5, "2025-01-01T00:00:00", 0.2), (6, "2025-01-02T00:00:00", 0.9)):
        for variant in ("mamba", "attention"):
            for seed in (0, 1):
                rows.append(synthetic.base_row("mqar", "sequence", variant, seed, accuracy=acc, train_steps=steps,
                                               started_at=started, config_hash=f"{variant}-{seed}-{steps}"))
    task = synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)
    return synthetic.write(tmp_path / "r", rows, {"mqar": task}, csv=csv)


@pytest.mark.parametrize("csv", [False, True])  # a CSV reads the empty ablation back as NaN
def test_only_the_latest_config_of_each_run_is_read(tmp_path, csv):
    folder = rerun_folder(tmp_path, csv)
    df, suite = load_results(folder)
    assert len(df) == 4 and set(df["train_steps"]) == {6} and suite.superseded == 4
    assert np.allclose(df["accuracy"], 0.9)
    everything, suite = load_results(folder, latest_only=False)
    assert len(everything) == 8 and suite.superseded == 0


def test_show_counts_seeds_not_configs(tmp_path):
    folder = rerun_folder(tmp_path)
    result = CliRunner().invoke(cli.app, ["show", str(folder)])
    assert result.exit_code == 0, result.output
    assert "ok×2" in result.output and "ok×4" not in result.output
    assert "4 older rows left out" in result.output


def test_the_primary_metric_the_runs_filled_wins_over_an_older_suite_json(tmp_path):
    """Results written before dense tasks declared their head's metrics say ``primary_metric: map`` in
    suite.json for a segmentation task whose rows fill miou: the report reads miou (and so can decide)."""
    from harness.report.verdict import task_verdicts

    extra = {"miou": {"higher_is_better": True, "unit": "fraction", "primary": True}}
    task = synthetic.task_entry("dense", "map", True, "fraction", 0.02, extra=extra)
    task["verdict"]["thresholds"]["miou"] = 0.02
    rows = [synthetic.base_row("seg", "dense", v, s, map=np.nan, miou=0.5 + 0.01 * s, primary_metric="miou")
            for v in ("mamba", "gated_cnn") for s in range(4)]
    folder = synthetic.write(tmp_path / "r", rows, {"seg": task})
    df, suite = load_results(folder)
    assert suite.task("seg").primary_metric == "miou"
    verdict = task_verdicts(df, suite)[0]
    assert verdict.primary_metric == "miou" and "no primary metric" not in verdict.reasons_text()
