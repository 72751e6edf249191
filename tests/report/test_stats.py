import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.report.load import normalize, parse_suite
from harness.report.stats import mean_ci, summarize

import synthetic


def test_mean_ci_methods():
    m, s, lo, hi, how = mean_ci([1.0, 2.0, 3.0])
    assert how == "t" and m == 2.0
    h = sps.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert np.isclose(lo, 2 - h) and np.isclose(hi, 2 + h)
    rng = np.random.default_rng(0)
    x = rng.normal(5, 1, 40)
    *_, lo, hi, how = mean_ci(x)
    assert how == "bootstrap" and lo < x.mean() < hi
    assert mean_ci([4.0])[4] == "none" and np.isnan(mean_ci([4.0])[2])
    assert mean_ci([np.nan, 1.0, 3.0])[0] == 2.0  # NaNs ignored


def test_t_interval_coverage():
    rng = np.random.default_rng(1)
    cover = 0
    for _ in range(400):
        _, _, lo, hi, _ = mean_ci(rng.normal(0, 1, 5))
        cover += lo < 0 < hi
    assert abs(cover / 400 - 0.95) < 0.035


def test_summarize_groups_metrics_and_costs():
    rng = np.random.default_rng(0)
    rows = synthetic.classification_rows(rng, seeds=4)
    rows.append(synthetic.base_row("cls", "classification", "mamba", 99, status="oom", top1=np.nan))
    suite = parse_suite({"suite": "s", "tasks": {"cls": synthetic.task_entry("classification", "top1", True, "%", 0.5)}})
    df = normalize(pd.DataFrame(rows), suite)
    s = summarize(df, suite)
    r = s[(s["variant"] == "mamba") & (s["column"] == "top1")].iloc[0]
    assert r["n"] == 4 and r["ci_method"] == "t" and r["kind"] == "metric"  # the oom row is excluded
    assert set(s.loc[s["column"] == "latency_ms_p50", "kind"]) == {"cost"}


def test_slopes_over_a_sweep_for_claims():
    """Per-seed log-log exponents recover a planted power law and feed the threshold test; one series gets an OLS
    interval that covers the truth."""
    from harness.report.sequential import threshold_test
    from harness.report.stats import ols_slope, per_seed_slopes

    rng = np.random.default_rng(4)
    rows = [dict(seed=s, seq_len=L, ms=0.01 * L ** 2.0 * np.exp(rng.normal(0, 0.05)))
            for s in range(6) for L in (256, 512, 1024, 2048)]
    slopes = per_seed_slopes(pd.DataFrame(rows), "seq_len", "ms", log=True)
    assert len(slopes) == 6 and np.allclose(slopes, 2.0, atol=0.15)
    t = threshold_test(slopes.to_numpy(), 1.5)
    assert t.p_above == 1 / 64  # every seed's exponent above 1.5
    slope, lo, hi, n = ols_slope([256, 512, 1024, 2048], [r["ms"] for r in rows[:4]], log=True)
    assert n == 4 and lo < 2.0 < hi and np.isclose(slope, slopes.iloc[0])
    assert np.isnan(ols_slope([1, 2], [1, 2])[1])  # two points: a slope, no interval
