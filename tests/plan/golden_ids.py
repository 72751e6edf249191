"""The run ids of every shipped suite (``suites/*.yaml``, all seeds and sweep points, device ``cpu``),
kept in ``golden_ids.jsonl`` beside this file, and the comparison that names what moved.

A run id is the hash of the run's resolved configuration, and resume and ``harness compare`` find
stored runs by it: an id that moves silently orphans every stored result of that run. Changing one is a
deliberate act: regenerate the file in the same commit and say why there.

    python tests/plan/golden_ids.py --update     # rewrite golden_ids.jsonl from the current code

One line per (suite, task, variant, sweep point): the ids by seed, and the configuration the ids were
made from, flattened to dotted keys, so a failure names the field that moved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden_ids.jsonl")
DEVICE = "cpu"  # ids include the device; the golden file fixes it


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"d_state": 16}}`` -> ``{"model.d_state": 16}`` (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def entries(suite_paths: Iterable[Path], plan_fn: Callable | None = None) -> dict[str, dict[str, Any]]:
    """key -> {"suite", "task", "variant", "sweep", "ids": {seed: id}, "config": flat config without seed}."""
    from harness.config.load import load_suite
    from harness.plan.planner import plan

    plan_fn = plan_fn or plan
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(suite_paths):
        for spec in plan_fn(load_suite(path), device=DEVICE):
            c = spec.config
            sweep = json.dumps(c["sweep"], sort_keys=True)
            key = f"{path.name}|{c['task']}|{c['variant']}|{sweep}"
            config = flatten({k: v for k, v in c.items() if k not in ("suite", "seed")})
            entry = out.setdefault(key, {"suite": path.name, "task": c["task"], "variant": c["variant"], "sweep": sweep,
                                         "ids": {}, "config": config})
            entry["ids"][str(c["seed"])] = spec.run_id
    return out


def shipped_suites() -> list[Path]:
    return sorted((ROOT / "suites").glob("*.yaml"))


def read_golden(path: Path = GOLDEN) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {f"{e['suite']}|{e['task']}|{e['variant']}|{e['sweep']}": e for e in lines}


def write_golden(current: dict[str, dict[str, Any]], path: Path = GOLDEN) -> None:
    path.write_text("".join(json.dumps(current[k], sort_keys=True) + "\n" for k in sorted(current)))


def _moved_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            out.append(f"{name} is new (= {new[name]!r}; a field added with a default belongs in the id only when set: "
                       "declare it with harness.config.identity.added_field)")
        elif name not in new:
            out.append(f"{name} is gone (was {old[name]!r})")
        elif old[name] != new[name]:
            out.append(f"{name}: {old[name]!r} -> {new[name]!r}")
    return out


def differences(golden: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]], suites: set[str] | None = None) -> list[str]:
    """One line per run whose id moved, appeared or disappeared (only ``suites`` when given)."""
    problems = []
    for key in sorted(set(golden) | set(current)):
        old, new = golden.get(key), current.get(key)
        entry = old or new
        if suites is not None and entry["suite"] not in suites:
            continue
        where = f"suite {entry['suite']}, task {entry['task']}, variant {entry['variant']}" + (
            f", sweep {entry['sweep']}" if entry["sweep"] != "{}" else "")
        if new is None:
            problems.append(f"{where}: no longer planned (ids {sorted(old['ids'].values())})")
        elif old is None:
            problems.append(f"{where}: newly planned, not in the golden file")
        elif old["ids"] != new["ids"]:
            moved = _moved_fields(old["config"], new["config"])
            seeds = sorted(set(old["ids"]) ^ set(new["ids"]))
            detail = "; ".join(moved) or (f"seeds changed: {seeds}" if seeds else "the configuration is the same: the hash itself changed")
            problems.append(f"{where}: id moved ({detail})")
    return problems


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(__doc__)
    sys.path.insert(0, str(ROOT))
    current = entries(shipped_suites())
    write_golden(current)
    print(f"wrote {GOLDEN.relative_to(ROOT)}: {len(current)} entries, {sum(len(e['ids']) for e in current.values())} run ids")
