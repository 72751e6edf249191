"""The device-share lock behind ``harness run --jobs``: a measurement never overlaps another run's work,
a waiting measurement is not starved by runs that keep stepping, a killed holder frees the device,
and with one run at a time nothing is locked."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from harness.measure import exclusive

CTX = mp.get_context("spawn")


def _trainer(folder: str, log: str, stop: str) -> None:
    """Hold the device shared and 'work' in short steps until ``stop`` exists; log each step's interval."""
    os.environ[exclusive.ENV] = folder
    exclusive.hold()
    with open(log, "a") as f:
        while not os.path.exists(stop):
            start = time.monotonic()
            time.sleep(0.002)
            f.write(f"{start} {time.monotonic()}\n")
            f.flush()
            exclusive.yield_point()


@pytest.fixture
def deadline():
    """Fail instead of hanging when a lock is never granted (SIGALRM interrupts the blocking flock)."""
    def expired(*_):
        raise TimeoutError("the device lock was not granted within 60 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _intervals(path: Path) -> list[tuple[float, float]]:
    return [tuple(map(float, line.split())) for line in path.read_text().splitlines()]


def _share(tmp_path: Path, monkeypatch) -> str:
    folder = str(tmp_path / "lock")
    monkeypatch.setenv(exclusive.ENV, folder)
    return folder


def test_exclusive_waits_for_and_excludes_every_shared_holder(tmp_path: Path, monkeypatch, deadline) -> None:
    folder = _share(tmp_path, monkeypatch)
    stop = str(tmp_path / "stop")
    logs = [tmp_path / f"trainer{i}.log" for i in range(3)]
    procs = [CTX.Process(target=_trainer, args=(folder, str(log), stop)) for log in logs]
    for p in procs:
        p.start()
    try:
        while not all(log.exists() and log.read_text().count("\n") >= 5 for log in logs):
            time.sleep(0.05)  # every trainer is stepping
        windows = []
        for _ in range(3):  # trainers keep stepping in between: the writer preference must still get in
            with exclusive.exclusive():
                start = time.monotonic()
                time.sleep(0.2)
                windows.append((start, time.monotonic()))
            time.sleep(0.1)
    finally:
        Path(stop).touch()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    for log in logs:
        steps = _intervals(log)
        assert any(b < windows[0][0] for _, b in steps) and any(a > windows[-1][1] for a, _ in steps)
        for w0, w1 in windows:
            overlapping = [(a, b) for a, b in steps if a < w1 and b > w0]
            assert not overlapping, f"{log.name} worked inside an exclusive window: {overlapping[:3]}"


def _holder(folder: str, ready: str) -> None:
    os.environ[exclusive.ENV] = folder
    exclusive.hold()
    Path(ready).touch()
    time.sleep(600)


def test_a_killed_holder_frees_the_device(tmp_path: Path, monkeypatch, deadline) -> None:
    folder = _share(tmp_path, monkeypatch)
    ready = tmp_path / "ready"
    proc = CTX.Process(target=_holder, args=(folder, str(ready)))
    proc.start()
    while not ready.exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with exclusive.exclusive():  # would wait forever if the dead holder's lock survived it
        pass


def test_exclusive_is_reentrant_and_restores_the_shared_hold(tmp_path: Path, monkeypatch) -> None:
    _share(tmp_path, monkeypatch)
    share = exclusive.current()
    share.hold()
    with exclusive.exclusive():
        assert not share.holding
        with exclusive.exclusive():
            pass
        exclusive.yield_point()  # inside an exclusive section: nothing to give up
    assert share.holding
    share.release()


def test_one_run_at_a_time_locks_nothing(monkeypatch) -> None:
    monkeypatch.delenv(exclusive.ENV, raising=False)
    assert exclusive.current() is None and not exclusive.sharing()
    exclusive.hold()
    exclusive.yield_point()
    with exclusive.exclusive():
        pass
