"""The token-mixer registry and its one factory, ``create_mixer``.

Every mixer, built in or from a plugin, is registered as a :class:`~harness.modules.contract.MixerSpec`
(the contract in code: ``forward(x: (B, L, D), shape: (H, W) | None = None) -> (B, L, D)``, no residual
and no norm; whether it is an SSM, how it is causal, whether it decodes, its FLOPs). 2-D callers pass the
spatial ``shape`` of a raster-ordered sequence, and the SSM mixers then apply their ``scan`` order. After
each forward a mixer's ``last_backend`` names the implementation that actually ran (``reference``,
``mamba_ssm-cuda``, ``sdpa-flash``, ``sdpa-math``, ``xformers``, ...), which the result row records.

    mixer = create_mixer("mamba", 256, d_state=16, scan="bidirectional")
    y = mixer(x, shape=(32, 32))
    register_mixer(MixerSpec("lstm", LSTMMixer, is_ssm=False, causal="always", decode=True))  # a plugin

Entries are lazy (``module:attr``) so importing the registry does not import every mixer.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from harness.modules.contract import MixerSpec, enforce_contract
from harness.registry import BUILTIN, Registry, pass_through

pass_through(__name__)

MIXERS: Registry[type[nn.Module]] = Registry("mixer")


def register_mixer(spec: MixerSpec) -> MixerSpec:
    """Register a token mixer under ``spec.name`` (and its aliases); a name already taken is an error."""
    MIXERS.add(spec.name, spec.factory, aliases=spec.aliases, ssm=spec.is_ssm, spec=spec)
    return spec


register_mixer(MixerSpec("mamba", "harness.modules.mamba:Mamba", is_ssm=True, causal="option", decode=True,
                         aliases=("mamba1",), description="Mamba's selective SSM block (causal in raster order)"))
register_mixer(MixerSpec("mamba2", "harness.modules.mamba2:Mamba2", is_ssm=True, causal="always", decode=True,
                         description="Mamba-2's SSD block (raster order is causal; other scan orders are not)"))
register_mixer(MixerSpec("attention", "harness.modules.attention:Attention", is_ssm=False, causal="option", decode=True,
                         aliases=("softmax",), description="softmax attention (global or windowed; SDPA / xformers)"))
register_mixer(MixerSpec("gated_cnn", "harness.modules.gated_cnn:GatedCNN", is_ssm=False, causal="option", decode=True,
                         aliases=("mambaout",), description="MambaOut's Gated CNN (Mamba without the SSM)"))
register_mixer(MixerSpec("galerkin", "harness.modules.linear_attention:GalerkinAttention", is_ssm=False, causal="never",
                         aliases=("linear_attention",), description="Galerkin-type linear attention (Cao 2021)"))


def mixer_spec(name: str) -> MixerSpec:
    """The spec a mixer (any alias) was registered with."""
    return MIXERS.meta(name)["spec"]


def is_plugin_mixer(name: str) -> bool:
    return MIXERS.source(name) != BUILTIN


def create_mixer(name: str, dim: int, **kwargs: Any) -> nn.Module:
    """Instantiate a registered mixer; ``None`` kwargs are dropped so the mixer's defaults survive. The
    module knows its spec (``mixer_spec``: FLOP counting reads a closed form there), and its first call is
    checked against the shape contract."""
    mixer = MIXERS.get(name)(dim, **{k: v for k, v in kwargs.items() if v is not None})
    mixer.mixer_spec = mixer_spec(name)
    return enforce_contract(MIXERS.canonical(name), mixer)


def is_ssm(name: str) -> bool:
    """Whether a registered mixer contains a state-space model (the verdict's SSM/no-SSM split)."""
    return bool(MIXERS.meta(name).get("ssm", False))


def backends_of(model: nn.Module) -> str:
    """'+'-joined sorted set of the kernels in ``last_backend`` over a model's modules ('' when none has run).

    A mixer that ran two kernels names both (``mamba_ssm-cuda+causal_conv1d-cuda``); each kernel is listed once.
    A plugin mixer that names none reads ``plugin:NAME`` (its own code ran), so no row's backend is blank.
    """
    seen = {part for m in model.modules() for part in str(getattr(m, "last_backend", None) or _unnamed(m)).split("+")}
    return "+".join(sorted(b for b in seen if b))


def _unnamed(module: nn.Module) -> str:
    """``plugin:NAME`` for a plugin mixer without ``last_backend``, else ''."""
    spec = getattr(module, "mixer_spec", None)
    return f"plugin:{spec.name}" if isinstance(spec, MixerSpec) and is_plugin_mixer(spec.name) else ""
