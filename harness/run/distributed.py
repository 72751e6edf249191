"""DistributedDataParallel hooks for one run launched by torchrun (``python -m torch.distributed.run``).

A task with ``distributed: {nproc_per_node: N, nnodes: M}`` runs as W = N x M processes (ranks); each
builds the same model from the same seed, and the shared training loop (``harness.run.train``):

- wraps the model in ``DistributedDataParallel`` for the forward of each training step (backend gloo on
  CPU, nccl on CUDA), so gradients are averaged over the ranks after every backward;
- gives each rank a distinct shard of each step's batch with DistributedSampler semantics: the family
  generates the global batch of ``train.batch_size`` from the (seed, step) stream, identically on every
  rank, and rank r keeps samples ``r, r + W, r + 2W, ...``. The global batch is therefore the one a
  single-process run sees, and with equal per-sample loss weights the averaged gradient equals its
  gradient (up to float summation order);
- averages the logged loss over the ranks (every rank then takes the same divergence decision).

Evaluation metrics are all-reduced (``all_reduce_mean``; families may shard their evaluation and sum,
as the sequence family does). Measurement (latency, memory, FLOPs) stays single-device: rank 0 measures
the unwrapped model alone, and the row says so (``distributed`` column, ``latency_protocol``).

Nothing here does anything unless ``torch.distributed`` has been initialised (by ``init_from_env``,
which the torchrun entry ``harness.execute.torchrun`` calls), so single-process runs are untouched.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist


def label(setting: Any) -> str:
    """The ``distributed`` column: ``ddp:<nproc_per_node>x<nnodes>``, or ``none`` (``setting``: the task's
    ``distributed:`` section, or None)."""
    if not setting:
        return "none"
    return f"ddp:{setting.nproc_per_node}x{setting.nnodes}"


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device_type: str, timeout_s: float = 1800.0) -> torch.device | None:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR...).

    Returns this rank's device for CUDA (``cuda:<LOCAL_RANK>``, made current) or None on CPU.
    """
    backend = "nccl" if device_type == "cuda" else "gloo"
    device = None
    if device_type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)``; DDP broadcasts rank 0's parameters, so ranks start equal."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(model, device_ids=[index], output_device=index)
    return DistributedDataParallel(model)


@contextmanager
def swapped(exp: Any, ddp: torch.nn.Module | None) -> Iterator[None]:
    """Run ``exp.loss`` through the DDP wrapper; outside it ``exp.model`` stays the plain model (so the
    family's hooks, evaluation and the measurement see attributes, not ``.module``)."""
    if ddp is None:
        yield
        return
    plain = exp.model
    exp.model = ddp
    try:
        yield
    finally:
        exp.model = plain


def shard_batch(batch: Any, global_batch: int, rank_: int | None = None, world: int | None = None) -> Any:
    """This rank's shard of a global batch (DistributedSampler order: samples rank, rank + W, ...).

    Walks tensors, tuples, lists, dicts and dataclasses; a tensor (or list) whose leading size is the
    global batch size is sliced, anything else (a scalar, a shared mask) is passed through unchanged.
    """
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    if w == 1:
        return batch
    if global_batch % w:
        raise ValueError(f"train.batch_size {global_batch} is not divisible by the {w} distributed ranks")

    def cut(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x[r::w] if x.dim() >= 1 and x.shape[0] == global_batch else x
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return dataclasses.replace(x, **{f.name: cut(getattr(x, f.name)) for f in dataclasses.fields(x) if f.init})
        if isinstance(x, dict):
            return type(x)((k, cut(v)) for k, v in x.items())
        if isinstance(x, tuple) and hasattr(x, "_fields"):  # namedtuple
            return type(x)(*(cut(v) for v in x))
        if isinstance(x, (tuple, list)):
            if isinstance(x, list) and len(x) == global_batch and not all(isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == global_batch for v in x):
                return x[r::w]  # a per-sample list (e.g. detection targets)
            return type(x)(cut(v) for v in x)
        return x

    return cut(batch)


def mean_scalar(value: float, device: torch.device | None = None) -> float:
    """The mean of ``value`` over the ranks (every rank gets it)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device(device))
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def all_reduce_mean(metrics: dict[str, float], device: torch.device | None = None) -> dict[str, float]:
    """Every metric averaged over the ranks (in sorted key order, so all ranks agree on the layout)."""
    if not active() or not metrics:
        return metrics
    keys = sorted(metrics)
    t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=_collective_device(device))
    dist.all_reduce(t)
    return {k: float(v) / world_size() for k, v in zip(keys, t.tolist())}


def _collective_device(device: torch.device | None) -> torch.device:
    if dist.get_backend() == "nccl":
        return device if device is not None and device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
