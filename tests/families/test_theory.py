"""The theory family (Honarpisheh et al., arXiv 2502.01473): seeded data, the selective SSM's s_A control,
its two implementations against the shared scan, and short real training runs through the shared loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.config.sections import TrainConfig
from harness.errors import Diverged
from harness.families import FAMILIES, RunContext
from harness.families.theory.data import (
    LISTOPS_END,
    LISTOPS_TOKENS,
    PAD,
    ListOpsParams,
    MajorityParams,
    listops,
    majority,
)
from harness.families.theory.config import TheoryModelParams
from harness.families.theory.family import TheoryFamily
from harness.families.theory.model import SelectiveSSMClassifier
from harness.run.train import seed_everything, train
from harness.run.runner import build_experiment

CPU = torch.device("cpu")



def make_ctx(tmp_path, use="ssm", dataset="majority", data=None, seed=0, **model) -> RunContext:
    fam = TheoryFamily
    defaults = {"majority": {"seq_len": 16, "n_train": 64, "n_test": 64}, "listops": {"seq_len": 32, "n_train": 48, "n_test": 32}}
    return RunContext(
        task="t",
        variant=use,
        use=use,
        dataset=dataset,
        data=fam.datasets[dataset].params(**{**defaults[dataset], **(data or {})}),
        model=fam.ModelParams(**model),
        seed=seed,
        device=CPU,
        cache_dir=tmp_path,
        train_batch_size=16,
        eval_batch_size=32,
    )


# ---------------------------------------------------------------- data


def test_registered():
    assert FAMILIES.get("theory") is TheoryFamily
    assert TheoryFamily.ssm_variants == {"ssm"}
    assert set(TheoryFamily.ssm_variants) <= set(TheoryFamily.variants)


def test_majority_deterministic_per_seed_and_labels_are_the_majority():
    p = MajorityParams(seq_len=20, n_train=50, n_test=40, zero_fraction=0.25)
    a, b, c = majority(p, 0), majority(p, 0), majority(p, 1)
    for x, y in zip(a, b):
        assert torch.equal(x.tokens, y.tokens) and torch.equal(x.labels, y.labels)
    assert not torch.equal(a[0].tokens, c[0].tokens)
    train, test = a
    assert (train.tokens == PAD).sum(1).eq(5).all()  # exactly zero_fraction of each training sequence
    assert (test.tokens != PAD).all()  # test inputs are clean
    ones, zeros = (test.tokens == 2).sum(1), (test.tokens == 1).sum(1)
    assert (ones != zeros).all()  # even T: ties were redrawn
    assert torch.equal(test.labels, (ones > zeros).long())


def _evaluate_listops(tokens: list[int]) -> int:
    """An independent stack evaluator of a (prefix, bracketed) ListOps token list."""
    names = {v: k for k, v in LISTOPS_TOKENS.items()}
    stack: list[list] = []
    for tok in (names[t] for t in tokens if t != PAD):
        if tok.startswith("["):
            stack.append([tok])
        elif tok == LISTOPS_END:
            op, *args = stack.pop()
            value = {"[MIN": min, "[MAX": max, "[MED": lambda a: int(np.median(a)), "[SM": lambda a: sum(a) % 10}[op](args)
            if not stack:
                return value
            stack[-1].append(value)
        elif stack:
            stack[-1].append(int(tok))
        else:
            return int(tok)
    raise AssertionError("unterminated expression")


def test_listops_deterministic_distinct_padded_and_labelled():
    p = ListOpsParams(seq_len=40, n_train=60, n_test=30)
    (train, test), (train2, test2) = listops(p, 3), listops(p, 3)
    assert torch.equal(train.tokens, train2.tokens) and torch.equal(test.labels, test2.labels)
    assert not torch.equal(listops(p, 4)[0].tokens, train.tokens)
    both = torch.cat([train.tokens, test.tokens])
    assert len({tuple(r.tolist()) for r in both}) == len(both)  # distinct across train and test
    assert (both[:, -1] == LISTOPS_TOKENS[LISTOPS_END]).all()  # left-padded: the last step closes the root
    lengths = (both != PAD).sum(1)
    assert (lengths > 10).all() and (lengths <= 40).all()
    for tokens, label in zip(both.tolist(), torch.cat([train.labels, test.labels]).tolist()):
        assert _evaluate_listops(tokens) == label


def test_listops_impossible_request_is_a_clear_error():
    with pytest.raises(ValueError, match="raise seq_len"):
        listops(ListOpsParams(seq_len=4, max_depth=1, min_length_ratio=0.0, n_train=50, n_test=50), 0)


def test_cached_dataset_is_reused(tmp_path):
    ctx = make_ctx(tmp_path)
    first = build_experiment(TheoryFamily(), ctx)
    assert len(list((tmp_path / "theory").glob("*.pt"))) == 1
    again = build_experiment(TheoryFamily(), ctx)
    assert torch.equal(first.train.tokens, again.train.tokens)


# ---------------------------------------------------------------- the selective SSM


@pytest.mark.parametrize("s_A", [-0.1, 0.0, 0.1])
def test_A_initialised_to_the_requested_spectral_abscissa(s_A):
    model = SelectiveSSMClassifier(3, 2, 8, 6, s_A, 0.5, "input", 0.0)
    assert model.spectral_abscissa() == float(torch.tensor(s_A))  # exact, in A's fp32


def test_fixed_delta_ignores_the_input():
    u1, u2 = torch.randn(2, 7, 8), torch.randn(2, 7, 8)
    fixed = SelectiveSSMClassifier(3, 2, 8, 4, -0.1, 1.0, "fixed", 0.3)
    assert torch.equal(fixed.delta(u1), fixed.delta(u2))
    assert torch.allclose(fixed.delta(u1), torch.nn.functional.softplus(torch.tensor(0.3)).expand(2, 7))
    selective = SelectiveSSMClassifier(3, 2, 8, 4, -0.1, 1.0, "input", 0.3)
    assert not torch.allclose(selective.delta(u1), selective.delta(u2))


@pytest.mark.parametrize("s_A", [-0.2, 0.05])
def test_unrolled_attention_form_equals_the_shared_scan(s_A):
    torch.manual_seed(0)
    unrolled = SelectiveSSMClassifier(3, 2, 8, 4, s_A, 0.5, "input", 0.0, impl="unrolled")
    scan = SelectiveSSMClassifier(3, 2, 8, 4, s_A, 0.5, "input", 0.0, impl="scan")
    scan.load_state_dict(unrolled.state_dict())
    tokens = torch.randint(0, 3, (4, 50))
    a, b = unrolled.features(tokens), scan.features(tokens)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.detach().abs().max()))
    assert (unrolled.last_backend, scan.last_backend) == ("unrolled", "reference")


def test_scan_impl_flops_include_the_scan_closed_form():
    from harness.kernels.flop_formulas import selective_scan_flops
    from harness.measure.flops import count_flops

    model = SelectiveSSMClassifier(3, 2, 8, 4, 0.05, 0.5, "input", 0.0, impl="scan")
    tokens = torch.randint(0, 3, (4, 50))
    counts = count_flops(model, (tokens,))
    assert counts.skipped == []
    assert counts.flops_fwd >= selective_scan_flops(4, 8, 50, 4, has_D=False)  # the scan is counted, not skipped


# ---------------------------------------------------------------- training through the shared loop


@pytest.mark.parametrize("use", ["ssm", "softmax_attention", "linear_attention"])
def test_a_few_steps_reduce_the_loss(tmp_path, use):
    seed_everything(0)
    ctx = make_ctx(tmp_path, use=use)
    exp = build_experiment(TheoryFamily(), ctx)
    result = train(exp, TrainConfig(steps=40, lr=1e-2, warmup_steps=2), CPU)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert "batch_loss" in result.tracked and ("s_A" in result.tracked) == (use == "ssm")
    (tokens,) = TheoryFamily().example_inputs(ctx, 3, exp.data)
    assert exp.model(tokens).shape == (3, 2)


def test_gen_gap_is_train_minus_test_accuracy(tmp_path):
    seed_everything(0)
    exp = build_experiment(TheoryFamily(), make_ctx(tmp_path, use="ssm"))
    train(exp, TrainConfig(steps=10, lr=1e-2, warmup_steps=0), CPU)
    metrics = exp.evaluate()
    with torch.no_grad():
        manual = {
            name: float((exp.model(split.tokens).argmax(-1) == split.labels).float().mean())
            for name, split in (("train_acc", exp.train), ("test_acc", exp.test))
        }
    assert metrics["train_acc"] == pytest.approx(manual["train_acc"])
    assert metrics["test_acc"] == pytest.approx(manual["test_acc"])
    assert metrics["gen_gap"] == pytest.approx(manual["train_acc"] - manual["test_acc"])
    assert set(metrics) == set(TheoryFamily.metrics)


def test_clipping_keeps_the_spectral_abscissa(tmp_path):
    cfg, s_A = TrainConfig(steps=30, lr=3e-2, warmup_steps=0), -0.5
    seed_everything(0)
    free = build_experiment(TheoryFamily(), make_ctx(tmp_path, s_A=s_A, clip_A="off", data={"seq_len": 32}))
    assert train(free, cfg, CPU).tracked["max_s_A"] > s_A + 0.05  # unclipped, training raises max(A) here
    seed_everything(0)
    clipped = build_experiment(TheoryFamily(), make_ctx(tmp_path, s_A=s_A, clip_A="on", data={"seq_len": 32}))
    tracked = train(clipped, cfg, CPU).tracked
    assert tracked["max_s_A"] <= s_A and clipped.model.spectral_abscissa() <= s_A


def test_unstable_A_blows_up_at_long_T(tmp_path):
    """s_A > 0: the state grows like exp(s_A * sum Delta); nothing in the model clips it."""
    seed_everything(0)
    mild = build_experiment(TheoryFamily(), make_ctx(tmp_path, s_A=0.3, data={"seq_len": 120}))
    tokens, labels = mild.train_batch(0)
    assert float(mild.loss((tokens, labels)).detach()) > 1e6 * math.log(2)
    seed_everything(0)
    overflow = build_experiment(TheoryFamily(), make_ctx(tmp_path, s_A=0.5, data={"seq_len": 400}))
    with pytest.raises(Diverged):
        train(overflow, TrainConfig(steps=3, warmup_steps=0), CPU)


def test_batches_are_deterministic_and_cover_each_epoch(tmp_path):
    exp = build_experiment(TheoryFamily(), make_ctx(tmp_path))  # 64 training sequences, batch 16
    epoch = torch.cat([exp._batch_indices(s) for s in range(4)])
    assert sorted(epoch.tolist()) == list(range(64))
    assert torch.equal(exp._batch_indices(5), build_experiment(TheoryFamily(), make_ctx(tmp_path))._batch_indices(5))


def test_schema_and_row_extras(tmp_path):
    assert TheoryModelParams(clip_A="on").clip_A is True and TheoryModelParams(clip_A="off").clip_A is False
    with pytest.raises(ValueError):
        TheoryModelParams(delta="sometimes")
    ctx = make_ctx(tmp_path, dataset="listops", use="softmax_attention", pos="rope", d_model=8)
    extras = build_experiment(TheoryFamily(), ctx).row_extras()
    assert extras["seq_len"] == 32 and extras["d_model"] == 8
    ssm_extras = build_experiment(TheoryFamily(), make_ctx(tmp_path, s_A=0.1)).row_extras()
    assert ssm_extras["s_A_init"] == pytest.approx(0.1) and ssm_extras["delta"] == "input"
    (tokens,) = TheoryFamily().example_inputs(ctx, 5)
    assert tokens.shape == (5, 32)
