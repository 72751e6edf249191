"""Before any training (``harness validate``): a tiny forward of every plugin mixer a suite's runs contain.

A plugin mixer that raises, or returns the wrong shape, would otherwise fail every one of its runs after
the data was loaded and the other variants trained. Each mixer is built at ``dim`` 32 and called on
``x (2, 16, 32)``, once as a sequence and once with ``shape=(4, 4)`` (what 2-D families pass), made causal
where a task needs it; where a family decodes token by token, ``init_state`` / ``step`` must reproduce the
forward on a short prefix. The checks run in a child process, each with a time limit, so a plugin that
hangs or crashes the interpreter is reported (the child is replaced for the checks after it), not inherited. A mixer that cannot run here (a CUDA-only kernel
on a machine without CUDA) is skipped, not failed.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from typing import Any

import torch

from harness.config.load import Suite, build_run_config
from harness.modules.contract import check_output
from harness.modules.registry import MIXERS, create_mixer, is_plugin_mixer, mixer_spec
from harness.plugins import load_plugins

BATCH, LENGTH, DIM, SHAPE, PREFIX = 2, 16, 32, (4, 4), 4
TIMEOUT_S = 60.0  # a tiny forward takes milliseconds; this only stops a hang
STARTUP_S = 300.0  # a fresh interpreter importing torch, the harness and the plugins (slow on a busy machine)


@dataclass(frozen=True)
class MixerCheck:
    """One plugin mixer as one task x variant uses it: ``status`` ok, failed or skipped, and why."""

    mixer: str
    task: str
    variant: str
    where: tuple[str, int | None]
    status: str
    message: str = ""


def plugin_mixer_uses(suite: Suite) -> dict[tuple[str, bool, bool], tuple[str, str, tuple[str, int | None]]]:
    """(mixer, causal, decode) -> its first (task, variant, FILE:LINE), for every plugin mixer a run contains."""
    uses: dict[tuple[str, bool, bool], tuple[str, str, tuple[str, int | None]]] = {}
    for task in suite.tasks:
        fam, slot = task.family, task.family.variants.slot
        for variant in task.variants:
            model = fam.ModelParams.model_validate(build_run_config(task, variant, {})["model"])
            for name in fam.variants[variant.uses].mixers(model):
                if is_plugin_mixer(name):
                    key = (MIXERS.canonical(name), bool(fam.causal), bool(slot is not None and slot.decode))
                    uses.setdefault(key, (task.entry.name, variant.name, task.where.get(variant.name, (str(suite.path), None))))
    return uses


def tiny_forward(name: str, causal: bool, decode: bool, device: str) -> str:
    """'' when the mixer keeps the contract at a tiny size, else what went wrong."""
    torch.manual_seed(0)
    mixer = create_mixer(name, DIM, **mixer_spec(name).causal_options(causal)).to(device).eval()
    x = torch.randn(BATCH, LENGTH, DIM, device=device)
    with torch.no_grad():
        check_output(name, x, mixer(x), None)
        check_output(name, x, mixer(x, shape=SHAPE), SHAPE)
        if decode:
            full = mixer(x[:, :PREFIX])
            state = mixer.init_state(BATCH, LENGTH, torch.device(device), x.dtype)
            for t in range(PREFIX):
                y_t, state = mixer.step(x[:, t], state)
                if not isinstance(y_t, torch.Tensor) or y_t.shape != (BATCH, DIM):
                    return f"step returned {getattr(y_t, 'shape', type(y_t).__name__)} for x_t {(BATCH, DIM)}: it maps (B, D) to (B, D)"
                if not torch.allclose(y_t, full[:, t], rtol=1e-3, atol=1e-4):
                    return (f"step at token {t} differs from the forward by {float((y_t - full[:, t]).abs().max()):.3g}: "
                            "decoding must reproduce the forward on the prefix")
    return ""


Check = tuple[str, bool, bool, str]  # mixer, causal, decode, device


def _child(conn: Any, plugins: tuple[str, ...], todo: list[Check]) -> None:
    """Say it is ready (None) once the plugins are imported, then run ``todo`` in order, sending one message
    per check ('' when it passed)."""
    load_plugins(plugins)
    conn.send(None)
    for name, causal, decode, device in todo:
        try:
            conn.send(tiny_forward(name, causal, decode, device))
        except Exception as exc:  # noqa: BLE001 - the plugin's failure is the finding
            conn.send(f"{type(exc).__name__}: {exc}")


def run_isolated(plugins: tuple[str, ...], todo: list[Check], timeout: float) -> list[str]:
    """The message of each check, run in a spawned process; one that hangs past ``timeout`` (counted from
    when the process is ready: starting it is not the plugin's time) or kills its process is recorded as
    such, and a new process takes the checks after it."""
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited threads or CUDA state
    messages: list[str] = []
    while len(messages) < len(todo):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(send, plugins, todo[len(messages):]), daemon=True)
        proc.start()
        send.close()  # the child holds the only sending end: its death reads as EOF here
        try:
            if not receive.poll(STARTUP_S):
                messages += [f"its check process did not start in {STARTUP_S:g} s"] * (len(todo) - len(messages))
                break
            receive.recv()  # ready
            while len(messages) < len(todo):
                if not receive.poll(timeout):
                    messages.append(f"no result after {timeout:g} s (a tiny forward takes milliseconds: does it hang?)")
                    break
                messages.append(receive.recv())
        except EOFError:
            proc.join()
            messages.append(f"its process died (exit code {proc.exitcode}); the plugin crashed the interpreter or failed to import")
        finally:
            proc.kill()
            proc.join()
            receive.close()
    return messages


def check_plugin_mixers(suite: Suite, timeout: float = TIMEOUT_S) -> list[MixerCheck]:
    """Every plugin mixer of the suite, checked at a tiny size (see the module docstring)."""
    checks, todo, uses = [], [], []
    for (name, causal, decode), (task, variant, where) in plugin_mixer_uses(suite).items():
        devices = mixer_spec(name).devices
        device = "cuda" if "cuda" in devices and torch.cuda.is_available() else "cpu"
        if device not in devices:
            checks.append(MixerCheck(name, task, variant, where, "skipped",
                                     f"runs on {', '.join(devices)} only, and this machine has no CUDA"))
        else:
            todo.append((name, causal, decode, device))
            uses.append((name, task, variant, where))
    for (name, task, variant, where), message in zip(uses, run_isolated(suite.plugins, todo, timeout) if todo else []):
        checks.append(MixerCheck(name, task, variant, where, "failed" if message else "ok", message))
    return checks
