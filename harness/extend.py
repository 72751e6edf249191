"""The plugin API: what a package imports to bring its own mixers, variants and datasets to the harness.

Registration goes into the same tables the harness's own entries live in (``MIXERS``, each family's
``VariantTable`` and ``datasets``), so suites, ``harness list``, ``harness validate``, the ``is_ssm``
column and the contract test treat a plugin's entry exactly like a built-in one; a name already taken,
by the harness or another plugin, is an error naming both. A module that calls these at import time is
a plugin: install it with an entry point in the group ``harness.plugins``, or list it in a suite's
``plugins:`` (``harness.plugins`` loads both, in the driver and in every run's worker process).

    from harness.extend import MixerSpec, register_mixer

    class LSTMMixer(nn.Module):            # forward(x: (B, L, D), shape=None) -> (B, L, D)
        ...

    register_mixer(MixerSpec("lstm", LSTMMixer, is_ssm=False, causal="always", decode=True))

A registered mixer is at once a variant (``use: lstm``) of every family that swaps a token mixer
(sequence, classification, dense, restoration, pde, theory; argen when it decodes), and may appear in a
sequence hybrid's ``pattern``. ``register_variant`` adds a variant with options of its own to one family;
``register_dataset`` adds a dataset to a family that takes them (``Family.dataset_contract``).
"""

from __future__ import annotations

from harness.families import FAMILIES, DatasetSpec, Params
from harness.families.variants import VariantSpec
from harness.modules.contract import Causal, MixerContractError, MixerSpec, RecurrentMixer, TokenMixer
from harness.modules.registry import register_mixer
from harness.registry import pass_through

pass_through(__name__)

__all__ = ["Causal", "DatasetSpec", "MixerContractError", "MixerSpec", "Params", "RecurrentMixer", "TokenMixer",
           "VariantSpec", "register_dataset", "register_mixer", "register_variant"]


def register_variant(family: str, spec: VariantSpec) -> VariantSpec:
    """Add a variant to ``family``'s table (e.g. a registered mixer with options from the family's params)."""
    return FAMILIES.get(family).variants.register(spec)


def register_dataset(family: str, name: str, spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to ``family``; ``spec.load`` follows the family's ``dataset_contract``."""
    return FAMILIES.get(family).register_dataset(name, spec)
