"""Each family's variants, declared once as data: what a variant contains, its options and defaults.

A family's ``variants`` is a :class:`VariantTable` of :class:`VariantSpec` s, one per ``use:`` name. The
spine derives everything else from it: the names a suite may use, the ``model:`` defaults a variant
brings, and whether a run contains an SSM (the ``is_ssm`` column, the verdict's split). Nothing about a
variant is decided by an ``if`` on its name or by sniffing a constructor's signature (mamba_ssm's rule:
which mixer goes where is a name in the config).

    VARIANTS = VariantTable(
        VariantSpec("mamba", mixer="mamba", options=lambda m: dict(d_state=m.d_state)),
        VariantSpec("attention", mixer="attention", options=lambda m: dict(n_heads=m.n_heads),
                    defaults={"mlp_ratio": 4.0}),
    )
    VARIANTS["mamba"].is_ssm(model)     # True: its mixer is registered as an SSM
    VARIANTS.register(VariantSpec(...))  # a plugin adds a variant to a family's table

``options`` and ``build`` take the family's ``model:`` params first; a family passes what else its
skeleton needs (a grid's dimension, a layer index) and documents it beside its table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable

from pydantic import BaseModel

from harness.modules.registry import MIXERS, is_ssm as mixer_is_ssm
from harness.registry import UnknownNameError


def no_options(*_: Any) -> dict[str, Any]:
    """The options of a mixer that takes none from the family's params."""
    return {}


@dataclass(frozen=True)
class VariantSpec:
    """One ``use:`` name of a family: the registered token mixer it puts in the family's skeleton (or a
    part of its own, ``build``), that mixer's options from the family's params, its ``model:`` defaults,
    and whether it contains an SSM (default: whether its mixer is registered as one)."""

    name: str
    mixer: str | None = None  # a MIXERS name; None when ``build`` makes the variant's own part (or, for a
    # hybrid, the family reads its layers' mixers from the params)
    options: Callable[..., dict[str, Any]] = no_options  # (model params, ...) -> the mixer's kwargs
    build: Callable[..., Any] | None = None  # (model params, ...) -> the variant's own module (FNO, ASSM...)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # ``model:`` fields it sets unless the suite does
    ssm: bool | Callable[[BaseModel], bool] | None = None  # None: the mixer's registry flag

    def __post_init__(self) -> None:
        if self.mixer is not None:
            MIXERS.canonical(self.mixer)  # a typo is an error where the table is declared
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def is_ssm(self, model: BaseModel) -> bool:
        """Whether this variant, with ``model:`` params ``model``, contains a state-space model."""
        if callable(self.ssm):
            return bool(self.ssm(model))
        if self.ssm is not None:
            return self.ssm
        return self.mixer is not None and mixer_is_ssm(self.mixer)


class VariantTable(Mapping[str, VariantSpec]):
    """A family's variants by ``use:`` name, in declaration order (the order ``harness list`` shows)."""

    def __init__(self, *specs: VariantSpec):
        self._specs: dict[str, VariantSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: VariantSpec) -> VariantSpec:
        """Add a variant; a name already in the table is an error (a plugin must pick its own name)."""
        if spec.name in self._specs:
            raise ValueError(f"variant {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> VariantSpec:
        """Take a registered variant out again (a test's, or a plugin's that is unloaded)."""
        return self._specs.pop(self[name].name)

    def __getitem__(self, name: str) -> VariantSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownNameError("variant", name, list(self._specs)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"VariantTable({', '.join(self._specs)})"

    def ssm_names(self) -> frozenset[str]:
        """The variants that contain an SSM whatever their params (``hybrid`` depends on its pattern)."""
        return frozenset(n for n, s in self._specs.items() if not callable(s.ssm) and s.is_ssm(None))  # type: ignore[arg-type]

    def for_mixer(self, mixer: str) -> VariantSpec:
        """The variant that places registered mixer ``mixer`` (any alias) alone: its options configure it."""
        name = MIXERS.canonical(mixer)
        for spec in self._specs.values():
            if spec.mixer is not None and MIXERS.canonical(spec.mixer) == name:
                return spec
        raise UnknownNameError("mixer", mixer, [s.mixer for s in self._specs.values() if s.mixer])
