"""One generic name -> object registry for mixers, families, datasets and metrics.

Modelled on timm's and lm-eval's registries: decorator registration, aliases, collision errors,
lazy ``"module:attr"`` entries imported only when used, and "did you mean" suggestions on a miss.

    MIXERS = Registry("mixer")

    @MIXERS.register("mamba", aliases=("mamba1",))
    class Mamba(nn.Module): ...

    MIXERS.get("mamba")        # -> the class
    MIXERS.names()             # -> ["mamba", ...]
    MIXERS.source("mamba")     # -> "harness" (built in), or the plugin module that registered it

Every entry remembers where it came from (``source``): the module whose code registered it, found on the
call stack, so a plugin's mixer is named by its package whether an entry point, a suite's ``plugins:``
list or the user's own script imported it. Functions that only pass a registration on (``register_mixer``,
``VariantTable.register``) declare themselves with :func:`pass_through` and are skipped.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

#: the source of everything the harness registers itself
BUILTIN = "harness"
_PASS_THROUGH: set[str] = {__name__}


def pass_through(module: str) -> None:
    """Declare a module whose functions forward registrations (they are not where an entry comes from)."""
    _PASS_THROUGH.add(module)


def registering_module() -> str:
    """The module whose code is registering: the first frame that is not a pass-through function
    (module-level code always counts: a built-in table declared at import is the harness's own).
    ``BUILTIN`` for the harness's modules."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name not in _PASS_THROUGH or frame.f_code.co_name == "<module>":
            break
        frame = frame.f_back
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return BUILTIN if name == BUILTIN or name.startswith(BUILTIN + ".") else name


def describe_source(source: str) -> str:
    """How a source reads in messages: 'harness (built in)' or 'plugin module my_pkg.mixers'."""
    return "harness (built in)" if source == BUILTIN else f"plugin module {source}"


class UnknownNameError(KeyError):
    """A registry lookup missed; the message lists close matches and the known names."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; known: {', '.join(known) or 'none'}")

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return self.args[0]


def suggest(name: str, known: list[str]) -> str:
    """' (did you mean 'x'?)' or '' — shared by the config validator."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Name-keyed registry with aliases, metadata and lazy entries."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._aliases: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str | None = None, *, aliases: tuple[str, ...] = (), **meta: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name or getattr(obj, "__name__"), obj, aliases=aliases, **meta)
            return obj

        return deco

    def add(self, name: str, obj: T | str, *, aliases: tuple[str, ...] = (), source: str | None = None,
            **meta: Any) -> None:
        """Add an object, or a lazy ``"package.module:attr"`` string resolved on first ``get``. ``source``:
        where it comes from (default: the registering module, :func:`registering_module`). A name or alias
        already taken is an error naming who took it: a plugin never replaces a built-in silently."""
        source = source or registering_module()
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                existing = self._entries.get(key)
                if existing is obj or (isinstance(existing, str) and existing == _lazy_name(obj)):
                    continue  # the same object again, or a lazy entry filled by its own module's decorator
                owner = self._aliases.get(key, key)
                taken = f"{key!r} is already registered" + (f" (an alias of {owner!r})" if owner != key else "")
                raise ValueError(f"{self.kind} {taken} by {describe_source(self.source(owner))}; "
                                 f"{describe_source(source)} must choose another name")
        self._entries[name] = obj
        self._meta[name] = {**meta, "source": source}
        for alias in aliases:
            self._aliases[alias] = name

    def remove(self, name: str) -> None:
        """Take an entry and its aliases out again (a test's, or a plugin's that is unloaded)."""
        key = self.canonical(name)
        del self._entries[key], self._meta[key]
        for alias in [a for a, target in self._aliases.items() if target == key]:
            del self._aliases[alias]

    def source(self, name: str) -> str:
        """The module that registered ``name`` (``BUILTIN`` for the harness's own entries)."""
        return self._meta[self.canonical(name)].get("source", BUILTIN)

    def aliases(self, name: str) -> list[str]:
        key = self.canonical(name)
        return sorted(a for a, target in self._aliases.items() if target == key)

    def canonical(self, name: str) -> str:
        name = self._aliases.get(name, name)
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return name

    def get(self, name: str) -> T:
        key = self.canonical(name)
        obj = self._entries[key]
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._entries[key] = obj
        return obj  # type: ignore[return-value]

    def meta(self, name: str) -> dict[str, Any]:
        return self._meta[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _lazy_name(obj: Any) -> str | None:
    """The ``"module:attr"`` string a lazy entry for ``obj`` would hold (None for a string)."""
    if isinstance(obj, str):
        return None
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"
