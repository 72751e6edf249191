"""Every shipped suite's run ids equal the golden file's (a moved id orphans stored results), and the
comparison names the suite, task, variant and config field that moved: a field added with a plain
default, a changed value. A field declared with ``added_field`` keeps every id while at its default."""

from __future__ import annotations

import pytest

from golden_ids import differences, entries, read_golden, shipped_suites


def test_shipped_suites_keep_their_run_ids() -> None:
    problems = differences(read_golden(), entries(shipped_suites()))
    assert not problems, (
        f"{len(problems)} run ids differ from tests/plan/golden_ids.jsonl:\n  " + "\n  ".join(problems[:30])
        + "\nIf the change is deliberate, run `python tests/plan/golden_ids.py --update` in the same commit and say "
        "why there (stored results of those runs will no longer resume)."
    )


QUICK = [p for p in shipped_suites() if p.name == "quick.yaml"]


def _planted(monkeypatch, **fields) -> list[str]:
    """The differences on quick.yaml after replacing the planner's TrainConfig by a subclass with ``fields``."""
    from harness.config.sections import TrainConfig
    from harness.plan import planner

    planted = type("PlantedTrainConfig", (TrainConfig,), {"__annotations__": {k: type(v[0]) for k, v in fields.items()},
                                                         **{k: v[1] for k, v in fields.items()}})
    monkeypatch.setattr(planner, "TrainConfig", planted)
    return differences(read_golden(), entries(QUICK), suites={"quick.yaml"})


def test_a_new_field_with_a_plain_default_is_named(monkeypatch) -> None:
    from pydantic import Field

    problems = _planted(monkeypatch, label_smoothing=(0.0, Field(0.0)))
    assert problems and all("id moved" in p for p in problems)
    assert "suite quick.yaml, task selective_copy, variant mamba:" in "\n".join(problems)
    assert all("train.label_smoothing is new (= 0.0;" in p and "added_field" in p for p in problems)


def test_a_changed_value_is_named(monkeypatch) -> None:
    from pydantic import Field

    problems = _planted(monkeypatch, grad_clip=(1.0, Field(0.5)))  # the default grad_clip 1.0 -> 0.5
    touched = [p for p in problems if "train.grad_clip: 1.0 -> 0.5" in p]
    assert touched and len(touched) == len(problems)


def test_an_added_field_at_its_default_keeps_every_id(monkeypatch) -> None:
    from harness.config.identity import added_field

    assert _planted(monkeypatch, label_smoothing=(0.0, added_field(0.0))) == []


def test_an_added_field_set_away_from_its_default_is_part_of_the_id() -> None:
    from harness.config.identity import id_dump
    from harness.config.sections import Section

    class Knobs(Section):
        steps: int = 3
        label_smoothing: float = pytest.importorskip("harness.config.identity").added_field(0.0)

    assert id_dump(Knobs()) == {"steps": 3}
    assert id_dump(Knobs(label_smoothing=0.1)) == {"steps": 3, "label_smoothing": 0.1}
