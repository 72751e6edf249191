"""Threshold decisions: the exact per-look test, the sequential p-value, the design file, seeds advice, and the
error rates under sequential seeds by simulation (small and fast; the full-size table is
``python -m harness.benchmarks.verdict_errors``)."""

import json

import numpy as np
import pytest
from scipy import stats as sps

from harness.benchmarks import verdict_errors as B
from harness.errors import HarnessError
from harness.report import sequential as S
from harness.report.paired import holm


def test_one_look_is_the_exact_one_sided_signed_rank_test():
    rng = np.random.default_rng(0)
    for n in (5, 8, 12):
        x = rng.normal(0.4, 1.0, n)
        r = S.threshold_test(x, 0.1)
        assert r.looks == r.schedule == (n,)
        assert np.isclose(r.p_above, sps.wilcoxon(x - 0.1, alternative="greater", method="exact").pvalue)
        assert np.isclose(r.p_below, sps.wilcoxon(x - 0.1, alternative="less", method="exact").pvalue)


def test_n_too_small_is_when_no_outcome_could_reach_alpha():
    assert S.threshold_test([1.0, 1.1, 1.2, 1.3], 0.0).note == "n too small"     # smallest p 1/16
    five = S.threshold_test([1.0, 1.1, 1.2, 1.3, 1.4], 0.0)
    assert five.note == "" and five.p_above == five.p_min == 1 / 32
    assert S.threshold_test([2.0], 0.0).note == "n too small" and np.isnan(S.threshold_test([2.0], 0.0).p_above)
    # with a design, the still-planned looks raise the smallest possible p: 5 seeds of a 5..20 design cannot decide
    assert S.threshold_test(np.arange(5.0) + 1, 0.0, design=S.SequentialDesign(20, 5)).note == "n too small"


def test_schedule_and_sequential_p():
    d = S.SequentialDesign(max_seeds=10, seed_batch=3)
    assert d.schedule((3,)) == (3, 6, 9, 10) and d.schedule((3, 5)) == (3, 5, 8, 10) and d.schedule((12,)) == (12,)
    assert S.sequential_p(0.01, (6,)) == 0.01  # one look: the plain p
    p = [S.sequential_p(m, (3, 6, 9, 10)) for m in (0.001, 0.01, 0.05)]
    assert p[0] < p[1] < p[2] and p[1] > 0.01  # monotone, and looks cost
    draws = S.min_p_null((3, 6, 9, 10))
    assert draws is S.min_p_null((3, 6, 9, 10)) and not draws.flags.writeable
    assert np.all(np.diff(draws) >= 0) and len(draws) == S.NULL_SIMS
    with pytest.raises(ValueError):
        S.min_p_null((5, 3))


def test_null_law_is_the_same_for_bimodal_differences():
    """The signed-rank statistics' joint law at nested looks does not depend on the symmetric distribution: the
    simulated min-p law from normal draws matches that of tight bimodal draws (two-sample KS, same schedule)."""
    rng = np.random.default_rng(1)
    sched = (3, 5, 7, 9)
    bimodal = B.draw("bimodal", (20_000, 9), rng)
    mins = S.look_pvalues(bimodal, sched, 0.0)[0].min(axis=-1)
    assert sps.ks_2samp(mins, S.min_p_null(sched)).pvalue > 0.001


def test_design_file_round_trip_refuses_a_change_and_names_a_corrupt_file(tmp_path):
    assert S.read_design(tmp_path) is None
    S.write_design(tmp_path, S.SequentialDesign(10, 2))
    assert json.loads((tmp_path / S.DESIGN_FILE).read_text()) == {"version": 1, "max_seeds": 10, "seed_batch": 2}
    assert S.read_design(tmp_path) == S.SequentialDesign(10, 2)
    S.write_design(tmp_path, S.SequentialDesign(10, 2))  # the same design again: fine (resume)
    with pytest.raises(HarnessError, match="records --max-seeds 10 --seed-batch 2; this run asks for --max-seeds 12"):
        S.write_design(tmp_path, S.SequentialDesign(12, 2))
    (tmp_path / S.DESIGN_FILE).write_text("{oops")
    with pytest.raises(HarnessError, match=f"{tmp_path / S.DESIGN_FILE}: corrupt sequential design"):
        S.read_design(tmp_path)
    with pytest.raises(HarnessError, match="seed_batch >= 1"):
        S.SequentialDesign(10, 0)


def test_seeds_advice():
    # normal-theory n for a 1-SD effect at one-sided 0.05, 80 % power is 8; / (3/pi) -> 9
    assert S.seeds_needed(1.5, 1.0, 0.5, 0.05) == 9
    assert S.seeds_needed(0.5, 1.0, 0.5, 0.05) is None and S.seeds_needed(0.52, 1.0, 0.5, 0.05) is None
    assert S.seeds_needed(2.0, 0.0, 0.5, 0.05) == 5  # constant values: the test's own floor, 2^-5 < 0.05
    assert S.seeds_needed(1.5, 1.0, 0.5, 0.01) > S.seeds_needed(1.5, 1.0, 0.5, 0.05)
    k, text = S.seeds_advice(S.threshold_test([1.0, 1.2, 0.9], 0.5), 0.05)
    assert k == 5 and "n too small: with 3 seeds the smallest possible p is 0.12 > 0.05" in text


def test_vectorised_simulation_matches_the_report_code():
    """The benchmark's vectorised cell (per-look p, sequential p, Holm) gives the decisions that threshold_test and
    holm give one sequence at a time, so its error rates are those of the report."""
    rng = np.random.default_rng(2)
    design = S.SequentialDesign(10, 2)
    sched = design.schedule((3,))
    d = B.THR + 1.2 * rng.standard_normal((40, 2, 10))
    res = B.run_cell(d, sched, "sequential")
    for i in range(len(d)):
        n = res["n"][i]
        tests = [S.threshold_test(d[i, j, : n[j]], B.THR, np.repeat(range(len(sched)), np.diff((0,) + sched))[: n[j]],
                                  design) for j in range(2)]
        better = holm([t.p_above for t in tests]) < 0.05
        within = holm([t.p_below for t in tests]) < 0.05
        assert list(better) == list(res["better"][i]) and list(within) == list(res["within"][i]), i


@pytest.mark.parametrize("dist", ["normal", "bimodal"])
def test_error_rates_at_the_threshold_stay_at_alpha_under_sequential_seeds(dist):
    """3000 simulated cells (2 comparisons, Holm), advantage exactly at the threshold, seeds added 2 at a time up
    to 10: wrongly declaring "better" or "within" stays within 0.05 + 3 SE; testing the last look as if n had
    been fixed (naive) does not (that is what the sequential p-value prevents)."""
    rng = np.random.default_rng(3)
    sched = S.SequentialDesign(10, 2).schedule((3,))
    d = B.THR + B.draw(dist, (3000, 2, 10), rng)
    tol = 3 * np.sqrt(0.05 * 0.95 / 3000)
    res = B.run_cell(d, sched, "sequential")
    assert res["better"].any(axis=1).mean() < 0.05 + tol
    assert res["within"].any(axis=1).mean() < 0.05 + tol
    naive = B.run_cell(d, sched, "naive")
    assert naive["better"].any(axis=1).mean() > 0.05 + tol
