"""cpu_scan: the CPU time of a process tree, the summary's medians, speed-ups and ratios, which jobs run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pandas as pd

import pytest

from harness.benchmarks.cpu_scan import _tree_cpu, select_jobs, suite, summary


def test_tree_cpu_counts_a_child_that_burns_cpu():
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.6: pass\ntime.sleep(5)"])
    try:
        seen: dict[int, float] = {}
        deadline = time.time() + 30
        while seen.get(child.pid, 0.0) < 0.5 and time.time() < deadline:
            _tree_cpu(os.getpid(), seen)
            time.sleep(0.1)
        assert 0.5 <= seen[child.pid] < 5  # its own CPU seconds, not its parent's, nor its sleep
    finally:
        child.kill()
        child.wait()


def _runs() -> pd.DataFrame:
    rows = []
    for rep, noise in enumerate((1.0, 1.2, 0.9)):
        for variant, base, new in (("mamba", 60.0, 30.0), ("attention", 20.0, 20.0)):
            for side, cpu in (("baseline", base), ("this tree", new)):
                rows.append({"repeat": rep, "threads": 1, "task": "copy", "variant": variant, "side": side,
                             "cpu_s": cpu * noise, "duration_s": cpu * noise / 2, "step_cpu_ms": cpu,
                             "fwd_cpu_ms": cpu / 10, "latency_ms_p50": cpu / 10})
    return pd.DataFrame(rows)


def test_summary_reports_medians_speedups_and_ratios_to_attention():
    text = summary(_runs())
    mamba = next(line for line in text.splitlines() if line.startswith("| 1 | copy | mamba | 60.0"))
    assert "| 60.0 [54.0, 72.0] | 30.0 [27.0, 36.0] | 2.00x |" in mamba  # CPU s: median [min, max], speed-up
    ratio = [line for line in text.splitlines() if line.startswith("| 1 | copy | mamba | 3.00")]
    assert ratio == ["| 1 | copy | mamba |" + " 3.00 | 1.50 |" * 5]  # mamba / attention, each column


def test_summary_without_attention_has_no_ratio_table():
    text = summary(_runs()[lambda d: d.variant == "mamba"])
    assert "/ attention" not in text and text.count("| 1 | copy | mamba |") == 1


def test_jobs_are_tasks_by_variants_then_only_globs():
    assert select_jobs("copy64", "mamba,attention", "") == ["copy64/mamba", "copy64/attention"]
    assert select_jobs("", "", "*/mamba2") == ["copy64/mamba2", "digits32/mamba2"]
    assert len(select_jobs("", "", "")) == 8
    with pytest.raises(ValueError, match="unknown variant mamba3; choose from mamba, mamba2"):
        select_jobs("copy64", "mamba3", "")


def test_steps_override_shortens_every_workload_and_its_warmup():
    assert [t["train"]["steps"] for t in suite(1)["tasks"]] == [600, 300]
    short = suite(2, steps=20)
    assert [(t["train"]["steps"], t["train"]["warmup_steps"]) for t in short["tasks"]] == [(20, 2), (20, 2)]
    assert short["measure"]["cpu_threads"] == 2 and short["tasks"][0]["data"]["seq_len"] == 64
