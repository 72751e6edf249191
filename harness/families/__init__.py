"""Task families, registered lazily by name so that ``harness list`` does not import every model.

Add a family: create ``harness/families/<name>/`` with a ``Family`` subclass and add one line below.
"""

from __future__ import annotations

from harness.families.base import DatasetSpec, Experiment, Family, MetricSpec, Params, RunContext, TinyConfig
from harness.registry import Registry

FAMILIES: Registry[type[Family]] = Registry("family")
FAMILIES.add("sequence", "harness.families.sequence.family:SequenceFamily", aliases=("diagnostics",))
FAMILIES.add("theory", "harness.families.theory.family:TheoryFamily")
FAMILIES.add("classification", "harness.families.classification.family:ClassificationFamily")
FAMILIES.add("dense", "harness.families.dense.family:DenseFamily", aliases=("detection", "segmentation"))
FAMILIES.add("restoration", "harness.families.restoration.family:RestorationFamily")
FAMILIES.add("argen", "harness.families.argen.family:ARGenFamily")
FAMILIES.add("pde", "harness.families.pde.family:PDEFamily")

__all__ = ["FAMILIES", "DatasetSpec", "Experiment", "Family", "MetricSpec", "Params", "RunContext", "TinyConfig"]
