"""What ``harness run`` prints last: each task's verdict and claims, as ``harness report`` / ``claims`` decide them."""

from __future__ import annotations

import numpy as np
from rich.console import Console

import synthetic
from harness.report.cli import print_run_answer


def _folder(tmp_path):
    copy = synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)
    copy["claims"] = [synthetic.claim("beats-gcnn", compare={"better": "mamba", "worse": "gated_cnn", "margin": 0.3}),
                      synthetic.claim("lti-ahead", compare={"better": "lti", "worse": "mamba"})]
    return synthetic.write(tmp_path, synthetic.copy_rows(np.random.default_rng(0)), {"copy": copy})


def _printed(folder, tasks) -> str:
    console = Console(record=True, width=250)
    print_run_answer(folder, tasks, console)
    return console.export_text()


def test_prints_the_decided_verdict_and_each_claims_outcome(tmp_path):
    text = _printed(_folder(tmp_path), {"copy"})
    assert "SSM needed" in text and "vs gated_cnn" in text  # planted: mamba 0.8 vs gated CNN 0.13 over 8 seeds
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ ") and "-" in line.split()[1]}
    assert "reproduced" in lines["beats-gcnn"] and "n=8" in lines["beats-gcnn"]
    assert "contradicted" in lines["lti-ahead"]  # planted: lti 0.5 behind mamba 0.8


def test_shows_only_the_tasks_that_ran(tmp_path):
    text = _printed(_folder(tmp_path), {"another_task"})
    assert "copy" not in text and "beats-gcnn" not in text and "Claims" not in text


def test_a_folder_it_cannot_read_is_a_note_not_a_failure(tmp_path):
    text = _printed(tmp_path / "nowhere", {"copy"})
    assert text.startswith("no verdicts to print:")
