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
