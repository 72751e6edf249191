"""Variant tables: is_ssm comes from what a variant contains (a hybrid from its pattern), names and
defaults derive from the one table, and a pattern mixer no variant configures is refused."""

from __future__ import annotations

import pytest

from harness.families import FAMILIES
from harness.families.variants import VariantSpec, VariantTable


def test_hybrid_is_ssm_only_when_its_pattern_holds_an_ssm_mixer():
    seq = FAMILIES.get("sequence")
    params = seq.ModelParams
    assert seq.is_ssm("hybrid", params(pattern=["mamba", "attention"]))
    assert seq.is_ssm("hybrid", params(pattern=["attention", "mamba2"]))
    assert not seq.is_ssm("hybrid", params(pattern=["attention", "gated_cnn"]))
    assert not seq.is_ssm("hybrid", params(pattern=["softmax", "mambaout"]))  # aliases of attention, gated_cnn
    assert "hybrid" not in seq.ssm_variants  # it depends on the pattern


def test_a_pattern_mixer_without_a_variant_is_refused():
    seq = FAMILIES.get("sequence")()
    with pytest.raises(ValueError, match="'galerkin' is not the mixer of a sequence variant"):
        seq.check_config("hybrid", None, seq.ModelParams(pattern=["mamba", "galerkin"]))


def test_names_ssm_variants_and_defaults_derive_from_the_table():
    table = VariantTable(
        VariantSpec("a", mixer="mamba"),
        VariantSpec("b", mixer="attention", defaults={"mlp_ratio": 4.0}),
        VariantSpec("c", build=lambda m: None, ssm=True),
        VariantSpec("d", build=lambda m: None),
    )
    assert list(table) == ["a", "b", "c", "d"] and "b" in table
    assert table.ssm_names() == {"a", "c"}
    assert dict(table["b"].defaults) == {"mlp_ratio": 4.0}
    with pytest.raises(ValueError, match="already registered"):
        table.register(VariantSpec("a", mixer="gated_cnn"))
    with pytest.raises(KeyError, match="did you mean 'a'"):
        table["aa"]
    with pytest.raises(KeyError, match="unknown mixer 'mambo'"):
        VariantSpec("e", mixer="mambo")
