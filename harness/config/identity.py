"""What a run's id is made of: the resolved configuration, minus fields added after runs were stored.

``model_dump`` includes every default, so a field added to a config schema would change every run id at
once and no stored result would resume. A field declared with :func:`added_field` is left out of the
configuration (and so of the id) while it holds its default, which must reproduce the behaviour from
before the field existed: stored runs keep their ids, and a run that sets another value gets a new one.
``tests/plan/test_golden_ids.py`` holds every shipped suite's ids and names the field when one moves.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# Defined beside the schemas' base class, so that family schemas declare added fields without importing
# the config layer; re-exported here for the spine's own sections.
from harness.families.base import OMIT_AT_DEFAULT, added_field

__all__ = ["added_field", "id_dump"]


def id_dump(params: BaseModel) -> dict[str, Any]:
    """``params.model_dump(mode="json")`` without the :func:`added_field` fields that hold their default
    (nested models too): the run's configuration as its id sees it."""
    out = params.model_dump(mode="json")
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        if info.json_schema_extra == OMIT_AT_DEFAULT and not info.is_required() and value == info.get_default(call_default_factory=True):
            out.pop(name, None)
        elif isinstance(value, BaseModel):
            out[name] = id_dump(value)
    return out
