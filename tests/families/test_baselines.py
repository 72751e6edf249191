"""Each family's trivial baseline (the ``baseline`` / ``baseline_kind`` of its rows) against a value worked
out independently: chance is exactly 1/#classes for uniform targets, the majority class is picked from the
training labels and scored on the evaluation ones, the identity beats the mean field where the output is
the input later in time, uniform codes cost log2(vocab) bits, a constant mask scores its class's IoU."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from harness.config.load import load_suite
from harness.families import FAMILIES
from harness.families.argen.metrics import unigram_nll_bits_per_token
from harness.families.classification.data import labels_of
from harness.families.dense.data import IGNORE_INDEX
from harness.families.pde.metrics import relative_l2, trivial_rel_l2
from harness.families.trivial import CHANCE, MAJORITY, majority_class, most_frequent
from harness.plan.planner import plan
from harness.run.runner import baseline_columns, build_experiment, make_context

CPU = torch.device("cpu")


def experiment(tmp_path: Path, family: str, dataset: str | None = None, data: dict | None = None,
               model: dict | None = None, use: str | None = None):
    """The experiment of one run of ``family`` at its tiny config (``data`` / ``model`` override it)."""
    fam = FAMILIES.get(family)
    use = use or next(iter(fam.variants))
    task = {"name": "t", "family": family, "dataset": dataset or fam.tiny.dataset,
            "data": {**(fam.tiny.data if dataset is None else {}), **(data or {})},
            "model": {**fam.tiny.model, **(model or {})}, "variants": [{"name": use, "model": fam.tiny.variants.get(use, {})}]}
    suite = {"suite": "b", "train": {"steps": 1, "batch_size": 2, "eval_batch_size": 8, "warmup_steps": 0},
             "measure": {"flops": False, "latency": False, "memory": False}, "tasks": [task]}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    spec = plan(load_suite(tmp_path / "b.yaml"), device="cpu")[0]
    instance = FAMILIES.get(family)()
    return build_experiment(instance, make_context(spec.run, instance, CPU, tmp_path / "cache"))


def test_majority_class_is_picked_in_training_and_ties_score_their_mean():
    assert most_frequent(torch.tensor([3, 1, 3, 1, 2])) == [1, 3]
    labels = torch.tensor([0, 0, 0, 1, 2, 2, -100])
    assert majority_class(labels, [2], ignore=-100).value == pytest.approx(2 / 6)
    assert majority_class(labels, [0, 1, 2], ignore=-100).value == pytest.approx(1 / 3)  # every class alike: chance


@pytest.mark.parametrize("dataset,data,chance", [
    ("selective_copy", {"seq_len": 16, "num_tokens": 4, "vocab": 8, "n_eval": 16}, 1 / 8),
    ("mqar", {"seq_len": 16, "num_kv": 2, "key_vocab": 8, "value_vocab": 5, "n_eval": 16}, 1 / 5),
])
def test_sequence_copying_and_recall_are_exactly_at_chance(tmp_path, dataset, data, chance):
    exp = experiment(tmp_path, "sequence", dataset, data)
    base = exp.trivial_baselines()["accuracy"]
    assert base.value == pytest.approx(chance, abs=1e-12) and base.kind == CHANCE


def test_sequence_majority_favours_the_tie_breaking_bit(tmp_path):
    exp = experiment(tmp_path, "sequence", "majority", {"seq_len": 8, "n_eval": 64})
    targets = exp.eval_targets[exp.eval_targets != -100]
    base = exp.trivial_baselines()["accuracy"]
    assert base.kind == MAJORITY and base.value == pytest.approx(float((targets == 0).float().mean()))


def test_theory_majority_favours_the_tie_label_at_even_length_and_listops_the_training_majority(tmp_path):
    exp = experiment(tmp_path, "theory", data={"seq_len": 8})  # counts 0..8 uniform, label 0 for 0..4: 5/9
    base = exp.trivial_baselines()["test_acc"]
    assert base.kind == MAJORITY and base.value == pytest.approx(float((exp.test.labels == 0).float().mean()))
    base = experiment(tmp_path, "theory", data={"seq_len": 9}).trivial_baselines()["test_acc"]
    assert base.value == pytest.approx(0.5) and base.kind == CHANCE  # both labels scored alike: exactly 1/2
    exp = experiment(tmp_path, "theory", "listops", {"n_train": 64, "n_test": 64})
    favoured = Counter(exp.train.labels.tolist()).most_common(1)[0][0]
    base = exp.trivial_baselines()["test_acc"]
    assert base.kind == MAJORITY and base.value == pytest.approx(float((exp.test.labels == favoured).float().mean()))


def test_classification_answers_the_training_majority_on_the_validation_set(tmp_path):
    exp = experiment(tmp_path, "classification")
    train, val = labels_of(exp.data.train).tolist(), labels_of(exp.data.val)
    count = Counter(train).most_common(1)[0][1]
    favoured = [c for c, k in Counter(train).items() if k == count]
    expected = sum(float((val == c).float().mean()) for c in favoured) / len(favoured)
    base = exp.trivial_baselines()["top1"]
    assert base.kind == MAJORITY and base.value == pytest.approx(expected)
    assert 0 < base.value < 0.3  # ten digits, roughly balanced


def test_restoration_baseline_is_the_noisy_input_or_bicubic_column(tmp_path):
    exp = experiment(tmp_path, "restoration", data={"degradation": "denoise", "sigma": 50})
    base = exp.trivial_baselines()["psnr"]
    assert base.kind == "noisy input" and base.value == pytest.approx(20 * math.log10(255 / 50), abs=1.0)
    exp = experiment(tmp_path, "restoration")
    base, metrics = exp.trivial_baselines()["psnr"], exp.evaluate()
    assert base.kind == "bicubic x2" and base.value == pytest.approx(metrics["psnr_bicubic"])
    assert baseline_columns(exp, "psnr") == {"baseline": base.value, "baseline_kind": "bicubic x2"}


def test_pde_baseline_is_the_better_of_mean_field_and_identity():
    gen = torch.Generator().manual_seed(0)
    train_y, x = torch.randn(8, 1, 16, generator=gen), torch.randn(4, 1, 16, generator=gen)
    assert trivial_rel_l2(train_y, x, x.clone(), 1, snapshot_channels=1) == (0.0, "identity")  # the output is the input
    mean_target = train_y.mean(0, keepdim=True).expand(4, 1, 16)
    assert trivial_rel_l2(train_y, x, mean_target, 1, snapshot_channels=1)[1] == "mean field"
    value, kind = trivial_rel_l2(train_y, x, x.clone(), 1, snapshot_channels=0)  # Darcy: no identity to carry
    assert kind == "mean field" and value == pytest.approx(relative_l2(mean_target.contiguous(), x, 1))


def test_pde_identity_carries_the_last_snapshot_of_every_field():
    """Two fields (time-major channels: step 0 u, v; step 1 u, v), two output steps: the identity predicts
    the last input snapshot (u1, v1) at both output steps."""
    x = torch.stack([torch.full((8,), float(v)) for v in (1, 2, 3, 4)])[None]  # (1, 4 channels, 8)
    y = torch.stack([torch.full((8,), float(v)) for v in (3, 4, 3, 4)])[None]
    train_y = torch.zeros(2, 4, 8)
    assert trivial_rel_l2(train_y, x, y, 1, snapshot_channels=2) == (0.0, "identity")


def test_pde_burgers_run_scores_its_own_trivial_predictors(tmp_path):
    exp = experiment(tmp_path, "pde")
    d = exp.data
    identity = relative_l2(d.test_x[:, -1:].expand_as(d.test_y).contiguous(), d.test_y, 1)
    mean = relative_l2(d.train_y.mean(0, keepdim=True).expand_as(d.test_y).contiguous(), d.test_y, 1)
    base = exp.trivial_baselines()["rel_l2"]
    assert base.value == pytest.approx(min(identity, mean)) and base.kind == ("identity" if identity < mean else "mean field")


def test_argen_unigram_nll_is_log2_vocab_for_uniform_codes_and_smoothed():
    uniform = torch.arange(16).repeat(4)
    assert unigram_nll_bits_per_token(uniform, uniform, 16) == pytest.approx(4.0)
    skewed = torch.zeros(6, dtype=torch.long)  # add-one: code 0 has 7 / 10 of the mass over 4 codes
    assert unigram_nll_bits_per_token(skewed, torch.tensor([0, 1]), 4) == pytest.approx(-(math.log2(0.7) + math.log2(0.1)) / 2)


def test_argen_run_baseline_is_the_unigram_nll_of_its_codes(tmp_path):
    exp = experiment(tmp_path, "argen")
    base = exp.trivial_baselines()["nll_bits_per_token"]
    assert base.kind == "unigram codes"
    assert base.value == pytest.approx(unigram_nll_bits_per_token(exp.train_codes, exp.test_codes, exp.model.vocab))
    assert 0 < base.value <= math.log2(exp.model.vocab) + 0.5


def test_dense_segmentation_majority_mask_and_detection_with_no_boxes(tmp_path):
    exp = experiment(tmp_path, "dense")
    base = exp.trivial_baselines()["miou"]
    assert base.kind == MAJORITY and 0 < base.value < 1
    masks = torch.stack([exp.data.val[i][1]["mask"] for i in range(len(exp.data.val))]).flatten()
    masks = masks[masks != IGNORE_INDEX]
    present = masks.unique()
    # a constant mask of the majority (background) class: its IoU is its pixel share, every other class 0,
    # averaged over the classes present
    share = max(float((masks == c).float().mean()) for c in present)
    assert base.value == pytest.approx(share / len(present), rel=1e-4)
    exp = experiment(tmp_path, "dense", model={"head": "detection"})
    assert exp.trivial_baselines()["map"].value == pytest.approx(0.0)
