"""Bad suites: exit 2, a FILE:LINE: message, no traceback, and no results folder created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config.load import load_suite
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD_TASK = """name: recall
family: sequence
dataset: mqar
data: {seq_len: 32, num_kv: 4}
model: {d_model: 32, n_layers: 1}
"""

CASES = {
    # name: (suite text, expected line, expected fragment)
    "typo_key": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    trian: {steps: 3}\n", 5, "unknown key 'trian' in tasks (did you mean 'train'?)"),
    "wrong_type": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    train: {steps: many}\n", 5, "recall.train.steps: Input should be a valid integer"),
    "bad_range": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    data: {seq_len: -3}\n", 5, "recall.data.seq_len: Input should be greater than or equal to 8"),
    "missing_include": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/nope.yaml\n", 4, "included file 'tasks/nope.yaml' not found"),
    "yaml_syntax": ("suite: s\nvariants: [mamba\ntasks:\n  - include: tasks/recall.yaml\n", 3, "YAML error"),
    "python_tag": ("suite: !!python/object/apply:os.system ['touch PWNED']\ntasks: []\n", 1, "python tags are not allowed"),
    "unknown_family": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    family: sequense\n", 5, "unknown family 'sequense' (did you mean 'sequence'"),
    "unknown_variant": ("suite: s\nvariants: [mamba, atention]\ntasks:\n  - include: tasks/recall.yaml\n", 2, "unknown variant 'atention' for family 'sequence' (did you mean 'attention'?)"),
    "unknown_dataset": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    dataset: mqr\n", 5, "unknown dataset 'mqr'"),
    "model_key": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    model: {d_modle: 3}\n", 5, "unknown key 'd_modle' in recall.model (did you mean 'd_model'?)"),
    "sweep_value": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    sweep: {model.d_state: [4, -1]}\n", 5, "recall.model.d_state: Input should be greater than or equal to 1"),
    "sweep_key": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    sweep: {modl.d_state: [4]}\n", 5, "sweep key 'modl.d_state'"),
    "duplicate_key": ("suite: s\nsuite: t\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n", 2, "duplicate key 'suite'"),
    "no_variants": ("suite: s\ntasks:\n  - include: tasks/recall.yaml\n", 3, "has no variants"),
    "suite_section": ("suite: s\nvariants: [mamba]\nmeasure: {batch_size: 0}\ntasks:\n  - include: tasks/recall.yaml\n", 3, "measure.batch_size: Input should be greater than or equal to 1"),
    "suite_section_key": ("suite: s\nvariants: [mamba]\nmeasure: {sdpa_kernel: [flash]}\ntasks:\n  - include: tasks/recall.yaml\n", 3, "unknown key 'sdpa_kernel' in measure (did you mean 'sdpa_kernels'?)"),
    "task_section_line": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    measure:\n      batch_size: 2\n      sdpa_kernels: [flash2]\n", 7, "recall.measure.sdpa_kernels[0]: Input should be 'flash', 'cudnn', 'efficient' or 'math'"),
    "bad_reference": ("suite: s\nvariants: [mamba]\nmatch: {by: params, reference: attention}\ntasks:\n  - include: tasks/recall.yaml\n", 3, "match.reference 'attention' is not one of the task's variants"),
    "no_reference": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    match: {by: params}\n", 5, "match.by 'params' needs match.reference"),
    "match_field": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    match: {by: params, reference: mamba, field: d_modle}\n", 5, "match.field 'd_modle' is not a model field of family 'sequence' (did you mean 'd_model'?)"),
    "sweep_below_value": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    sweep: {model.d_model.x: [2]}\n", 5, "sweep key 'model.d_model.x': model.d_model is a value (32)"),
    "sweep_repeat": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    sweep: {data.seq_len: [32, 64, 32]}\n", 5, "sweep 'data.seq_len' lists 32 twice"),
    "seed_repeat": ("suite: s\nseeds: [0, 1, 0]\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n", 2, "seed 0 appears more than once"),
    "seed_range": ("suite: s\nseeds: [99999999999999999999]\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n", 2, "seed 99999999999999999999 is out of range"),
    "empty_variants": ("suite: s\nvariants: []\ntasks:\n  - include: tasks/recall.yaml\n", 2, "variants: List should have at least 1 item"),
    "variant_name": ("suite: s\nvariants: [{name: 'a b', use: mamba}]\ntasks:\n  - include: tasks/recall.yaml\n", 2, "variants[0].name: String should match pattern"),
    "a_init": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    model: {A_init: s4d}\n", 5, "recall.model.A_init: Input should be 's4d_real', 's4d_lin' or 'random'"),
    "hybrid_pattern": ("suite: s\nvariants: [hybrid]\ntasks:\n  - include: tasks/recall.yaml\n    model: {pattern: [mamba, atention]}\n", 5, "recall.model.pattern: unknown mixer 'atention' (did you mean 'attention'"),
    "hybrid_no_pattern": ("suite: s\nvariants: [hybrid]\ntasks:\n  - include: tasks/recall.yaml\n    model: {d_model: 32}\n", 5, "recall.model: variant 'hybrid' needs model.pattern"),
    "iters_order": ("suite: s\nvariants: [mamba]\nmeasure: {min_iters: 50, max_iters: 10}\ntasks:\n  - include: tasks/recall.yaml\n", 3, "measure: min_iters 50 is above max_iters 10"),
    "latency_seeds": ("suite: s\nseeds: [1, 2]\nvariants: [mamba]\nmeasure: {latency_seeds: [0]}\ntasks:\n  - include: tasks/recall.yaml\n", 4, "measure.latency_seeds [0] names none of the suite's seeds [1, 2]"),
    "one_token_stage": ("suite: s\nvariants: [mamba]\ntasks:\n  - name: d\n    family: classification\n    dataset: digits\n    data: {resolution: 32}\n    model: {depths: [1, 1, 1, 1], dims: [16, 16, 32, 32], head_dim: 16}\n", 8, "d.model: data.resolution 32 leaves the backbone's last stage a 1x1 grid"),
    "variant_vs_sweep": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    sweep: {model.d_state: [8, 16]}\n    ablate:\n      base: mamba\n      variants: [{name: small, model: {d_state: 4}}]\n", 6, "variant 'small' sets model.d_state, which the sweep also sets"),
    "verdict_relative": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    verdict:\n      relative: {acuracy: true}\n", 6, "verdict.relative: unknown metric 'acuracy' (did you mean 'accuracy'?)"),
    "ablate_base": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    ablate:\n      base: mamab\n      variants: [{name: a, model: {d_state: 2}}]\n", 6, "ablate.base: unknown variant 'mamab' for family 'sequence' (did you mean 'mamba'?)"),
    "ablate_model": ("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    ablate:\n      base: mamba\n      variants:\n        - name: small\n          model: {d_state: -2}\n", 9, "recall.ablate.small.model.d_state: Input should be greater than or equal to 1"),
    "user_folder": ("suite: s\nvariants: [gated_cnn]\ntasks:\n  - name: photos\n    family: classification\n    dataset: imagefolder\n    data:\n      resolution: 32\n      path: no/such/folder\n", 9, "photos.data.path: folder 'no/such/folder' not found"),
    "user_file": ("suite: s\nvariants: [fno]\ntasks:\n  - name: flow\n    family: pde\n    dataset: pdebench\n    data: {equation: burgers, path: nowhere.h5}\n", 7, "flow.data.path: file 'nowhere.h5' not found"),
    "not_utf8": (b"suite: s\ndescription: \"\xff\"\n".decode("latin-1"), 2, "not UTF-8 text"),
    "nul_char": ("suite: s\nvariants: [mamba]\ndescription: a\x00\n", 3, "special characters are not allowed"),
    "too_deep": ("suite: s\ntasks: " + "[" * 5000 + "]" * 5000 + "\n", None, "nested too deeply"),
}


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "recall.yaml").write_text(GOOD_TASK)
    return tmp_path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_suite_is_located(case: str, suite_dir: Path) -> None:
    text, line, fragment = CASES[case]
    path = suite_dir / "suite.yaml"
    path.write_bytes(text.encode("latin-1" if case == "not_utf8" else "utf-8"))
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert fragment in info.value.message
    if line is not None:
        assert info.value.line == line, str(info.value)
    assert not (suite_dir / "PWNED").exists()


def test_include_cycle(suite_dir: Path) -> None:
    (suite_dir / "tasks" / "a.yaml").write_text("include: b.yaml\n")
    (suite_dir / "tasks" / "b.yaml").write_text("include: a.yaml\n")
    path = suite_dir / "suite.yaml"
    path.write_text("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_suite(path)


def test_error_in_included_file_names_that_file(suite_dir: Path) -> None:
    (suite_dir / "tasks" / "bad.yaml").write_text(GOOD_TASK.replace("model: {d_model: 32, n_layers: 1}", "model: {d_model: 32, n_layer: 1}"))
    path = suite_dir / "suite.yaml"
    path.write_text("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/bad.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert info.value.file.endswith("bad.yaml") and info.value.line == 5


def test_local_keys_win_over_included(suite_dir: Path) -> None:
    path = suite_dir / "suite.yaml"
    path.write_text("suite: s\nvariants: [mamba]\ntasks:\n  - include: tasks/recall.yaml\n    data: {seq_len: 48}\n")
    task = load_suite(path).tasks[0]
    assert task.entry.data == {"seq_len": 48, "num_kv": 4}


@pytest.mark.parametrize("case", ["typo_key", "python_tag", "missing_include", "yaml_syntax"])
def test_cli_exit_code_2_no_traceback_no_results(case: str, suite_dir: Path) -> None:
    text, line, fragment = CASES[case]
    (suite_dir / "suite.yaml").write_text(text)
    env = {**os.environ, "HARNESS_CACHE": str(suite_dir / "cache")}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("harness")), "run", "suite.yaml"],
        cwd=suite_dir, capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"suite.yaml:{line}:" in " ".join((proc.stderr + proc.stdout).split())
    assert not (suite_dir / "results").exists()
