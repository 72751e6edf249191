"""Launch one run as a DDP job with torchrun (``python -m torch.distributed.run``), and the per-rank entry.

A task with ``distributed: {nproc_per_node: N, nnodes: M}`` is launched, by the local or the Ray executor,
as ``torchrun --nproc-per-node N --nnodes M ... -m harness.execute.torchrun SPEC.json RESULT.json CACHE``
instead of the plain worker. Every rank runs ``harness.run.runner.execute_run`` inside a process group
(gloo on CPU, nccl on CUDA; see ``harness.run.distributed`` for what DDP changes in the run); rank 0
alone measures and writes the result row. One node (``nnodes: 1``) rendezvous on 127.0.0.1; several nodes
need a launcher that starts one torchrun per node with its ``node_rank`` and the address of node 0: the
Ray executor does this with a placement group (``harness.execute.ray_executor._run_nodes_remote``).

Failures: ``--max-restarts 0``. A rank whose run fails exits non-zero (after rank 0 has written its row),
so torchrun stops the ranks that may be waiting for it in a collective; the executor then uses rank 0's
row, or records an ``error`` row with the log tail when rank 0 wrote none. Divergence is not such a
failure: the loss is averaged over the ranks, so every rank sees it at the same step.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.config.schema import Distributed
from harness.plan.planner import RunSpec


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def torchrun_command(
    spec_path: Path, result_path: Path, cache_dir: Path, setting: Distributed, *,
    node_rank: int = 0, master_addr: str = "127.0.0.1", master_port: int | None = None,
) -> list[str]:
    """The torchrun command line for one node of the job (static rendezvous at master_addr:master_port)."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        f"--nproc-per-node={setting.nproc_per_node}",
        f"--nnodes={setting.nnodes}",
        f"--node-rank={node_rank}",
        f"--master-addr={master_addr}",
        f"--master-port={master_port or free_port(master_addr)}",
        "--max-restarts=0",
        "-m", "harness.execute.torchrun", str(spec_path), str(result_path), str(cache_dir),
    ]


def run_torchrun(
    spec: RunSpec, log: Path, cache_dir: Path, timeout: float | None = None, *,
    node_rank: int = 0, master_addr: str = "127.0.0.1", master_port: int | None = None,
) -> dict[str, Any] | None:
    """Run one node of ``spec``'s DDP job; returns the row (node 0) or None (other nodes, on success).

    Like ``harness.execute.process.run_one``: a job that dies without a result gives a failure row.
    """
    from harness.execute.launcher import death_reason, failure_row, plugin_note
    from harness.execute.worker import die_with_parent
    from harness.store.store import atomic_write_text

    setting = spec.run.distributed
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if is_loopback(master_addr):
        # Every rank is on this machine (one node, or nodes simulated on one machine): gloo would otherwise
        # bind the interface of the hostname's address, which may not exist or reach 127.0.0.1. On a real
        # cluster master_addr is node 0's routable IP and gloo must use the interface that reaches it, so
        # nothing is forced there (set GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME on the nodes if needed).
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory(prefix="harness-ddp-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        atomic_write_text(spec_path, json.dumps({"run_id": spec.run_id, "config": spec.config}))
        cmd = torchrun_command(spec_path, result_path, cache_dir, setting, node_rank=node_rank, master_addr=master_addr, master_port=master_port)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as log_fh:
            log_fh.write(f"$ {' '.join(cmd)}\n")
            log_fh.flush()
            proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()  # the ranks die with their agent (PR_SET_PDEATHSIG in main)
                proc.wait()
                return failure_row(spec, f"timed out after {timeout:g} s{plugin_note(spec)} (log: {log})")
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if result_path.exists():
            return json.loads(result_path.read_text())
        if node_rank != 0 and code == 0:
            return None
        return failure_row(spec, f"torchrun ({_label(setting)}, node {node_rank}) {death_reason(code, log)}")


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name
        return address == "localhost"


def _label(setting: Distributed) -> str:
    from harness.run.distributed import label

    return label(setting)


def main(argv: list[str]) -> int:
    """One rank: join the process group, run, and (rank 0) write the row."""
    from harness.execute.worker import die_with_parent

    die_with_parent()  # the rank dies with its torchrun agent
    spec_path, result_path, cache_dir = map(Path, argv)
    spec = json.loads(spec_path.read_text())
    import torch

    from harness.config.run_config import RunConfig
    from harness.run import distributed
    from harness.run.runner import execute_run
    from harness.store.store import atomic_write_text

    run = RunConfig.from_json(spec["config"])
    distributed.init_from_env(torch.device(run.device).type)
    try:
        row = execute_run(run, spec["run_id"], cache_dir)
        rank = distributed.rank()
        if rank == 0:
            atomic_write_text(result_path, json.dumps(row, default=str))
    finally:
        distributed.shutdown()
    if row["status"] not in ("ok", "diverged"):
        print(f"rank {rank}: {row['status']}: {row['error']}", file=sys.stderr, flush=True)
        return 1  # maybe this rank's failure alone: make torchrun stop the ranks waiting in a collective
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
