"""Launchers move run specs to where they run and results back to the store; they never train.

``LAUNCHERS`` holds them by ``harness run --executor`` name, lazily (``harness list`` imports no Ray
code). Each declares the ``harness run`` options it takes (``Launcher.options``); ``launcher_options``
refuses an option given to a launcher that does not take it, naming the one that does.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.registry import Registry

LAUNCHERS: Registry[Any] = Registry("executor")
LAUNCHERS.add("local", "harness.execute.local:LocalLauncher")
LAUNCHERS.add("ray", "harness.execute.ray_executor:RayLauncher")


def launcher_options(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options of launcher ``name`` out of every launcher option the command line holds (``given``:
    option -> value); one set away from its default for another launcher is an error."""
    own = LAUNCHERS.get(name).options
    for option, value in given.items():
        if option in own:
            continue
        owners = [n for n in LAUNCHERS.names() if option in LAUNCHERS.get(n).options]
        if owners and value != LAUNCHERS.get(owners[0]).options[option]:
            raise HarnessError(f"--{option.replace('_', '-')} applies to --executor {' or '.join(owners)} only")
    return {option: given.get(option, default) for option, default in own.items()}
