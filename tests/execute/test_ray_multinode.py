"""Multi-node DDP through the Ray executor on a simulated 2-node Ray cluster (``ray.cluster_utils.Cluster``,
two raylets on this machine, loopback only): a 1 x 2-node torchrun job matches the single-process run,
a node task that dies fails the job at once (the other nodes are cancelled, Ray then resubmits the job),
and a task that needs more nodes than the cluster has is refused up front (exit 2), not left waiting."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray")

from test_ray_executor import RAY_ENV, env_for, harness  # noqa: E402  (after the skip: it needs Ray too)
from test_torchrun import SUITE, assert_ddp_matches_single  # noqa: E402


def _address_file_state() -> tuple[bool, str | None]:
    """Whether Ray's default temp folder exists, and its cluster-address file's text (None if absent)."""
    from ray._common.utils import get_default_ray_temp_dir, get_ray_address_file

    folder, file = Path(get_default_ray_temp_dir()), Path(get_ray_address_file(None))
    return folder.exists(), file.read_text() if file.exists() else None


@pytest.fixture(scope="module")
def two_nodes():
    """Two Ray nodes of 1 CPU each on 127.0.0.1 (a head and a worker node), no dashboard.

    ``Cluster`` writes its address to ``<Ray's default temp folder>/ray_current_cluster`` whatever
    ``temp_dir`` the head is given (and deletes it on shutdown). That folder is ``/tmp/ray``, which
    exists only on machines that ran Ray before, and a file left there is what ``ray.init(address="auto")``
    would join later. ``RAY_TMPDIR`` moves the default into our own temp folder for the fixture's life,
    so the machine's ``/tmp/ray`` is neither needed nor touched (checked at teardown)."""
    from ray.cluster_utils import Cluster

    before = _address_file_state()
    temp = tempfile.mkdtemp(prefix="rayn", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20}
    with pytest.MonkeyPatch.context() as env:  # the raylets read these from the environment at start
        for key, value in RAY_ENV.items():
            env.setenv(key, value)
        env.setenv("RAY_TMPDIR", temp)
        (Path(temp) / "ray").mkdir()  # Ray's default temp folder under RAY_TMPDIR, where the address file goes
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False, "temp_dir": temp})
        try:
            cluster.add_node(**node)
            cluster.wait_for_nodes()
            yield cluster.address
        finally:
            cluster.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
    assert _address_file_state() == before, "the fixture changed Ray's default temp folder (/tmp/ray)"


def test_two_nodes_match_single_process(tmp_path: Path, two_nodes: str) -> None:
    (tmp_path / "ddp.yaml").write_text(SUITE % {"distributed": "nproc_per_node: 1, nnodes: 2"})
    out = harness("run", "ddp.yaml", "--executor", "ray", "--address", two_nodes, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    log = assert_ddp_matches_single(tmp_path / "results" / "ddp", "ddp:1x2")
    for rank in (0, 1):  # both nodes' logs came back; each ran torchrun with its node rank at node 0's address
        assert f"--nnodes=2 --node-rank={rank} --master-addr=127.0.0.1" in log
    nodes = re.findall(r"^# node (\d): ray task on .*, Ray node (\w+) ", log, re.M)
    assert [rank for rank, _ in nodes] == ["0", "1"] and nodes[0][1] != nodes[1][1], "STRICT_SPREAD: one Ray node each"


def test_more_nodes_than_the_cluster_has_is_refused(tmp_path: Path, two_nodes: str) -> None:
    (tmp_path / "ddp.yaml").write_text(SUITE % {"distributed": "nproc_per_node: 1, nnodes: 4"})
    out = harness("run", "ddp.yaml", "--executor", "ray", "--address", two_nodes, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "task 'ddp' needs 4 Ray nodes with CPU=1 each (distributed.nnodes: 4), the cluster has 2" in " ".join(out.stderr.split())
    assert not (tmp_path / "results" / "ddp").exists()  # nothing partial written


# A driver of its own: Ray reads RAY_ENV when it is imported, which in this process happened before. It writes
# its findings to a file of its own: Ray's error thread prints worker deaths to the driver's stdout at any moment,
# even with log_to_driver=False, and can land in the middle of a printed line.
DEAD_NODE = """
import os, sys, time
from pathlib import Path
import ray
from harness.execute.ray_executor import NodeLost, _gather

ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False, configure_logging=False)
waiter = ray.remote(num_cpus=1, max_retries=0)(lambda: time.sleep(300))  # a node waiting for its peer
dying = ray.remote(num_cpus=1, max_retries=0)(lambda: os._exit(1))  # a node whose worker dies
refs, start, found = [waiter.remote(), dying.remote()], time.time(), []
try:
    _gather(refs)
except NodeLost as exc:
    found.append(f"raised: {exc}")
try:
    ray.get(refs[0], timeout=60)
except ray.exceptions.TaskCancelledError:
    found.append("other node cancelled")
found.append(f"after {time.time() - start:.0f} s")
Path(sys.argv[2]).write_text("\\n".join(found))
"""


def test_a_dead_node_task_fails_the_job_at_once(tmp_path: Path, two_nodes: str) -> None:
    found = tmp_path / "found.txt"
    out = subprocess.run([sys.executable, "-c", DEAD_NODE, two_nodes, str(found)], capture_output=True, text=True, env=env_for(tmp_path), timeout=120)
    assert out.returncode == 0 and found.exists(), out.stdout + out.stderr
    text = found.read_text()
    assert text.startswith("raised: node 1 of 2 died: WorkerCrashedError"), text
    assert "\nother node cancelled\n" in text, text
    assert int(text.splitlines()[-1].split()[1]) < 60, text
