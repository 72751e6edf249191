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
