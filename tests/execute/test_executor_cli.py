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


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound, never listening: a connect is refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_ray_address_exits_2_at_once(tmp_path: Path, monkeypatch) -> None:
    """A HOST:PORT nobody listens on is refused before ray.init (which would wait minutes for a GCS)."""
    import pytest
    from typer.testing import CliRunner

    pytest.importorskip("ray")
    from harness import cli

    (tmp_path / "s.yaml").write_text(SUITE)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["run", "s.yaml", "--executor", "ray", "--address", f"127.0.0.1:{_closed_port()}"])
    assert result.exit_code == 2, result.output
    assert "no Ray cluster answers there" in " ".join(result.output.split())
    assert not (tmp_path / "results").exists()


def test_address_auto_without_a_cluster_exits_2(tmp_path: Path, monkeypatch) -> None:
    """``--address auto`` on a machine where no cluster was started (no address file in Ray's temp folder)."""
    import pytest
    from typer.testing import CliRunner

    pytest.importorskip("ray")
    from harness import cli

    (tmp_path / "s.yaml").write_text(SUITE)
    (tmp_path / "raytmp").mkdir()
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "raytmp"))  # an empty Ray temp folder: nothing to find
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.app, ["run", "s.yaml", "--executor", "ray", "--address", "auto"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--address auto: no Ray cluster to join" in text and "ray start --head" in text
    assert not (tmp_path / "results").exists()
