import numpy as np
import pandas as pd

from harness.report.load import normalize, parse_suite
from harness.report.paired import compare_variants, equal_budget, holm, holm_by_cell, select_configs
from harness.report.sequential import threshold_test

import synthetic


def test_holm_known_values():
    p = holm([0.01, 0.04, 0.03, np.nan])
    assert np.allclose(p[:3], [0.03, 0.06, 0.06]) and np.isnan(p[3])
    q = holm([0.5, 0.9])
    assert q[0] == 1.0 and q[1] == 1.0


def test_one_sided_tests_at_the_threshold_reach_significance_at_six_seeds():
    """The old two-sided Wilcoxon could not pass Holm with two comparisons at n = 6 (smallest p 0.031); the
    one-sided test at the threshold can (1/64), and says "n too small" below 5 seeds instead of p = 0."""
    rng = np.random.default_rng(2)
    shared = rng.normal(0, 3, 6)  # large seed effect: only pairing reveals the difference
    a = shared + 1.0 + rng.normal(0, 0.1, 6)
    b = shared + rng.normal(0, 0.1, 6)
    r = threshold_test(a - b, 0.5)
    assert r.test == "signed-rank" and r.p_above == 1 / 64 and r.ci_low > 0.5
    assert holm([r.p_above, r.p_above])[0] < 0.05
    r2 = threshold_test([0.3, 0.3], 0.0)  # a constant paired difference over 2 seeds
    assert r2.note == "n too small" and r2.p_above == 0.25 and np.isnan(r2.ci_low)


def _suite(**kw):
    return parse_suite({"suite": "s", "tasks": {"cls": synthetic.task_entry("classification", "top1", True, "%",
                                                                             0.5, **kw)}})


def test_compare_variants_ssm_vs_each_other_and_holm():
    rng = np.random.default_rng(3)
    suite = _suite()
    df = normalize(pd.DataFrame(synthetic.classification_rows(rng, effect=2.0, seeds=6, noise=0.1)), suite)
    c = compare_variants(df, suite)
    assert set(zip(c["variant_a"], c["variant_b"])) == {("mamba", "attention"), ("mamba", "gated_cnn")}
    assert (c["adv"] > 1.5).all() and c["better"].all() and (c["decision"] == "better").all()
    assert (c["p_better_holm"] >= c["p_better"]).all() and np.allclose(c["p_better_holm"], 2 / 64)
    assert not c["within"].any() and (c["advice"] == "").all()


def test_lower_is_better_orientation():
    rng = np.random.default_rng(4)
    suite = parse_suite({"suite": "s", "tasks": {"t": synthetic.task_entry("pde", "rel_l2", False, "", 0.05,
                                                                           relative=True)}})
    rows = []
    for s in range(6):
        rows.append(synthetic.base_row("t", "pde", "mamba", s, rel_l2=0.05 + rng.normal(0, 1e-4)))
        rows.append(synthetic.base_row("t", "pde", "attention", s, rel_l2=0.10 + rng.normal(0, 1e-4)))
    c = compare_variants(normalize(pd.DataFrame(rows), suite), suite)
    r = c.iloc[0]
    assert r["diff"] < 0 and r["adv"] > 0 and r["decision"] == "better"  # mamba lower error = better
    assert np.isclose(r["threshold"], 0.05 * 0.10, rtol=0.01)  # relative threshold scaled by |mean_b|


def test_equal_budget_best_and_median_and_unequal_flag():
    suite = _suite(sweep_keys=["optim.lr"])
    rows = []
    for lr, val in ((1e-3, 70.0), (3e-4, 75.0), (1e-4, 72.0)):
        for s in range(2):
            rows.append(synthetic.base_row("cls", "classification", "mamba", s, {"optim.lr": lr}, top1=val + s * 0.1))
            if lr != 1e-4:
                rows.append(synthetic.base_row("cls", "classification", "attention", s, {"optim.lr": lr},
                                               top1=val - 1 + s * 0.1))
    df = normalize(pd.DataFrame(rows), suite)
    b = equal_budget(df, suite).set_index("variant")
    assert b.loc["mamba", "trials"] == 6 and b.loc["attention", "trials"] == 4
    assert b["unequal_trials"].all()
    assert np.isclose(b.loc["mamba", "best"], 75.05) and np.isclose(b.loc["mamba", "median"], 72.05)
    sel = select_configs(df, suite)
    assert set(sel["hp_point"]) == {'{"optim.lr": 0.0003}'}


def test_holm_by_cell_corrects_within_each_cell_only():
    t = pd.DataFrame({"task": ["a", "a", "b"], "size_point": ["{}", "{}", "{}"], "p": [0.01, 0.04, 0.01]})
    assert np.allclose(holm_by_cell(t), [0.02, 0.04, 0.01])


def test_sequential_looks_raise_the_p_value_and_the_seed_s_look_is_the_later_of_the_pair():
    """Seeds added at later looks (column look) are tested under the recorded design: the same data give a
    larger p than with seeds fixed in advance; a pair's look is the later of its two runs' looks."""
    from harness.report.sequential import SequentialDesign

    rng = np.random.default_rng(6)
    suite = _suite()
    rows = synthetic.classification_rows(rng, effect=2.0, seeds=8, noise=0.2)
    for r in rows:
        r["look"] = 0 if r["seed"] < 3 else (1 if r["seed"] < 5 else 2)
        if r["seed"] == 4 and r["variant"] == "attention":
            r["look"] = 2
    df = normalize(pd.DataFrame(rows), suite)
    fixed = compare_variants(df, suite).set_index("variant_b")
    seq = compare_variants(df, suite, design=SequentialDesign(max_seeds=10, seed_batch=2)).set_index("variant_b")
    assert (seq["p_better"] > fixed["p_better"]).all()
    assert seq.loc["gated_cnn", "looks"] == 3 and seq.loc["attention", "looks"] == 3
