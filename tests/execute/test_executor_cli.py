"""``--executor ray`` without Ray installed: exit 2 with the install command, nothing written."""

from __future__ import annotations

from pathlib import Path

SUITE = """suite: noray
seeds: [0]
train: {steps: 1, batch_size: 8}
variants: [attention]
tasks:
  - {name: recall, family: sequence, dataset: mqar, data: {seq_len: 16, num_kv: 2, key_vocab: 8, value_vocab: 8}, model: {d_model: 16, n_layers: 1}}
"""


def test_missing_ray_exits_2_with_install_hint(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from harness import cli
    from harness.execute import ray_executor

    (tmp_path / "s.yaml").write_text(SUITE)
    monkeypatch.setattr(ray_executor, "available", lambda: False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["run", "s.yaml", "--executor", "ray"])
    assert result.exit_code == 2
    assert 'pip install -e ".[ray]"' in result.output.replace("\n", "")
    assert not (tmp_path / "results").exists()
