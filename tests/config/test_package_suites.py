"""Shipped suites and task files are package data: named ``harness:NAME`` from any folder (a suite outside the
repository includes ``harness:tasks/mqar.yaml``), and the wheel's package-data globs cover every file."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness import cli
from harness.config.load import SHIPPED_SUITES, load_suite
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_a_suite_anywhere_includes_a_shipped_task_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nowhere near the repository
    Path("mine.yaml").write_text(yaml.safe_dump({"suite": "mine", "variants": ["mamba", "attention"], "tasks": [
        {"include": "harness:tasks/mqar.yaml", "train": {"steps": 3}}]}, sort_keys=False))
    (task,) = load_suite("mine.yaml").tasks
    shipped = yaml.safe_load((ROOT / "suites" / "tasks" / "mqar.yaml").read_text())
    assert (task.entry.name, task.entry.dataset, task.entry.data["seq_len"], task.train["steps"]) == ("mqar", "mqar", shipped["data"]["seq_len"], 3)
    assert load_suite("harness:quick.yaml").name == "quick"
    Path("bad.yaml").write_text("suite: bad\nvariants: [mamba]\ntasks:\n  - include: harness:tasks/nope.yaml\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: included file 'harness:tasks/nope.yaml' not found"):
        load_suite("bad.yaml")
    out = CliRunner().invoke(cli.app, ["list", "suites"]).output
    assert "harness:quick.yaml" in out.splitlines()
    Path("suites").mkdir()
    Path("suites/mine.yaml").write_text("suite: mine\n")
    assert "suites/mine.yaml" in CliRunner().invoke(cli.app, ["list", "suites"]).output.splitlines()  # a user's own


def test_list_suites_names_a_checkouts_suites_once(monkeypatch):
    monkeypatch.chdir(ROOT)  # in a checkout, ./suites is the shipped folder: listed once, as harness:NAME
    lines = CliRunner().invoke(cli.app, ["list", "suites"]).output.splitlines()
    assert "harness:quick.yaml" in lines and "suites/quick.yaml" not in lines


def test_package_data_ships_every_suite_and_task_file():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["harness"]
    files = [p.relative_to(SHIPPED_SUITES.parent).as_posix() for p in SHIPPED_SUITES.rglob("*") if p.is_file()]
    assert files and SHIPPED_SUITES.resolve() == (ROOT / "suites").resolve()
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []
