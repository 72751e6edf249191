import numpy as np
import pandas as pd

from harness.report.load import normalize, parse_suite
from harness.report.paired import compare_variants, equal_budget, holm, paired_test, select_configs

import synthetic


def test_holm_known_values():
    p = holm([0.01, 0.04, 0.03, np.nan])
    assert np.allclose(p[:3], [0.03, 0.06, 0.06]) and np.isnan(p[3])
    q = holm([0.5, 0.9])
    assert q[0] == 1.0 and q[1] == 1.0


def test_test_choice_by_n():
    rng = np.random.default_rng(0)
    assert paired_test(rng.normal(size=5), rng.normal(size=5))["test"] == "paired t"
    assert paired_test(rng.normal(size=8), rng.normal(size=8))["test"] == "wilcoxon"


def test_planted_difference_found():
    rng = np.random.default_rng(2)
    shared = rng.normal(0, 3, 8)  # large seed effect: only pairing reveals the difference
    a = shared + 1.0 + rng.normal(0, 0.3, 8)
    b = shared + rng.normal(0, 0.3, 8)
    r = paired_test(a, b)
    assert r["test"] == "wilcoxon" and r["p"] < 0.05 and r["ci_low"] > 0
    r5 = paired_test(a[:5], b[:5])
    assert r5["test"] == "paired t" and r5["p"] < 0.05 and r5["ci_low"] > 0


def _fp_rate(n, reps, rng):
    hits = 0
    for _ in range(reps):
        shared = rng.normal(0, 2, n)
        hits += paired_test(shared + rng.normal(0, 1, n), shared + rng.normal(0, 1, n))["p"] < 0.05
    return hits / reps


def test_null_false_positive_rate_near_alpha():
    rng = np.random.default_rng(12345)
    reps = 600
    tol = 3 * np.sqrt(0.05 * 0.95 / reps)  # binomial 3-sigma band
    fp_t = _fp_rate(4, reps, rng)  # paired t: exact under normal errors
    assert abs(fp_t - 0.05) < tol, fp_t
    fp_w = _fp_rate(10, reps, rng)  # Wilcoxon: discrete, must not exceed alpha beyond noise
    assert fp_w < 0.05 + tol and fp_w > 0.05 - 2 * tol, fp_w


def _suite(**kw):
    return parse_suite({"suite": "s", "tasks": {"cls": synthetic.task_entry("classification", "top1", True, "%",
                                                                             0.5, **kw)}})


def test_compare_variants_ssm_vs_each_other_and_holm():
    rng = np.random.default_rng(3)
    suite = _suite()
    df = normalize(pd.DataFrame(synthetic.classification_rows(rng, effect=2.0, seeds=5)), suite)
    c = compare_variants(df, suite)
    assert set(zip(c["variant_a"], c["variant_b"])) == {("mamba", "attention"), ("mamba", "gated_cnn")}
    assert (c["adv"] > 1.5).all() and c["significant"].all()
    assert (c["p_holm"] >= c["p"]).all()


def test_lower_is_better_orientation():
    rng = np.random.default_rng(4)
    suite = parse_suite({"suite": "s", "tasks": {"t": synthetic.task_entry("pde", "rel_l2", False, "", 0.05,
                                                                           relative=True)}})
    rows = []
    for s in range(5):
        rows.append(synthetic.base_row("t", "pde", "mamba", s, rel_l2=0.05 + rng.normal(0, 1e-4)))
        rows.append(synthetic.base_row("t", "pde", "attention", s, rel_l2=0.10 + rng.normal(0, 1e-4)))
    c = compare_variants(normalize(pd.DataFrame(rows), suite), suite)
    r = c.iloc[0]
    assert r["diff"] < 0 and r["adv"] > 0  # mamba lower error = better
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
