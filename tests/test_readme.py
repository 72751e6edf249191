"""README promises: its annotated suite example validates, and its commands match .ci/run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness.config.load import load_suite
from harness.plan.planner import plan

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_suite_example_validates(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(suite: demo.*?)```", README, re.S)
    assert block, "README lost its annotated suite example"
    shutil.copytree(ROOT / "suites" / "tasks", tmp_path / "tasks")
    path = tmp_path / "demo.yaml"
    path.write_text(block.group(1))
    suite = load_suite(path)
    specs = plan(suite)
    variants = {s.config["variant"] for s in specs}
    assert {"mamba", "attention", "gcnn_wide", "lti", "d_state_4"} <= variants


def test_ci_runs_the_readme_test_command() -> None:
    test_command = re.findall(r"```bash\n(.*?)\n```", README, re.S)[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci


def test_readme_claims_example_validates(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(suite: claims_demo.*?)```", README, re.S)
    assert block, "README lost its claims example"
    path = tmp_path / "claims_demo.yaml"
    path.write_text(block.group(1))
    suite = load_suite(path)
    kinds = {c.kind for t in suite.tasks for c in t.entry.expect}
    assert kinds == {"verdict", "compare", "status", "trend", "scaling"}
