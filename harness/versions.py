"""Results versions: what a stored row must match, besides its run id, to be reused.

A run's id (``config_hash``) covers its configuration, not the code that turns the configuration into
numbers. That code has versions, bumped by hand in the commit that changes numbers already stored (a
fixed metric, a new data split, a changed training loop or kernel; not a new column):

- ``SPINE_RESULTS_VERSION``: the training loop, the measurement protocol, and the kernels and modules
  every family shares;
- ``Family.results_version``: one family's data, models and metrics.

Every row records ``results_version`` as ``"<spine>.<family>"``. Resume reruns a stored run of another
version (``--accept-stale`` keeps it, and the row says so); reports never pool versions in one statistic;
``harness compare`` pairs them and names the change. Rows written before versions existed read as
``"0.0"``. A leaf module (no harness imports), so the store and the report read versions too.
"""

from __future__ import annotations

import math
from typing import Any

#: bump in the commit that changes what every family's runs produce (training loop, measurement, kernels).
#: 1: on CUDA with mamba_ssm, raster mamba / mamba2 mixers run mamba_ssm's fused functions (latency, memory).
#: 2: the CPU reference selective scan is blocked and reuses the forward's states (latency, time, memory).
SPINE_RESULTS_VERSION = 2
#: the version of rows that predate the ``results_version`` column.
UNVERSIONED = "0.0"


def results_version(family_version: int, spine_version: int = SPINE_RESULTS_VERSION) -> str:
    """The version string a row carries: ``"<spine>.<family>"``."""
    return f"{int(spine_version)}.{int(family_version)}"


def stored_version(value: Any) -> str:
    """A row's ``results_version`` as stored, ``UNVERSIONED`` when the row predates the column."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return UNVERSIONED
    return str(value)


def version_key(value: Any) -> tuple[int, int]:
    """``"1.2"`` -> (1, 2), for ordering versions (the newest is the largest)."""
    spine, _, family = stored_version(value).partition(".")
    return int(spine), int(family or 0)


def describe(value: Any, family: str = "") -> str:
    """``"1.2"`` -> ``"1.2 (spine 1, pde 2)"``: a version as the messages spell it out."""
    spine, fam = version_key(value)
    return f"{spine}.{fam} (spine {spine}, {family or 'family'} {fam})"
