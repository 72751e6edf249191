"""torchrun / DDP: a 2-process gloo run on CPU matches the single-process run (same global batch).

``SUITE`` and ``assert_ddp_matches_single`` are shared with the multi-node test (test_ray_multinode.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.config.schema import Distributed
from harness.run.distributed import label, shard_batch

SUITE = """suite: ddp
seeds: [0]
train: {steps: 6, batch_size: 8, eval_batch_size: 32, warmup_steps: 1}
measure: {batch_size: 2, warmup_iters: 1, warmup_s: 0.0, min_iters: 2, min_time_s: 0.0, max_iters: 3, cpu_threads: 1}
variants: [attention]
tasks:
  - name: single
    family: sequence
    dataset: mqar
    data: {seq_len: 16, num_kv: 2, key_vocab: 8, value_vocab: 8, n_eval: 16}
    model: {d_model: 16, n_layers: 1, n_heads: 2}
  - name: ddp
    family: sequence
    dataset: mqar
    data: {seq_len: 16, num_kv: 2, key_vocab: 8, value_vocab: 8, n_eval: 16}
    model: {d_model: 16, n_layers: 1, n_heads: 2}
    distributed: {%(distributed)s}
"""


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_CACHE": str(cwd / "cache"), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(Path(sys.executable).with_name("harness")), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_shard_batch_is_distributed_sampler_order() -> None:
    tokens, targets = torch.arange(8).view(8, 1), torch.arange(8) * 10
    shards = [shard_batch((tokens, {"y": targets, "scale": torch.tensor(2.0)}), 8, r, 2) for r in range(2)]
    assert shards[0][0].flatten().tolist() == [0, 2, 4, 6] and shards[1][0].flatten().tolist() == [1, 3, 5, 7]
    assert shards[1][1]["y"].tolist() == [10, 30, 50, 70] and float(shards[1][1]["scale"]) == 2.0
    assert shard_batch([{"box": 1}, {"box": 2}], 2, 1, 2) == [{"box": 2}]  # per-sample lists are split too
    with pytest.raises(ValueError, match="not divisible"):
        shard_batch(tokens, 8, 0, 3)
    assert label(None) == "none" and label(Distributed(nproc_per_node=2, nnodes=1)) == "ddp:2x1"


def test_batch_must_split_evenly(tmp_path: Path) -> None:
    (tmp_path / "ddp.yaml").write_text((SUITE % {"distributed": "nproc_per_node: 2"}).replace("batch_size: 8,", "batch_size: 7,"))
    out = harness("validate", "ddp.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "divisible by nproc_per_node x nnodes = 2" in out.stderr, out.stderr


def assert_ddp_matches_single(results: Path, label_: str) -> str:
    """The ``ddp`` task's row (``label_``, e.g. ddp:2x1) equals the ``single`` task's up to float summation
    order; returns the ddp run's log."""
    df = pd.read_parquet(results / "results.parquet").set_index("task")
    single, ddp = df.loc["single"], df.loc["ddp"]
    assert (single["status"], ddp["status"]) == ("ok", "ok"), ddp["error"]
    assert (single["distributed"], ddp["distributed"]) == ("none", label_)
    assert f"single-device: rank 0 of {label_}" in ddp["latency_protocol"]
    assert "single-device" not in single["latency_protocol"]
    for metric in ("final_loss", "eval_loss", "accuracy"):
        assert ddp[metric] == pytest.approx(single[metric], rel=1e-4, abs=1e-5), metric
    assert ddp["params"] == single["params"] and ddp["flops_fwd"] == single["flops_fwd"]  # rank 0, unwrapped
    return (results / "logs" / f"{ddp['config_hash']}.log").read_text()


def test_torchrun_two_ranks_match_single_process(tmp_path: Path) -> None:
    (tmp_path / "ddp.yaml").write_text(SUITE % {"distributed": "nproc_per_node: 2, nnodes: 1"})
    dry = harness("run", "ddp.yaml", "--dry-run", cwd=tmp_path)
    ids = [line.split()[0] for line in dry.stdout.splitlines() if "/seed" in line]
    assert len(set(ids)) == 2, "the distributed setting must change the run id"

    out = harness("run", "ddp.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    log = assert_ddp_matches_single(tmp_path / "results" / "ddp", "ddp:2x1")
    assert "torch.distributed.run --nproc-per-node=2" in log


def test_local_executor_refuses_several_nodes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness import cli

    (tmp_path / "ddp.yaml").write_text(SUITE % {"distributed": "nproc_per_node: 1, nnodes: 2"})
    result = CliRunner().invoke(cli.app, ["run", str(tmp_path / "ddp.yaml"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 2
    assert "use --executor ray --address HOST:PORT (a Ray cluster with at least 2 nodes)" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()
