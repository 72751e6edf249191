"""The one cache writer: an artefact is built once, later runs load it, a reader never sees a partial file,
and the file names of the generated sets are the ones main's three writers used (existing caches resume)."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.families.cache import config_key, load_or_build
from harness.families.pde.config import BurgersParams
from harness.families.pde.data import cache_path
from harness.families.theory.config import MajorityParams
from harness.families.theory.data import FORMAT_VERSION


def test_built_once_then_loaded(tmp_path: Path) -> None:
    calls = []

    def build() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"x": torch.arange(3)}

    first, cached_first = load_or_build(tmp_path / "a" / "x.pt", build)
    second, cached_second = load_or_build(tmp_path / "a" / "x.pt", build)
    assert (cached_first, cached_second) == (False, True) and len(calls) == 1
    assert torch.equal(first["x"], second["x"]) and not list((tmp_path / "a").glob("*.tmp"))


def test_keys_are_those_stored_caches_carry() -> None:
    """Pinned from the writers before they were one (pde: sha256, theory: sha1, argen: sha256). majority's key
    moved once, on purpose: its data changed with the authors' generator (theory results_version 7), so a
    cache of the old data must not be read."""
    assert cache_path(Path("c"), "burgers", BurgersParams()).name == "burgers-41c33ac178d15435.pt"
    assert config_key([FORMAT_VERSION, "majority", MajorityParams().model_dump(), 0], algorithm="sha1") == "e818b79fca4b093b"
    assert config_key({"a": 1, "b": [1, 2]}) == "e6f20bdc3757e5e7"
