"""The token-mixer contract, in code: what a mixer's module does (``TokenMixer``, ``RecurrentMixer``) and
what the harness must know about it (``MixerSpec``). Built-in mixers and plugins declare the same spec.

A token mixer maps ``x: (B, L, D) -> (B, L, D)``: it mixes information across the L positions, with no
residual and no norm (the block adds those). 2-D callers (vision backbones, 2-D PDE grids, restoration)
pass the spatial ``shape=(H, W)`` of a raster-ordered sequence (``L == H * W``); a mixer that is 1-D by
nature may ignore it, but must accept it. An autoregressive family (``argen``) also decodes token by
token through ``init_state`` / ``step`` (a recurrent state, a KV cache, a conv window): a spec with
``decode=True`` promises those. After a forward, ``last_backend`` (optional) names the kernel that ran.

The harness checks the shape contract on a mixer's first call (:func:`check_output`): a plugin that
returns the wrong shape, or a tuple, fails its run with a message that says so instead of broadcasting
silently into the residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, runtime_checkable

import torch
from torch import nn

#: how a mixer relates to causality: ``always`` causal by construction (an LSTM, a causal scan);
#: ``option`` takes a ``causal: bool`` keyword (attention, the Gated CNN); ``never`` sees the whole
#: sequence (Galerkin attention, a bidirectional scan)
Causal = Literal["always", "option", "never"]
#: a closed form of a mixer's forward FLOPs (2 per multiply-add): ``(mixer, x.shape, shape) -> FLOPs``
FlopFormula = Callable[[nn.Module, torch.Size, "tuple[int, ...] | None"], int]


@runtime_checkable
class TokenMixer(Protocol):
    """``forward(x: (B, L, D), shape: (H, W) | None = None) -> (B, L, D)``."""

    def forward(self, x: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor: ...


@runtime_checkable
class RecurrentMixer(TokenMixer, Protocol):
    """A mixer that also decodes one token at a time: ``step(x_t: (B, D), state) -> ((B, D), state)``, the
    state made by ``init_state`` for up to ``max_len`` tokens; equal to ``forward`` on the prefix."""

    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> Any: ...

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...


@dataclass(frozen=True)
class MixerSpec:
    """A registered token mixer: how to build it and what the harness needs to know about it.

    ``factory(dim, **options)`` builds it (a class, a function, or a lazy ``"module:attr"``); ``is_ssm``:
    whether it contains a state-space model (the verdict's SSM / no-SSM split); ``causal``: see
    :data:`Causal`; ``decode``: implements :class:`RecurrentMixer` (needed by autoregressive families);
    ``flops``: a closed form of its forward FLOPs, used instead of counting its operations (for kernels a
    FLOP counter cannot see), or None: the harness counts them and lists any op without a formula in
    ``flops_skipped``; ``devices``: the device types it runs on (a CUDA-only kernel: ``("cuda",)``)."""

    name: str
    factory: Callable[..., nn.Module] | str
    is_ssm: bool
    causal: Causal
    decode: bool = False
    flops: FlopFormula | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")
    aliases: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.causal not in ("always", "option", "never"):
            raise ValueError(f"mixer {self.name!r}: causal must be 'always', 'option' or 'never', got {self.causal!r}")

    def causal_options(self, causal: bool) -> dict[str, Any]:
        """The keyword that makes this mixer causal or not, where it takes one; raises where it cannot be
        what the task needs (a non-causal mixer in a causal task would see the future)."""
        if causal and self.causal == "never":
            raise ValueError(f"mixer {self.name!r} is not causal (causal: never): it cannot mix a causal task's "
                             "tokens without seeing the future")
        return {"causal": causal} if self.causal == "option" else {}


class MixerContractError(RuntimeError):
    """A mixer broke the contract (wrong output shape or type)."""


def check_output(name: str, x: torch.Tensor, y: Any, shape: tuple[int, ...] | None) -> None:
    """Raise :class:`MixerContractError` unless ``y`` is a tensor of ``x``'s shape."""
    if not isinstance(y, torch.Tensor):
        raise MixerContractError(f"mixer {name!r} returned {type(y).__name__}, not a tensor: a token mixer maps "
                                 f"x (B, L, D) to one tensor (B, L, D) (an nn.LSTM returns (output, state): return output)")
    if y.shape != x.shape:
        where = f" with shape={tuple(shape)}" if shape is not None else ""
        raise MixerContractError(f"mixer {name!r} returned shape {tuple(y.shape)} for input {tuple(x.shape)}{where}: "
                                 f"a token mixer maps (B, L, D) to (B, L, D)")
    if shape is not None and math.prod(shape) != x.shape[1]:
        raise MixerContractError(f"mixer {name!r} was called with shape={tuple(shape)} for {x.shape[1]} tokens")


def enforce_contract(name: str, mixer: nn.Module) -> nn.Module:
    """Check the shape contract on ``mixer``'s first call, then remove the check (no cost when timed)."""

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        x = args[0] if args else kwargs.get("x")
        if isinstance(x, torch.Tensor):
            check_output(name, x, output, kwargs.get("shape", args[1] if len(args) > 1 else None))
            handle.remove()

    handle = mixer.register_forward_hook(hook, with_kwargs=True)
    return mixer
