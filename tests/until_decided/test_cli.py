"""``harness run --until-decided`` end to end with real (tiny) training runs in subprocesses, ``--jobs 2``:
a look adds the same new seed to both sides of the open comparison, rows record their look, the design is
written, and a look interrupted after some of its runs is completed, with its look, from its record. A
suite where nothing learns says "did not learn the task" and asks for no seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.store.results_format import LOOKS_JSON
from test_cli_run import harness  # tests/ is on sys.path (its conftest.py, pytest's prepend import mode)

SUITE = """suite: %(name)s
seeds: %(seeds)s
train: {steps: %(steps)d, batch_size: 8, eval_batch_size: 64, warmup_steps: 0, lr: 0.003}
measure: {flops: false, latency: false, memory: false}
variants: %(variants)s
tasks:
  - name: copy
    family: sequence
    dataset: selective_copy
    data: {seq_len: 16, num_tokens: 4, vocab: 8, n_eval: 64}
    model: {d_model: 16, n_layers: 1, d_state: 4, n_heads: 2}
    verdict: {thresholds: {accuracy: 0.02}}
"""


def loop(tmp_path: Path, name: str, *extra: str):
    return harness("run", f"{name}.yaml", "--until-decided", "--jobs", "2", *extra, cwd=tmp_path)


def test_a_real_look_adds_paired_seeds_and_an_interrupted_look_is_completed(tmp_path: Path) -> None:
    # 40 steps: attention starts to copy (about 0.19 against chance 0.125), the SSM not yet; 2 seeds decide nothing
    (tmp_path / "learn.yaml").write_text(SUITE % {"name": "learn", "seeds": "[0, 1]", "steps": 40,
                                                  "variants": "[mamba, attention, gated_cnn]"})
    first = loop(tmp_path, "learn", "--max-seeds", "3", "--seed-batch", "1")
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "results" / "learn"
    assert json.loads((folder / "sequential.json").read_text()) == {"version": 1, "max_seeds": 3, "seed_batch": 1}
    looks = json.loads((folder / LOOKS_JSON).read_text())["looks"]
    assert [k["look"] for k in looks] == [1] and "look 1: 1 open, 1 getting seeds" in first.stderr
    added = {r["variant"] for r in looks[0]["runs"]}
    assert len(added) >= 2 and {r["seed"] for r in looks[0]["runs"]} == {2}  # one new seed, on both sides
    df = pd.read_parquet(folder / "results.parquet")
    assert dict(df.groupby("seed")["look"].unique().map(list)) == {0: [0], 1: [0], 2: [1]}
    assert set(df.loc[df["seed"] == 2, "variant"]) == added
    assert "seeds used per comparison" in first.stdout and "--max-seeds 3 reached" in first.stderr

    # a kill -9 half-way through look 1: one of its runs never finished
    lost = looks[0]["runs"][0]["run_id"]
    (folder / "runs" / f"{lost}.json").unlink()
    again = loop(tmp_path, "learn", "--max-seeds", "3", "--seed-batch", "1")
    assert again.returncode == 0, again.stderr
    assert json.loads((folder / LOOKS_JSON).read_text())["looks"] == looks  # completed, not re-decided
    redone = pd.read_parquet(folder / "results.parquet")
    assert len(redone) == len(df) and int(redone.loc[redone["config_hash"] == lost, "look"].iloc[0]) == 1

    changed = loop(tmp_path, "learn", "--max-seeds", "5", "--seed-batch", "1")
    assert changed.returncode == 2 and "records --max-seeds 3 --seed-batch 1" in changed.stderr


def test_models_at_chance_did_not_learn_the_task_and_get_no_seeds(tmp_path: Path) -> None:
    """Must-show A, small: two training steps leave every model at chance; the verdict names each variant
    and its baseline, and the loop adds nothing (more seeds cannot show learning)."""
    (tmp_path / "chance.yaml").write_text(SUITE % {"name": "chance", "seeds": "[0, 1, 2]", "steps": 2,
                                                   "variants": "[mamba, gated_cnn]"})
    out = loop(tmp_path, "chance", "--max-seeds", "6")
    assert out.returncode == 0, out.stderr
    assert "0 looks added 0 runs" in out.stdout and "copy: inconclusive" in out.stdout
    text = " ".join(out.stdout.split())
    assert "did not learn the task" in text and "train longer rather than add seeds" in text
    assert "mamba 0.1" in text and "gated_cnn 0.1" in text and "(baseline 0.125, chance)" in text
    assert not (tmp_path / "results" / "chance" / LOOKS_JSON).exists()
