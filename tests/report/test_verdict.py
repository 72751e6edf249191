from pathlib import Path

import numpy as np
import pandas as pd

from harness.report import verdict as V
from harness.report.load import normalize, parse_suite

import synthetic


def _suite(causal=False):
    return parse_suite({"suite": "s", "tasks": {"cls": synthetic.task_entry("classification", "top1", True, "%",
                                                                             0.5, causal=causal)}})


def _verdict(rows, suite=None):
    suite = suite or _suite()
    vs = V.task_verdicts(normalize(pd.DataFrame(rows), suite), suite)
    assert len(vs) == 1
    return vs[0]


def test_needed_when_ssm_beats_every_other_beyond_threshold():
    v = _verdict(synthetic.classification_rows(np.random.default_rng(0), effect=2.0, seeds=5, noise=0.2))
    assert v.verdict == V.NEEDED and v.recommended == "mamba"
    text = v.reasons_text()
    assert "gated_cnn" in text and "attention" in text and "MambaOut" in text and "threshold 0.5" in text
    assert "cost ratios" in text and "L/(6D)" in text and "causal: no" in text
    assert "disagrees" in text  # short, non-causal task yet SSM needed: the report says so


def test_not_needed_when_gated_cnn_within_threshold_and_cost_decides():
    v = _verdict(synthetic.classification_rows(np.random.default_rng(1), effect=0.0, seeds=6, noise=0.1))
    assert v.verdict == V.NOT_NEEDED
    assert v.recommended == "gated_cnn"  # cheapest (latency 1.0 vs attention 1.5) among the equivalent ones
    assert "within the threshold" in v.reasons_text()


def test_not_needed_when_no_ssm_variant_better():
    v = _verdict(synthetic.classification_rows(np.random.default_rng(2), effect=-3.0, seeds=4, noise=0.2))
    assert v.verdict == V.NOT_NEEDED and "better than the SSM" in v.reasons_text()


def test_inconclusive_with_wide_ci_or_too_few_seeds():
    v = _verdict(synthetic.classification_rows(np.random.default_rng(3), effect=0.6, seeds=3, noise=2.0))
    assert v.verdict == V.INCONCLUSIVE and v.recommended is None
    v1 = _verdict(synthetic.classification_rows(np.random.default_rng(3), effect=5.0, seeds=1))
    assert v1.verdict == V.INCONCLUSIVE and "too few shared seeds" in v1.reasons_text()


def test_inconclusive_when_ssm_side_failed():
    rows = [r for r in synthetic.classification_rows(np.random.default_rng(4), seeds=3)]
    for r in rows:
        if r["variant"] == "mamba":
            r["status"], r["top1"] = "oom", np.nan
    v = _verdict(rows)
    assert v.verdict == V.INCONCLUSIVE and "no finished SSM variant" in v.reasons_text()
    assert "mamba oom x3" in v.reasons_text()


def test_inconclusive_when_a_no_ssm_variant_left_no_evidence():
    """The SSM beats attention clearly, but the gated CNN (MambaOut's test) failed every seed, or recorded no
    metric: it was not beaten, so the SSM is not shown needed (as when it finished one seed)."""
    for status in ("oom", "ok"):
        rows = synthetic.classification_rows(np.random.default_rng(0), effect=2.0, seeds=5, noise=0.2)
        for r in rows:
            if r["variant"] == "gated_cnn":
                r["status"], r["top1"] = status, np.nan
        v = _verdict(rows)
        assert v.verdict == V.INCONCLUSIVE and v.recommended is None
        assert f"vs gated_cnn: no finished run with top1 ({status} x5) -> no evidence" in v.reasons_text()


def test_size_sweep_needed_only_at_long_lengths_names_sizes():
    rng = np.random.default_rng(5)
    suite = parse_suite({"suite": "s", "tasks": {"lm": synthetic.task_entry(
        "sequence", "nll_bits_per_token", False, "bits/token", 0.02, causal=True, sweep_keys=["data.seq_len"])}})
    rows = []
    for L, gap in ((256, 0.0), (1024, 0.0), (4096, 0.2)):
        for s in range(5):
            shared = rng.normal(0, 0.05)
            rows.append(synthetic.base_row("lm", "sequence", "mamba", s, {"data.seq_len": L},
                                           nll_bits_per_token=2 + shared + rng.normal(0, 0.002)))
            rows.append(synthetic.base_row("lm", "sequence", "attention", s, {"data.seq_len": L},
                                           nll_bits_per_token=2 + gap + shared + rng.normal(0, 0.002)))
    v = _verdict(rows, suite)
    assert v.verdict == V.NEEDED
    assert "seq_len=256 to 1024: SSM not needed; seq_len=4096: SSM needed" in v.reasons_text()


def test_rule_text_is_shipped_and_matches_docstring():
    md = V.verdict_rule_markdown()
    assert md == (Path(V.__file__).with_name("VERDICT_RULE.md")).read_text()
    for phrase in ("SSM needed", "SSM not needed", "inconclusive", "Holm", "L/(6D)", "cheapest"):
        assert phrase in md and phrase in V.__doc__


def test_an_ablation_only_task_says_so_rather_than_no_finished_runs():
    rows = [synthetic.base_row("cls", "classification", "mamba", s, top1=80.0, ablation=abl)
            for abl in ("base", "lti") for s in range(3)]
    v = _verdict(rows)
    assert v.verdict == V.INCONCLUSIVE and "ablation study only" in v.reasons_text()
    v = _verdict([dict(r, status="error", top1=np.nan) for r in rows])
    assert "no finished runs" in v.reasons_text()


def test_an_undecided_comparison_names_the_criteria_it_failed():
    """A clear, consistent advantage whose Holm-corrected p is not significant must not be reported as a
    CI straddling zero: the reason names what failed."""
    r = pd.Series({"n": 2, "adv": 0.279, "adv_ci_low": 0.181, "adv_ci_high": 0.377, "p_holm": 0.21})
    text = V._outcome("fno", r, 0.005, 0.05, beats=False, within=False, enough=True)
    assert "Holm p >= 0.05" in text and "CI includes 0" not in text and "not above the threshold" not in text
    r = pd.Series({"n": 3, "adv": -0.003, "adv_ci_low": -0.19, "adv_ci_high": 0.18, "p_holm": 1.0})
    text = V._outcome("galerkin", r, 0.02, 0.05, beats=False, within=False, enough=True)
    assert "not above the threshold" in text and "CI includes 0" in text and "+0.18 >= 0.02" in text


def test_variants_that_all_score_the_same_are_not_called_equivalent():
    """Every run at one value (pathfinder at chance, 0.5, after too little training) is no evidence that the
    SSM is not needed."""
    rows = [synthetic.base_row("cls", "classification", v, s, top1=50.0) for v in ("mamba", "attention") for s in range(3)]
    v = _verdict(rows)
    assert v.verdict == V.INCONCLUSIVE and "cannot be told apart" in v.reasons_text()
    v = _verdict([dict(r, top1=100.0) for r in rows])  # every model perfect: the no-SSM one is as good
    assert v.verdict == V.NOT_NEEDED and v.recommended == "attention"
