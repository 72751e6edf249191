"""Build-once artefacts cached under ``ctx.cache_dir`` by a hash of what determines them: generated data
sets (pde, theory), a trained tokenizer and FID classifier (argen). The one cache writer of every family.

Several runs of a suite may start at once (one subprocess each): the first takes an exclusive file lock
and builds, the others wait and then load; the file is written to a temporary name and renamed, so a
reader never sees a partial file. (``fcntl`` locks: POSIX hosts, which is where the harness runs.)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

T = TypeVar("T")


def isolated_rng(device: torch.device):
    """Seed inside without moving the caller's RNG streams: a cache hit and a miss leave the run identical."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def config_key(config: Any, algorithm: str = "sha256") -> str:
    """16 hex digits of ``algorithm`` over the canonical JSON of a JSON-able config (key order does not
    matter). Part of the file names: a family keeps its algorithm so existing caches stay valid."""
    return hashlib.new(algorithm, json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_or_build(path: Path, build: Callable[[], T]) -> tuple[T, bool]:
    """``(artefact, was_cached)``: load ``path`` if it exists, else ``build()`` it (tensors, or dicts, lists
    and tuples of them) and write it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True), True
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():  # another run built it while we waited
            return torch.load(path, map_location="cpu", weights_only=True), True
        artefact = build()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(artefact, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return artefact, False
