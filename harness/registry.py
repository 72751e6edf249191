"""One generic name -> object registry for mixers, families, datasets and metrics.

Modelled on timm's and lm-eval's registries: decorator registration, aliases, collision errors,
lazy ``"module:attr"`` entries imported only when used, and "did you mean" suggestions on a miss.

    MIXERS = Registry("mixer")

    @MIXERS.register("mamba", aliases=("mamba1",))
    class Mamba(nn.Module): ...

    MIXERS.get("mamba")        # -> the class
    MIXERS.names()             # -> ["mamba", ...]
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


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

    def add(self, name: str, obj: T | str, *, aliases: tuple[str, ...] = (), **meta: Any) -> None:
        """Add an object, or a lazy ``"package.module:attr"`` string resolved on first ``get``."""
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                existing = self._entries.get(key)
                if existing is obj or (isinstance(existing, str) and not isinstance(obj, str)):
                    continue  # a lazy entry being filled by its own module's decorator
                raise ValueError(f"{self.kind} {key!r} is already registered")
        self._entries[name] = obj
        self._meta[name] = dict(meta)
        for alias in aliases:
            self._aliases[alias] = name

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
