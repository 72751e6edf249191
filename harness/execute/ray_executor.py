"""The Ray executor: every planned run is a Ray task with its resource request; Ray places them.

``harness run SUITE --executor ray [--address auto|HOST:PORT] [--gpus-per-run 1]``. Without
``--address`` a local Ray instance is started (127.0.0.1 only, no dashboard) and stopped at the end.

- Scheduling is Ray's own: each run asks for ``num_cpus`` (``--cpus-per-run``, default the suite's
  ``measure.cpu_threads`` or 1), ``num_gpus`` (``--gpus-per-run``, default 1 on ``--device cuda`` else 0)
  and optionally ``memory`` (``--memory-per-run`` GiB), each times ``nproc_per_node`` for a torchrun
  (DDP) run; Ray queues what does not fit and spreads the rest over GPUs and nodes. Ray sets
  ``CUDA_VISIBLE_DEVICES`` for the task, and the run process inherits it.
- Inside the task the run executes exactly as with the local executor, through
  ``harness.execute.process.run_one``: a fresh process per run (or torchrun for a DDP task), never
  ``execute_run`` in the Ray worker itself, because Ray reuses worker processes and one model per process
  is the harness's rule (allocator and cuDNN state must not leak between runs); ``max_calls=1`` also
  gives every run a fresh Ray worker, so no state (a forkserver started with another task's
  ``CUDA_VISIBLE_DEVICES``) carries over from one run to the next.
- Workers never write the results folder (it may not even be on their node): the row and the run's log
  come back to the driver as the task's return value; the driver writes them through the same
  ``ResultStore`` (atomic run files, merged tables under a lock) as the local executor, and resume is
  the same (``harness.execute.launcher``: runs already stored are not submitted).
- A worker that dies mid-run (killed process, lost node) is a system failure: Ray resubmits the task up
  to ``--max-retries`` times (default 2); after that the run is recorded as ``error`` with Ray's reason
  and the sweep goes on. A run that fails by itself (error, OOM, divergence, timeout) is a row, not an
  exception, and is not retried.
- A multi-node DDP run (``distributed.nnodes: M > 1``) is one resource-free coordinator task
  (``_run_nodes_remote``) that reserves M bundles of the per-node request in a ``STRICT_SPREAD``
  placement group (M distinct nodes), learns node 0's address there (``_master_address``) and runs one
  node task per bundle, each a torchrun with its ``node_rank``; node 0's row comes back. A node task
  that dies makes the others pointless, so they are cancelled and the whole job is resubmitted within
  the same ``--max-retries``. A cluster with fewer than M nodes that can hold a bundle is refused
  before anything runs (``check_cluster``), since such a placement group would wait forever.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Iterable

from rich.markup import escape

from harness.errors import HarnessError
from harness.execute.launcher import ExecutionSummary, Launcher, Recorder, failure_row
from harness.plan.planner import RunSpec
from harness.store.store import ResultStore, atomic_write_text

INSTALL_HINT = 'the Ray executor needs Ray: pip install -e ".[ray]"'
DEFAULT_MAX_RETRIES = 2


def available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def resources(spec: RunSpec, *, cpus_per_run: float | None = None, gpus_per_run: float | None = None, memory_per_run: float | None = None) -> dict[str, Any]:
    """The Ray resource request of one run (per process, times the DDP processes on the node)."""
    r = spec.run
    procs = r.distributed.nproc_per_node if r.distributed is not None else 1
    cpus = cpus_per_run if cpus_per_run is not None else (r.measure.cpu_threads or 1)
    gpus = gpus_per_run if gpus_per_run is not None else (1 if r.device == "cuda" else 0)
    request: dict[str, Any] = {"num_cpus": cpus * procs, "num_gpus": gpus * procs}
    if memory_per_run:  # GiB
        request["memory"] = int(memory_per_run * 2**30 * procs)
    return request


def nnodes(spec: RunSpec) -> int:
    return spec.run.distributed.nnodes if spec.run.distributed is not None else 1


def bundle(request: dict[str, Any]) -> dict[str, float]:
    """A task's resource request (``resources``) as a placement-group bundle (the names Ray's nodes list)."""
    names = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
    return {names[key]: value for key, value in request.items() if value}


class NodeLost(RuntimeError):
    """A node task of a multi-node run died. The other nodes cannot go on without it, so the coordinator
    raises this and Ray resubmits the whole job (``retry_exceptions=[NodeLost]``, up to ``max_retries``)."""


def _run_remote(
    run_id: str, config: dict[str, Any], cache_dir: str, timeout: float | None, cwd: str,
    node_rank: int = 0, master: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """The Ray task body: one run in its own process (``harness.execute.process.run_one``); or, with
    ``master`` (node 0's address), node ``node_rank``'s torchrun of a multi-node run (row None on nodes > 0)."""
    from harness.execute.process import run_one
    from harness.execute.torchrun import run_torchrun

    if cwd and os.path.isdir(cwd):  # relative paths in a config resolve as they do for the driver
        os.chdir(cwd)
    spec = RunSpec.from_json(run_id, config)
    with tempfile.TemporaryDirectory(prefix="harness-ray-") as tmp:
        scratch = ResultStore(tmp).create()  # the log lands here, on the worker, and travels back
        log_path = scratch.log_path(run_id)
        if master is None:
            row = run_one(spec, scratch, Path(cache_dir), timeout)
        else:
            row = run_torchrun(spec, log_path, Path(cache_dir), timeout, node_rank=node_rank, master_addr=master[0], master_port=master[1])
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
    return {"row": row, "log": log, **_where()}


def _where() -> dict[str, Any]:
    """Where a Ray task ran (host, Ray node id, worker pid), for the header of the log it sends back."""
    import socket

    import ray

    return {"host": socket.gethostname(), "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


def _header(result: dict[str, Any]) -> str:
    return f"ray task on {result['host']}, Ray node {result['node']} (worker pid {result['pid']})"


def _master_address() -> tuple[str, int]:
    """Node 0's IP and a free port there, for the torchrun rendezvous of a multi-node run.

    Runs in bundle 0 of the run's placement group, so on the node where node rank 0 will run. The node
    tasks take its result as an argument: Ray starts none of them before it is known (no polling), and if
    it fails they all fail with it. The port is free when picked, not reserved (as for ``free_port`` on
    one node): if another process takes it first, node 0's torchrun fails at once and the other nodes'
    when torchrun's static rendezvous gives up waiting for it (600 s), and the run is an ``error`` row.
    """
    import ray

    from harness.execute.torchrun import free_port

    ip = ray.util.get_node_ip_address()
    return ip, free_port(ip)


def _run_nodes_remote(run_id: str, config: dict[str, Any], cache_dir: str, timeout: float | None, cwd: str, request: dict[str, Any]) -> dict[str, Any]:
    """The Ray task body of a multi-node run: one node task per bundle of a STRICT_SPREAD placement group.

    This coordinator asks for no resources (it only waits); each bundle holds one node's share
    (``request``, already times ``nproc_per_node``) and the node task in it asks for exactly that. The
    placement group is removed however this ends (and shares the coordinator's fate if it is killed).
    Returns node 0's row, with every node's log.
    """
    from ray.util.placement_group import placement_group, remove_placement_group

    spec = RunSpec.from_json(run_id, config)
    group = placement_group([bundle(request)] * nnodes(spec), strategy="STRICT_SPREAD")
    try:
        master = _task(_master_address, num_cpus=0).options(scheduling_strategy=_in_bundle(group, 0)).remote()
        refs = [
            _task(_run_remote, max_calls=1)
            .options(**request, max_retries=0, scheduling_strategy=_in_bundle(group, i), name=f"harness:{spec.label}:node{i}")
            .remote(run_id, config, cache_dir, timeout, cwd, i, master)
            for i in range(nnodes(spec))
        ]
        results = _gather(refs)
    finally:
        remove_placement_group(group)
    log = "\n".join(f"# node {i}: {_header(r)}\n{r['log']}" for i, r in enumerate(results))
    return {"row": results[0]["row"], "log": log, **_where()}


@functools.cache
def _task(function: Any, **options: Any) -> Any:
    """``ray.remote(**options)(function)``, made once per process (each would export the function again)."""
    import ray

    return ray.remote(**options)(function)


def _in_bundle(group: Any, index: int) -> Any:
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)


def _gather(refs: list[Any]) -> list[dict[str, Any]]:
    """Every node task's result, in node order; raises ``NodeLost`` as soon as one dies, after cancelling
    the others (they would otherwise wait for it until the rendezvous or a collective times out)."""
    import ray

    results, waiting = {}, list(refs)
    while waiting:
        [ref], waiting = ray.wait(waiting, num_returns=1)
        try:
            results[ref] = ray.get(ref)
        except ray.exceptions.RayError as exc:
            for other in waiting:
                ray.cancel(other, force=True)
            raise NodeLost(f"node {refs.index(ref)} of {len(refs)} died: {type(exc).__name__}: {_reason(exc)}") from None
    return [results[ref] for ref in refs]


def _reason(exc: Exception) -> str:
    """The first line of what Ray says about a failed task (for a task that raised: its exception)."""
    import ray

    text = str(exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else exc).strip()
    return text.splitlines()[0] if text else ""


def check_cluster(specs: Iterable[RunSpec], requests: dict[str, dict[str, Any]]) -> None:
    """Refuse multi-node runs the connected cluster cannot place, before anything runs.

    A STRICT_SPREAD placement group needs ``nnodes`` distinct alive nodes that can each hold a bundle;
    with fewer it would not fail but wait for nodes that never come.
    """
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    problems = {}
    for spec in specs:
        need, share = nnodes(spec), bundle(requests[spec.run_id])
        fit = sum(all(total.get(k, 0) >= v for k, v in share.items()) for total in nodes)
        if need > fit:
            each = ", ".join(f"{k}={v:g}" for k, v in share.items())
            problems.setdefault(spec.run.task, f"task {spec.run.task!r} needs {need} Ray nodes with {each} each (distributed.nnodes: {need}), the cluster has {fit} (of {len(nodes)} alive)")
    if problems:
        raise HarnessError(
            "; ".join(problems.values()) + "; join a cluster with enough nodes (--address HOST:PORT; the Ray instance "
            "started without --address has one node), or lower nnodes or the per-run resources"
        )


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Refuse a HOST:PORT nobody listens on: ``ray.init`` would wait for its GCS for many minutes."""
    import socket

    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return  # "auto" (Ray reads the address file) and client URLs: Ray's own errors are prompt
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise HarnessError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); check the "
                           "address (ray status on the head node prints it), or leave --address out to start a local "
                           "Ray instance for this run") from None


def connect(address: str | None) -> bool:
    """Connect to the cluster at ``address`` or start a local instance; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:  # no cluster there: Ray's own message, and what to do
            hint = ("start one on this machine first (ray start --head) or name its HOST:PORT" if address == "auto"
                    else "check the address (ray status on the head node prints it)")
            raise HarnessError(f"--address {address}: no Ray cluster to join ({exc}); {hint}, or leave --address out to "
                               "start a local Ray instance for this run") from None
        return False
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, _node_ip_address="127.0.0.1")
    return True


class RayLauncher(Launcher):
    options: ClassVar[dict[str, Any]] = {"address": None, "gpus_per_run": None, "cpus_per_run": None,
                                         "memory_per_run": None, "max_retries": DEFAULT_MAX_RETRIES}

    @classmethod
    def check(cls, specs: list[RunSpec], **_: Any) -> None:
        if not available():
            raise HarnessError(INSTALL_HINT)

    def launch(self, todo: list[RunSpec], summary: ExecutionSummary) -> None:
        """Submit every pending run as a Ray task; store rows in the order they finish."""
        import ray

        opts, max_retries = self.settings, self.settings["max_retries"]
        requests = {s.run_id: resources(s, cpus_per_run=opts["cpus_per_run"], gpus_per_run=opts["gpus_per_run"],
                                        memory_per_run=opts["memory_per_run"]) for s in todo}
        started_here = connect(opts["address"])
        try:
            check_cluster([s for s in todo if nnodes(s) > 1], requests)
            cache, cwd = str(self.cache_dir.resolve()), os.getcwd()
            submitted = {_submit(spec, requests[spec.run_id], (cache, self.run_timeout(spec), cwd), max_retries): spec
                         for spec in todo}
            waiting = list(submitted)
            with Recorder(self.store, summary, self.console, total=len(todo)) as recorder:
                recorder.describe(f"[bold]{len(todo)} runs on ray")
                try:
                    while waiting:
                        ready, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
                        for ref in ready:
                            spec = submitted[ref]
                            recorder.record(spec, _collect(ref, spec, self.store, max_retries))
                            recorder.describe(f"[bold]{escape(spec.label)}[/bold] done, {len(waiting)} queued or running")
                except KeyboardInterrupt:
                    summary.interrupted = True
                    for ref in waiting:
                        ray.cancel(ref, force=True)
                    self.console.print("[yellow]interrupted; finished runs are stored, rerun to resume")
        finally:
            if started_here:
                ray.shutdown()


def _submit(spec: RunSpec, request: dict[str, Any], args: tuple[str, float | None, str], max_retries: int) -> Any:
    """Start one run as a Ray task (a coordinator without resources for a multi-node run); its ref."""
    name = f"harness:{spec.label}"
    if nnodes(spec) > 1:
        coordinator = _task(_run_nodes_remote, num_cpus=0)
        return coordinator.options(max_retries=max_retries, retry_exceptions=[NodeLost], name=name).remote(spec.run_id, spec.config, *args, request)
    remote = _task(_run_remote, max_calls=1)
    return remote.options(**request, max_retries=max_retries, retry_exceptions=False, name=name).remote(spec.run_id, spec.config, *args)


def _collect(ref: Any, spec: RunSpec, store: ResultStore, max_retries: int) -> dict[str, Any]:
    """The row of a finished task (its log written beside it), or an ``error`` row with Ray's reason."""
    import ray

    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as exc:  # the worker or node died on every attempt, or Ray gave up
        message = f"ray: {type(exc).__name__} after {max_retries + 1} attempt(s) (max_retries={max_retries}): {_reason(exc)}"
        atomic_write_text(store.log_path(spec.run_id), f"{message}\n\n{exc}\n")
        return failure_row(spec, message[:2000])
    atomic_write_text(store.log_path(spec.run_id), f"# {_header(result)}\n{result['log']}")
    return result["row"]
