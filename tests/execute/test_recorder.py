"""The run printout: failure messages and labels are data, printed verbatim (never read as rich markup)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from harness.config.run_config import RunConfig
from harness.config.sections import MatchConfig, MeasureConfig, TrainConfig
from harness.execute.launcher import ExecutionSummary, Recorder
from harness.plan.planner import RunSpec
from harness.store.store import ResultStore
from harness.store.summary import print_runs, print_summary

MESSAGES = ["data not found: /tmp/no_such_data[/v2]", "pip install 'harness[gpu]'",
            "[enforce fail at alloc_cpu.cpp:127] out of memory"]


def test_failure_messages_with_brackets_print_verbatim(tmp_path: Path) -> None:
    console = Console(record=True, width=400, force_terminal=False)
    store = ResultStore(tmp_path).create()
    with Recorder(store, ExecutionSummary(), console, total=len(MESSAGES)) as recorder:
        for i, message in enumerate(MESSAGES):
            config = RunConfig(suite="s", task="recall", family="sequence", dataset="mqar", variant="mamba", use="mamba",
                               ablation="", data={}, model={}, train=TrainConfig(), measure=MeasureConfig(), match=MatchConfig(),
                               match_reference=None, metrics=(), seed=i, sweep={"data.seq_len": 16}, device="cpu")
            row = {"config_hash": f"{i:016x}", "suite": "s", "task": "recall", "variant": "mamba", "seed": i,
                   "sweep": '{"data.seq_len": 16}', "status": "error", "error": message}
            recorder.record(RunSpec(f"{i:016x}", config), row)
    text = console.export_text()
    assert all(m in text for m in MESSAGES)
    assert "recall/mamba/seed0[seq_len=16]: error" in text

    console = Console(record=True, width=400)
    print_runs(console, store.table())  # harness show --runs
    text = console.export_text()
    assert all(m in text for m in MESSAGES)
    print_summary(console, pd.DataFrame([{"suite": "s", "task": "t", "variant": "ssm[s_A=0.1]", "sweep": "{}", "status": "ok",
                                          "backend": "sdpa[math]"}]))
    text = console.export_text()
    assert "ssm[s_A=0.1]" in text and "sdpa[math]" in text
