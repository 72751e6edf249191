"""Timing stays honest when several runs share one device (``harness run --jobs N``).

Small models leave an H100 idle most of the time (kernel launches dominate), so the local executor can
train several runs at once on one GPU. Their timings must not see each other, so the runs share the
device through a writer-preferring reader/writer lock on two files: every run process holds the device
*shared* from its start to its end (data, training, evaluation, tokenizers: all its device work), lets go
for a moment between training steps (``yield_point``), and takes it *exclusively* for every latency
measurement and for its first training step (lazy init, cuDNN algorithm search and Triton autotuning
see an idle device, as they would alone). A waiting exclusive request holds the turnstile, so new shared
holders queue behind it and it waits at most one training step, or one evaluation, of each other run.

Written by hand: ``fcntl.flock`` is the only cross-process lock that dies with its holder (a killed run
never wedges the others), and no library adds the writer preference on top of it.

Without ``HARNESS_DEVICE_LOCK`` in the environment (one run at a time) every function here is a no-op.
"""

from __future__ import annotations

import fcntl
import functools
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

ENV = "HARNESS_DEVICE_LOCK"
"""Folder of the two lock files; the executor sets it in each run process when runs share a device."""


class DeviceShare:
    """This process's side of the lock: ``hold`` (shared), ``yield_point``, ``exclusive``."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        # separate open file descriptions: flock locks belong to them, not to the process
        self._turnstile = os.open(folder / "turnstile.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self._device = os.open(folder / "device.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self.holding = False
        self._depth = 0

    def hold(self) -> None:
        """Take the device shared (through the turnstile, so a waiting exclusive request goes first)."""
        if self.holding or self._depth:
            return
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._device, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        self.holding = True

    def release(self) -> None:
        if self.holding:
            fcntl.flock(self._device, fcntl.LOCK_UN)
            self.holding = False

    def yield_point(self) -> None:
        """Let a waiting exclusive request in, then take the device shared again."""
        if self.holding:
            self.release()
            self.hold()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No other run's device work while inside; re-entrant; the shared hold comes back afterwards."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        was_holding = self.holding
        self.release()  # never wait on the turnstile while holding the device: that would deadlock
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._device, fcntl.LOCK_EX)
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                fcntl.flock(self._device, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        if was_holding:
            self.hold()


@functools.cache
def _share_in(folder: str) -> DeviceShare:
    return DeviceShare(Path(folder))


def current() -> DeviceShare | None:
    """This process's ``DeviceShare`` when ``HARNESS_DEVICE_LOCK`` is set, else None."""
    folder = os.environ.get(ENV)
    return _share_in(folder) if folder else None


def hold() -> None:
    share = current()
    if share is not None:
        share.hold()


def yield_point() -> None:
    share = current()
    if share is not None:
        share.yield_point()


def exclusive() -> AbstractContextManager[None]:
    share = current()
    return share.exclusive() if share is not None else nullcontext()


def sharing() -> bool:
    """Whether this process shares its device with other runs (recorded in the latency protocol)."""
    return current() is not None
