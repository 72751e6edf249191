"""Launchers declare the ``harness run`` options they take: an option set for another launcher is refused,
naming the one it belongs to, before anything is written; each launcher's refusals come from the launcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.execute import LAUNCHERS, launcher_options

DEFAULTS = dict(jobs=1, address=None, gpus_per_run=None, cpus_per_run=None, memory_per_run=None, max_retries=2)


def test_each_launcher_gets_its_own_options():
    assert launcher_options("local", {**DEFAULTS, "jobs": 3}) == {"jobs": 3}
    ray = launcher_options("ray", {**DEFAULTS, "address": "auto", "max_retries": 0})
    assert ray == {"address": "auto", "gpus_per_run": None, "cpus_per_run": None, "memory_per_run": None, "max_retries": 0}


@pytest.mark.parametrize("executor,option,value,owner", [
    ("ray", "jobs", 2, "local"), ("local", "address", "auto", "ray"), ("local", "memory_per_run", 4.0, "ray"),
    ("local", "max_retries", 5, "ray"),
])
def test_an_option_of_another_launcher_is_refused(executor, option, value, owner):
    with pytest.raises(HarnessError, match=f"--{option.replace('_', '-')} applies to --executor {owner} only"):
        launcher_options(executor, {**DEFAULTS, option: value})


def test_the_cli_refuses_before_writing(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from harness import cli

    (tmp_path / "s.yaml").write_text("suite: s\nvariants: [attention]\ntasks:\n  - {name: r, family: sequence, dataset: mqar}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["run", "s.yaml", "--address", "auto"])
    assert result.exit_code == 2 and "--address applies to --executor ray only" in result.output
    assert not (tmp_path / "results").exists()
    assert LAUNCHERS.names() == ["local", "ray"]
