"""Ablations keep their base in the verdict and get a table a researcher can conclude from."""

import numpy as np
import pandas as pd

from harness.report.ablations import ablation_table
from harness.report.load import normalize, parse_suite
from harness.report.verdict import NEEDED, task_verdicts

import synthetic

SUITE = {"copy": synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)}


def _readme_example(seeds=8, seed=0):
    """The README's ablation example on one task: mamba is both a listed variant and the ablations' base (its rows
    say ablation: base), lti loses 0.3 accuracy, d_state_4 ties the base and is cheaper."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(seeds):
        shared = rng.normal(0, 0.02)
        for variant, ablation, acc, params, lat in (
                ("mamba", "base", 0.95, 1.0e6, 2.0), ("attention", "", 0.6, 1.0e6, 1.5), ("gated_cnn", "", 0.3, 1.0e6, 1.0),
                ("lti", "lti", 0.65, 0.9e6, 1.6), ("d_state_4", "d_state_4", 0.95, 0.8e6, 1.2)):
            rows.append(synthetic.base_row("copy", "sequence", variant, s, accuracy=acc + shared + rng.normal(0, 0.003),
                                           ablation=ablation, is_ssm=variant != "attention" and variant != "gated_cnn",
                                           params=params, latency_ms_p50=lat, baseline=0.125, baseline_kind="chance"))
    return rows


def _df(rows):
    suite = parse_suite({"suite": "s", "tasks": SUITE})
    return normalize(pd.DataFrame(rows), suite), suite


def test_the_ablation_base_stays_in_the_verdict():
    df, suite = _df(_readme_example())
    v = task_verdicts(df, suite)[0]
    assert v.verdict == NEEDED and v.recommended == "mamba"
    assert "best SSM variant mamba" in v.reasons_text() and "no finished SSM variant" not in v.reasons_text()
    assert "lti" not in v.reasons_text()  # ablations stay out of the verdict


def test_ablation_table_has_effect_error_control_threshold_and_cost_ratios():
    df, suite = _df(_readme_example())
    t = ablation_table(df, suite).set_index("ablation")
    lti, ds4 = t.loc["lti"], t.loc["d_state_4"]
    assert lti["base"] == "mamba" and lti["n"] == 8 and np.isclose(lti["diff"], -0.3, atol=0.01)
    assert lti["diff_ci_low"] < lti["diff"] < lti["diff_ci_high"] < -0.02
    assert lti["decision"] == "worse" and lti["p_worse_holm"] < 0.05 and lti["threshold"] == 0.02
    assert ds4["decision"] == "within" and ds4["p_within_holm"] < 0.05
    assert np.isclose(lti["params_ratio"], 0.9) and np.isclose(ds4["latency_ms_p50_ratio"], 0.6)
    assert lti["summary"].startswith("lti vs mamba: 0.3") and " fraction worse than mamba [-0.3" in lti["summary"]
    assert "beyond the threshold 0.02 fraction (Holm p=" in lti["summary"] and "the component matters for quality" in lti["summary"]
    assert "cost vs mamba: parameters 0.90x" in lti["summary"]
    assert "within ±0.02 fraction of mamba" in ds4["summary"] and "not needed for quality" in ds4["summary"]


def test_a_constant_difference_over_two_seeds_is_n_too_small_not_certainty():
    """Two seeds with the same paired difference used to give a zero-width CI and p = 0."""
    rows = [r for r in _readme_example(seeds=2)]
    for r in rows:
        if r["ablation"] == "lti":
            base = next(b for b in rows if b["ablation"] == "base" and b["seed"] == r["seed"])
            r["accuracy"] = base["accuracy"] - 0.3
    df, suite = _df(rows)
    lti = ablation_table(df, suite).set_index("ablation").loc["lti"]
    assert lti["decision"] == "n too small" and np.isnan(lti["diff_ci_low"]) and lti["p_worse"] == 0.25
    assert "with 2 seeds the smallest possible p is 0.25" in lti["summary"]


def test_a_base_named_by_the_ablation_rows_may_live_in_another_task():
    """include_base: false - the base's runs belong to another task; the ablation rows name it."""
    rows = _readme_example()
    other = [dict(r, task="base_task", ablation="") for r in rows if r["ablation"] == "base"]
    abl = [dict(r, ablation_base="mamba", ablation_base_task="base_task") for r in rows if r["ablation"] == "lti"]
    suite = parse_suite({"suite": "s", "tasks": {**SUITE, "base_task": SUITE["copy"]}})
    df = normalize(pd.DataFrame(other + abl), suite)
    t = ablation_table(df, suite)
    assert list(t["ablation"]) == ["lti"] and t["base"].iloc[0] == "mamba" and t["decision"].iloc[0] == "worse"
