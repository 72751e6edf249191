"""Run ids are stable hashes of the resolved config; --only filters; sweeps expand to the full grid."""

from __future__ import annotations

from pathlib import Path

from harness.config.load import load_suite
from harness.plan.planner import plan

SUITE = """suite: s
seeds: [0, 1]
variants: [mamba, attention]
tasks:
  - name: recall
    family: sequence
    dataset: mqar
    data: {seq_len: 32, num_kv: 4}
    model: {d_model: 32, n_layers: 1}
    sweep: {data.seq_len: [32, 48], model.d_state: [4, 8]}
"""


def _plan(tmp_path: Path, text: str = SUITE, **kw):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return plan(load_suite(path), **kw)


def test_grid_size_and_order(tmp_path: Path) -> None:
    specs = _plan(tmp_path)
    assert len(specs) == 2 * 2 * 2 * 2  # seq_len x d_state x seeds x variants
    assert len({s.run_id for s in specs}) == len(specs)
    # variants of one seed and sweep point are adjacent, so partial suites keep complete pairs
    assert [s.config["variant"] for s in specs[:2]] == ["mamba", "attention"]
    assert specs[0].config["data"]["seq_len"] == 32 and specs[0].config["model"]["d_state"] == 4


def test_ids_are_stable_and_sensitive(tmp_path: Path) -> None:
    first = [s.run_id for s in _plan(tmp_path)]
    again = [s.run_id for s in _plan(tmp_path)]
    assert first == again
    changed = [s.run_id for s in _plan(tmp_path, SUITE.replace("d_model: 32", "d_model: 48"))]
    assert not set(first) & set(changed)
    # defaults written out explicitly do not change the id (the resolved config is hashed)
    explicit = [s.run_id for s in _plan(tmp_path, SUITE.replace("num_kv: 4}", "num_kv: 4, n_eval: 256}"))]
    assert explicit == first


def test_only_and_seeds(tmp_path: Path) -> None:
    specs = _plan(tmp_path, only="recall/att*", seeds=[3])
    assert {s.config["variant"] for s in specs} == {"attention"}
    assert {s.config["seed"] for s in specs} == {3}
    assert len(specs) == 4


ABLATED = """suite: s
seeds: [0]
variants: [mamba, attention, gated_cnn]
tasks:
  - name: copy
    family: sequence
    dataset: selective_copy
    data: {seq_len: 16, num_tokens: 4}
    model: {d_model: 16, n_layers: 1}
    ablate:
      base: mamba
      variants:
        - {name: lti, model: {selective: false}}
"""


def test_a_listed_ablation_base_is_one_of_the_tasks_variants_and_its_ablations_name_it(tmp_path: Path) -> None:
    """README's example: mamba is listed and ablated; it runs once, as a variant of the pairing (ablation
    "base", the id it always had), and the ablation's row names it and this task as its base."""
    specs = {s.run.variant: s for s in _plan(tmp_path, ABLATED)}
    assert sorted(specs) == ["attention", "gated_cnn", "lti", "mamba"]
    assert specs["mamba"].run.ablation == "base" and specs["mamba"].row_columns() == {"look": 0}
    assert specs["lti"].row_columns() == {"look": 0, "ablation_base": "mamba", "ablation_base_task": "copy"}
    assert specs["attention"].row_columns() == {"look": 0}


def test_include_base_false_names_the_task_that_runs_the_base() -> None:
    """theory.yaml's majority_delta_clip runs no base; its rows point at majority_spectral's ssm runs (the same
    resolved config at every sweep point), and the planned seed carries look 0 outside the id."""
    specs = plan(load_suite(Path(__file__).parents[2] / "suites" / "theory.yaml"), seeds=[0])
    clip = [s for s in specs if s.run.task == "majority_delta_clip"]
    assert {s.run.variant for s in clip} == {"delta_fixed", "clip_A"}  # the base is not run here
    assert {tuple(sorted(s.row_columns().items())) for s in clip} == {
        (("ablation_base", "ssm"), ("ablation_base_task", "majority_spectral"), ("look", 0))}
