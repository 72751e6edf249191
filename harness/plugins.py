"""Loading plugins: installed packages' entry points, and the modules a suite names in ``plugins:``.

A plugin is ordinary Python that registers mixers, family variants or datasets through the plugin API
(``harness.extend``) when it is imported, as timm's ``register_model`` and lm-eval's task registry work.
Two routes bring one in, and both only *import by name* (never ``eval``):

- entry points in the group ``harness.plugins`` of any installed package; each names a module (importing
  it registers) or a callable (called once, with no arguments)::

      [project.entry-points."harness.plugins"]
      mixers = "my_pkg.mixers"

- a suite's ``plugins: [my_pkg.mixers]``: modules imported before the suite is checked, and again in every
  run's worker process (a fresh subprocess, a Ray worker, a torchrun rank), which receives the list with
  its run config.

A plugin that fails to import is an error naming the module (or the entry point and its package) and
the exception. Where each registered thing came from is recorded by the registries themselves
(``harness.registry.registering_module``); :func:`package_of` names the installed package for display.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import re
import types
from functools import lru_cache

from harness.errors import HarnessError
from harness.registry import BUILTIN

GROUP = "harness.plugins"
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ENTRY_POINTS_LOADED = False


class PluginError(HarnessError):
    """A plugin that cannot be loaded: its module or entry point, and the exception."""


def load_entry_points() -> list[str]:
    """Import (or call) every ``harness.plugins`` entry point once per process; their names."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return []
    _ENTRY_POINTS_LOADED = True  # a failure is reported once; the registries keep what loaded before it
    loaded = []
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: (e.dist.name if e.dist else "", e.name)):
        package = ep.dist.name if ep.dist else "an unknown package"
        try:
            target = ep.load()
            if not isinstance(target, types.ModuleType):  # a callable that registers
                target()
        except Exception as exc:  # noqa: BLE001 - any failure of the plugin's own code is reported as its own
            raise PluginError(f"plugin entry point {ep.name} = {ep.value} (package {package}, group {GROUP}) failed: "
                              f"{type(exc).__name__}: {exc}; fix or uninstall that package") from exc
        loaded.append(f"{package}:{ep.name}")
    return loaded


def import_plugin(module: str) -> None:
    """Import one plugin module by name; any failure is a :class:`PluginError` naming it."""
    if not MODULE_NAME.match(module):
        raise PluginError(f"plugin {module!r} is not a module name (dotted identifiers, e.g. my_pkg.mixers)")
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - ImportError, or whatever the plugin's own code raised
        hint = (" (is it installed, e.g. pip install -e path/to/your/package, or its folder on PYTHONPATH?)"
                if isinstance(exc, ModuleNotFoundError) and exc.name and module.startswith(exc.name) else "")
        raise PluginError(f"plugin module {module!r} failed to import: {type(exc).__name__}: {exc}{hint}") from exc


def load_plugins(modules: tuple[str, ...] | list[str] = ()) -> None:
    """Every installed entry point, then ``modules`` in order (what a run's worker process does first)."""
    load_entry_points()
    for module in modules:
        import_plugin(module)


@lru_cache(maxsize=None)
def package_of(module: str) -> str:
    """'my-pkg 0.1.0' for a module of an installed distribution, else '' (a module on PYTHONPATH)."""
    top = module.split(".", 1)[0]
    for name in metadata.packages_distributions().get(top, []):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            return name
    return ""


def describe(source: str) -> str:
    """A registered thing's origin for ``harness list``: 'harness', or 'my-pkg 0.1.0 (my_pkg.mixers)'."""
    if source == BUILTIN:
        return BUILTIN
    package = package_of(source)
    return f"{package} ({source})" if package else source
