from pathlib import Path

import numpy as np
import pandas as pd

from harness.report import verdict as V
from harness.report.load import normalize, parse_suite

import synthetic


def _suite(causal=False):
    return parse_suite({"suite": "s", "tasks": {"cls": synthetic.task_entry("classification", "top1", True, "%",
                                                                             0.5, causal=causal)}})


def _verdicts(rows, suite=None, **kw):
    suite = suite or _suite()
    return V.task_verdicts(normalize(pd.DataFrame(rows), suite), suite, **kw)


def _verdict(rows, suite=None, **kw):
    vs = _verdicts(rows, suite, **kw)
    assert len(vs) == 1
    return vs[0]


def test_needed_when_ssm_beats_every_other_beyond_threshold():
    v = _verdict(synthetic.classification_rows(np.random.default_rng(0), effect=2.0, seeds=6, noise=0.2))
    assert v.verdict == V.NEEDED and v.recommended == "mamba"
    text = v.reasons_text()
    assert "gated_cnn" in text and "attention" in text and "MambaOut" in text and "threshold 0.5" in text
    assert "cost ratios" in text and "L/(6D)" in text and "causal: no" in text
    assert "SSM needed for quality; cheapest adequate variant: mamba (the only adequate variant" in text
    assert "disagrees" in text  # short, non-causal task yet SSM needed: the report says so


def test_not_needed_when_gated_cnn_within_threshold_and_cost_decides():
    v = _verdict(synthetic.classification_rows(np.random.default_rng(1), effect=0.0, seeds=8, noise=0.1))
    assert v.verdict == V.NOT_NEEDED
    # every variant is adequate (all tie); the gated CNN is cheapest (latency 1.0 vs attention 1.5, mamba 2.0)
    assert v.recommended == "gated_cnn"
    assert "within the threshold" in v.reasons_text()
    assert "SSM not needed for quality; cheapest adequate variant: gated_cnn (latency p50 0." in v.reasons_text()


def test_not_needed_when_no_ssm_variant_better():
    v = _verdict(synthetic.classification_rows(np.random.default_rng(2), effect=-3.0, seeds=6, noise=0.2))
    assert v.verdict == V.NOT_NEEDED and "better than the SSM" in v.reasons_text()


def test_three_seeds_are_too_few_to_decide_and_say_how_many_would():
    """No test that holds for bimodal seed outcomes can decide at 3 seeds (smallest p = 1/8): a clear effect over
    3 seeds is "n too small", with the seeds that would decide it, never a verdict."""
    v = _verdict(synthetic.classification_rows(np.random.default_rng(0), effect=2.0, seeds=3, noise=0.2))
    assert v.verdict == V.INCONCLUSIVE and v.recommended is None
    text = v.reasons_text()
    assert "n too small" in text and "smallest possible p is 0.12 > 0.025" in text and "seeds would decide it" in text
    v1 = _verdict(synthetic.classification_rows(np.random.default_rng(3), effect=5.0, seeds=1))
    assert v1.verdict == V.INCONCLUSIVE and "n too small" in v1.reasons_text()


def test_inconclusive_with_noisy_seeds_names_both_tests_and_the_seeds_needed():
    v = _verdict(synthetic.classification_rows(np.random.default_rng(3), effect=0.6, seeds=8, noise=2.0))
    assert v.verdict == V.INCONCLUSIVE
    text = v.reasons_text()
    assert "undecided: SSM not shown better beyond the threshold, nor" in text
    assert "Holm p: better" in text and ", within " in text
    assert "seeds would decide it" in text or "sits on the threshold" in text


def test_inconclusive_when_ssm_side_failed():
    rows = [r for r in synthetic.classification_rows(np.random.default_rng(4), seeds=6)]
    for r in rows:
        if r["variant"] == "mamba":
            r["status"], r["top1"] = "oom", np.nan
    v = _verdict(rows)
    assert v.verdict == V.INCONCLUSIVE and "no finished SSM variant" in v.reasons_text()
    assert "mamba oom x6" in v.reasons_text()


def test_inconclusive_when_a_no_ssm_variant_left_no_evidence():
    """The SSM beats attention clearly, but the gated CNN (MambaOut's test) failed every seed, or recorded no
    metric: it was not beaten, so the SSM is not shown needed."""
    for status in ("oom", "ok"):
        rows = synthetic.classification_rows(np.random.default_rng(0), effect=2.0, seeds=6, noise=0.2)
        for r in rows:
            if r["variant"] == "gated_cnn":
                r["status"], r["top1"] = status, np.nan
        v = _verdict(rows)
        assert v.verdict == V.INCONCLUSIVE and v.recommended is None
        assert f"vs gated_cnn: no finished run with top1 ({status} x6) -> no evidence" in v.reasons_text()


def _lm_suite():
    return parse_suite({"suite": "s", "tasks": {"lm": synthetic.task_entry(
        "sequence", "nll_bits_per_token", False, "bits/token", 0.02, causal=True, sweep_keys=["data.seq_len"])}})


def test_size_sweep_needed_only_at_long_lengths_names_sizes():
    rng = np.random.default_rng(5)
    rows = []
    for L, gap in ((256, 0.0), (1024, 0.0), (4096, 0.2)):
        for s in range(7):
            shared = rng.normal(0, 0.05)
            rows.append(synthetic.base_row("lm", "sequence", "mamba", s, {"data.seq_len": L},
                                           nll_bits_per_token=2 + shared + rng.normal(0, 0.002)))
            rows.append(synthetic.base_row("lm", "sequence", "attention", s, {"data.seq_len": L},
                                           nll_bits_per_token=2 + gap + shared + rng.normal(0, 0.002)))
    v = _verdict(rows, _lm_suite())
    assert v.verdict == V.NEEDED
    assert "seq_len=256 to 1024: SSM not needed; seq_len=4096: SSM needed" in v.reasons_text()


def test_rule_text_is_shipped_and_matches_docstring():
    md = V.verdict_rule_markdown()
    assert md == (Path(V.__file__).with_name("VERDICT_RULE.md")).read_text()
    for phrase in ("SSM needed", "SSM not needed", "inconclusive", "cost only", "Holm", "L/(6D)", "cheapest",
                   "baseline", "n too small", "signed-rank", "--until-decided"):
        assert phrase in md, phrase
    for phrase in ("SSM needed", "SSM not needed", "inconclusive", "cost only", "Holm", "L/(6D)", "cheapest",
                   "baseline"):
        assert phrase in V.__doc__, phrase


def test_an_ablation_study_without_a_no_ssm_variant_says_so():
    rows = [synthetic.base_row("cls", "classification", "mamba" if abl == "base" else abl, s, top1=80.0, ablation=abl)
            for abl in ("base", "lti") for s in range(3)]
    v = _verdict(rows)
    assert v.verdict == V.INCONCLUSIVE and "an ablation study" in v.reasons_text()
    v = _verdict([dict(r, status="error", top1=np.nan) for r in rows])
    assert "no finished runs" in v.reasons_text()
    v = _verdict([r for r in rows if r["ablation"] == "lti"])
    assert "an ablation study only" in v.reasons_text()


def test_variants_that_all_score_the_same_are_not_called_equivalent():
    """Without a baseline column (older folders): every run at one value (pathfinder at chance, 0.5, after too
    little training) is no evidence that the SSM is not needed; every model perfect is."""
    rows = [synthetic.base_row("cls", "classification", v, s, top1=50.0) for v in ("mamba", "attention") for s in range(3)]
    v = _verdict(rows)
    assert v.verdict == V.INCONCLUSIVE and "cannot be told apart" in v.reasons_text()
    v = _verdict([dict(r, top1=100.0) for r in rows])  # every model perfect: the no-SSM one is as good
    assert v.verdict == V.NOT_NEEDED and v.recommended == "attention"
    assert "scored the best possible top1 on every seed" in v.reasons_text()


# ----------------------------------------------------------------------------- A: models that learned nothing
def _copy_suite():
    return parse_suite({"suite": "s", "tasks": {"copy": synthetic.task_entry(
        "sequence", "accuracy", True, "fraction", 0.02)}})


def _copy_rows(means, seeds=6, sd=0.01, seed=0, baseline=0.125):
    rng = np.random.default_rng(seed)
    return [synthetic.base_row("copy", "sequence", v, s, accuracy=float(np.clip(m + rng.normal(0, sd), 0, 1)),
                               baseline=baseline, baseline_kind="chance", latency_ms_p50=lat)
            for s in range(seeds) for v, (m, lat) in means.items()]


def test_every_model_at_chance_is_inconclusive_and_names_variants_and_baselines():
    """The 30-step selective-copying suite: every model at chance (0.125 with 8 tokens) said "SSM not needed,
    recommended gated_cnn"; now: did not learn the task, naming each variant against its baseline."""
    rows = _copy_rows({"mamba": (0.125, 2.0), "attention": (0.125, 1.5), "gated_cnn": (0.125, 1.0)})
    v = _verdict(rows, _copy_suite())
    assert v.verdict == V.INCONCLUSIVE and v.recommended is None
    text = v.reasons_text()
    assert "did not learn the task" in text
    for name in ("mamba", "attention", "gated_cnn"):
        assert f"{name} 0.1" in text
    assert "baseline 0.125, chance" in text


def test_ssm_better_against_a_gated_cnn_at_chance_still_decides():
    """A no-SSM variant at its baseline is evidence (the SSM learned what it could not), not a veto."""
    rows = _copy_rows({"mamba": (0.9, 2.0), "attention": (0.6, 1.5), "gated_cnn": (0.125, 1.0)})
    v = _verdict(rows, _copy_suite())
    assert v.verdict == V.NEEDED and v.recommended == "mamba"
    assert "gated_cnn 0.1" in v.reasons_text() and ": no (Holm p=" in v.reasons_text()


def test_within_the_threshold_counts_only_for_a_variant_that_learned():
    """The gated CNN sits within the threshold of an SSM that learned nothing either: no verdict from it; a
    gated CNN that learned and ties the SSM decides "not needed"."""
    rows = _copy_rows({"mamba": (0.126, 2.0), "gated_cnn": (0.125, 1.0)}, sd=0.004)
    v = _verdict(rows, _copy_suite())
    assert v.verdict == V.INCONCLUSIVE and "did not learn the task" in v.reasons_text()
    rows = _copy_rows({"mamba": (0.95, 2.0), "gated_cnn": (0.95, 1.0)}, sd=0.004)
    v = _verdict(rows, _copy_suite())
    assert v.verdict == V.NOT_NEEDED and v.recommended == "gated_cnn"


def test_cost_only_task_gets_no_quality_verdict():
    rows = [dict(r, train_steps=0) for r in synthetic.classification_rows(np.random.default_rng(0), seeds=6)]
    v = _verdict(rows)
    assert v.verdict == V.COST_ONLY and v.recommended is None
    assert "cost only" in v.reasons_text() and "trained 0 steps" in v.reasons_text()
    assert V.open_items([v]) == []


# ----------------------------------------------------------------------------- D: recommendation weighs cost
def test_ssm_that_ties_attention_and_is_cheaper_is_recommended_with_the_reason():
    rng = np.random.default_rng(7)
    rows = []
    for s in range(8):
        shared = rng.normal(0, 0.05)
        rows.append(synthetic.base_row("lm", "sequence", "mamba", s, {"data.seq_len": 16384}, latency_ms_p50=4.0,
                                       nll_bits_per_token=2 + shared + rng.normal(0, 0.002)))
        rows.append(synthetic.base_row("lm", "sequence", "attention", s, {"data.seq_len": 16384}, latency_ms_p50=10.0,
                                       nll_bits_per_token=2 + shared + rng.normal(0, 0.002)))
    v = _verdict(rows, _lm_suite())
    assert v.verdict == V.NOT_NEEDED and v.recommended == "mamba"
    assert "SSM not needed for quality; cheapest adequate variant: mamba (" in v.reasons_text()
    assert "latency p50 0.4x that of attention" in v.reasons_text() and "seq_len=16384" in v.reasons_text()


def test_recommendation_per_size_names_where_the_choice_changes():
    rng = np.random.default_rng(8)
    rows = []
    for L in (1024, 4096, 16384):
        for s in range(8):
            shared = rng.normal(0, 0.05)
            for name, lat in (("mamba", L / 4096), ("attention", (L / 4096) ** 2)):
                rows.append(synthetic.base_row("lm", "sequence", name, s, {"data.seq_len": L}, latency_ms_p50=lat,
                                               nll_bits_per_token=2 + shared + rng.normal(0, 0.002)))
    v = _verdict(rows, _lm_suite())
    assert v.verdict == V.NOT_NEEDED and v.recommended == "mamba"  # at the task size, the largest length
    assert ("recommended per size: seq_len=1024: attention; seq_len=4096 to 16384: mamba "
            "(the choice changes at seq_len=4096).") in v.reasons_text()


# ----------------------------------------------------------------------------- C: open items for the loop
def test_open_items_name_the_undecided_cells_and_the_variants_whose_seeds_would_decide_them():
    rng = np.random.default_rng(9)
    rows = synthetic.classification_rows(rng, effect=2.0, seeds=3, noise=0.2)
    items = V.open_items(_verdicts(rows))
    assert len(items) == 1
    item = items[0]
    assert (item.task, item.size_point, item.variants) == ("cls", "{}", ("attention", "gated_cnn", "mamba"))
    assert item.n == 3 and item.seeds_needed >= 5 and "n too small" in item.why
    assert item.describe().startswith("cls: seeds for attention, gated_cnn, mamba (n=3; about ")
    decided = _verdicts(synthetic.classification_rows(np.random.default_rng(0), effect=2.0, seeds=6, noise=0.2))
    assert V.open_items(decided) == []


def test_an_effect_on_the_threshold_is_an_item_seeds_cannot_decide():
    rng = np.random.default_rng(10)
    noise = rng.normal(0, 1.0, 10)
    rows = []
    for s, d in enumerate(0.5 + noise - noise.mean()):  # mean advantage exactly at the threshold (0.5), SD 1
        shared = rng.normal(0, 1.0)
        rows.append(synthetic.base_row("cls", "classification", "mamba", s, top1=75 + shared + d))
        rows.append(synthetic.base_row("cls", "classification", "attention", s, top1=75 + shared))
    item = V.open_items(_verdicts(rows))[0]
    assert item.variants == () and item.seeds_needed is None
    assert "sits on the threshold" in item.why and "more seeds will not help" in item.describe()
