"""Each family's variants, declared once as data: what a variant contains, its options and defaults.

A family's ``variants`` is a :class:`VariantTable` of :class:`VariantSpec` s, one per ``use:`` name. The
spine derives everything else from it: the names a suite may use, the ``model:`` defaults a variant
brings, and whether a run contains an SSM (the ``is_ssm`` column, the verdict's split): a variant is an
SSM exactly when one of the registered mixers it contains is (a hybrid: those of its pattern), or, for a
part of its own (``build``), when its spec says so. Nothing about a variant is decided by an ``if`` on
its name or by sniffing a constructor's signature (mamba_ssm's rule: which mixer goes where is a name in
the config).

    VARIANTS = VariantTable(
        VariantSpec("mamba", mixer="mamba", options=lambda m: dict(d_state=m.d_state)),
        VariantSpec("attention", mixer="attention", options=lambda m: dict(n_heads=m.n_heads),
                    defaults={"mlp_ratio": 4.0}),
        slot=MixerSlot(causal=True),     # any plugin mixer is a variant of its own name here
    )
    VARIANTS["mamba"].is_ssm(model)     # True: its mixer is registered as an SSM
    VARIANTS.register(VariantSpec(...))  # a plugin adds a variant to a family's table

``options`` and ``build`` take the family's ``model:`` params first; a family passes what else its
skeleton needs (a grid's dimension, a layer index) and documents it beside its table. A family whose
skeleton swaps a token mixer declares a :class:`MixerSlot`: every mixer a plugin registers (``harness.
extend.register_mixer``) is then a variant of that family under the mixer's name, built in the same
skeleton and measured by the same protocol, made causal where the family's tasks are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Iterable

from pydantic import BaseModel

from harness.modules.registry import MIXERS, is_plugin_mixer, is_ssm as mixer_is_ssm, mixer_spec
from harness.registry import BUILTIN, UnknownNameError, describe_source, pass_through, registering_module

pass_through(__name__)


def no_options(*_: Any) -> dict[str, Any]:
    """The options of a mixer that takes none from the family's params."""
    return {}


@dataclass(frozen=True)
class VariantSpec:
    """One ``use:`` name of a family: the registered token mixer it puts in the family's skeleton (or a
    part of its own, ``build``), that mixer's options from the family's params, its ``model:`` defaults,
    and what it contains: its mixer, a hybrid's mixers (``contains``), or for a ``build`` part, ``ssm``."""

    name: str
    mixer: str | None = None  # a MIXERS name; None when ``build`` makes the variant's own part (or, for a
    # hybrid, ``contains`` reads its layers' mixers from the params)
    options: Callable[..., dict[str, Any]] = no_options  # (model params, ...) -> the mixer's kwargs
    build: Callable[..., Any] | None = None  # (model params, ...) -> the variant's own module (FNO, ASSM...)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # ``model:`` fields it sets unless the suite does
    ssm: bool | None = None  # a ``build`` part's own answer; None: whether any mixer it contains is an SSM
    contains: Callable[[BaseModel], Iterable[str]] | None = None  # model params -> the registered mixers of a hybrid
    source: str = BUILTIN  # the module that registered it (set by ``VariantTable.register``)

    def __post_init__(self) -> None:
        if self.mixer is not None:
            MIXERS.canonical(self.mixer)  # a typo is an error where the table is declared
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def mixers(self, model: BaseModel | None) -> tuple[str, ...]:
        """The registered mixers this variant holds with ``model:`` params ``model``."""
        if self.mixer is not None:
            return (self.mixer,)
        return tuple(self.contains(model)) if self.contains is not None and model is not None else ()

    def is_ssm(self, model: BaseModel | None) -> bool:
        """Whether this variant, with ``model:`` params ``model``, contains a state-space model."""
        if self.ssm is not None:
            return self.ssm
        return any(mixer_is_ssm(name) for name in self.mixers(model))

    def sources(self, model: BaseModel | None) -> frozenset[str]:
        """Where the code of this variant comes from: its own registration and each mixer's."""
        return frozenset({self.source, *(MIXERS.source(name) for name in self.mixers(model))})


@dataclass(frozen=True)
class MixerSlot:
    """How a family places any plugin mixer in its skeleton: a variant named after the mixer, made causal
    when the family's tasks are (``causal``), refused where it cannot serve (a non-causal mixer in a causal
    task; a mixer without ``init_state``/``step`` where the family decodes token by token, ``decode``)."""

    causal: bool
    decode: bool = False

    def unfit(self, mixer: str) -> str | None:
        """Why ``mixer`` cannot be a variant here, or None."""
        spec = mixer_spec(mixer)
        if self.causal and spec.causal == "never":
            return f"mixer {spec.name!r} is not causal (causal: never) and this family's tasks are causal"
        if self.decode and not spec.decode:
            return (f"mixer {spec.name!r} does not decode token by token (decode: False) and this family generates "
                    "autoregressively: implement init_state/step and register it with decode=True")
        return None

    def variant(self, mixer: str) -> VariantSpec:
        spec = mixer_spec(mixer)
        options = spec.causal_options(self.causal)
        return VariantSpec(spec.name, mixer=spec.name, options=lambda *_: dict(options), source=MIXERS.source(mixer))


class VariantUnfit(KeyError):
    """A plugin mixer that cannot be a variant of this family (the reason is the message)."""

    def __str__(self) -> str:
        return self.args[0]


class VariantTable(Mapping[str, VariantSpec]):
    """A family's variants by ``use:`` name, in declaration order (the order ``harness list`` shows), then
    the plugin mixers its ``slot`` places."""

    def __init__(self, *specs: VariantSpec, slot: MixerSlot | None = None):
        self._specs: dict[str, VariantSpec] = {}
        self.slot = slot
        for spec in specs:
            self.register(spec)

    def register(self, spec: VariantSpec) -> VariantSpec:
        """Add a variant; a name already in the table is an error (a plugin must pick its own name)."""
        source = registering_module()
        if spec.name in self._specs:
            raise ValueError(f"variant {spec.name!r} is already registered by {describe_source(self._specs[spec.name].source)}; "
                             f"{describe_source(source)} must choose another name")
        self._specs[spec.name] = spec = replace(spec, source=source)
        return spec

    def unregister(self, name: str) -> VariantSpec:
        """Take a registered variant out again (a test's, or a plugin's that is unloaded)."""
        return self._specs.pop(self[name].name)

    def _slotted(self) -> list[str]:
        """The plugin mixers this table's slot places (those a variant of the table does not already name)."""
        if self.slot is None:
            return []
        return [n for n in MIXERS.names() if is_plugin_mixer(n) and n not in self._specs and self.slot.unfit(n) is None]

    def unfit(self, name: str) -> str | None:
        """Why a plugin mixer named ``name`` is not a variant here (None: it is, or it is no plugin mixer)."""
        if self.slot is None or name in self._specs or name not in MIXERS or not is_plugin_mixer(name):
            return None
        return self.slot.unfit(name)

    def __getitem__(self, name: str) -> VariantSpec:
        if name in self._specs:
            return self._specs[name]
        if self.slot is not None and name in MIXERS and is_plugin_mixer(name):
            reason = self.slot.unfit(name)
            if reason is not None:
                raise VariantUnfit(reason)
            return self.slot.variant(name)
        raise UnknownNameError("variant", name, list(self)) from None

    def __iter__(self) -> Iterator[str]:
        return iter([*self._specs, *self._slotted()])

    def __len__(self) -> int:
        return len(self._specs) + len(self._slotted())

    def __repr__(self) -> str:
        return f"VariantTable({', '.join(self)})"

    def ssm_names(self) -> frozenset[str]:
        """The variants that contain an SSM whatever their params (``hybrid`` depends on its pattern)."""
        return frozenset(n for n in self if self[n].contains is None and self[n].is_ssm(None))

    def for_mixer(self, mixer: str) -> VariantSpec:
        """The variant that places registered mixer ``mixer`` (any alias) alone: its options configure it."""
        name = MIXERS.canonical(mixer)
        for spec in self._specs.values():
            if spec.mixer is not None and MIXERS.canonical(spec.mixer) == name:
                return spec
        if name in self._slotted():
            return self.slot.variant(name)  # type: ignore[union-attr]
        raise UnknownNameError("mixer", mixer, [s.mixer for s in self._specs.values() if s.mixer] + self._slotted())
