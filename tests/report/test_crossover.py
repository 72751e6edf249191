import numpy as np
import pandas as pd

from harness.report.crossover import analyze_scaling, crossover_ci, fit_loglog
from harness.report.load import normalize, parse_suite

import synthetic


def test_planted_crossover_at_2048_recovered_within_ci():
    rng = np.random.default_rng(7)
    suite = parse_suite({"suite": "s", "tasks": {"lm": synthetic.task_entry(
        "sequence", "nll_bits_per_token", False, "bits/token", 0.02, causal=True, sweep_keys=["data.seq_len"])}})
    df = normalize(pd.DataFrame(synthetic.scaling_rows(rng, task="lm", cross=2048.0)), suite)
    res = analyze_scaling(df, suite, n_boot=150)
    lat = res.crossovers[res.crossovers["metric"] == "latency_ms_p50"].iloc[0]
    assert lat["status"] == "crossover"
    assert lat["ci_low"] <= 2048 <= lat["ci_high"]
    assert abs(np.log(lat["crossover"] / 2048)) < 0.1
    assert lat["ci_high"] / lat["ci_low"] < 1.5  # informative, not the whole range
    assert lat["cheaper_above"] == "mamba" and lat["cheaper_below"] == "attention"
    f = res.fit_table.set_index(["metric", "variant"]).loc[("latency_ms_p50", "attention")]
    assert abs(f["exponent"] - 2.0) < 0.1


def test_no_crossover_in_range_is_reported():
    x = np.repeat([256, 512, 1024, 2048], 3).astype(float)
    rng = np.random.default_rng(0)
    ya = x * 1e-3 * np.exp(rng.normal(0, 0.02, len(x)))
    yb = x * 3e-3 * np.exp(rng.normal(0, 0.02, len(x)))
    r = crossover_ci(x, ya, x, yb, n_boot=50)
    assert r["status"] == "no crossover in range" and np.isnan(r["crossover"])
    assert r["cheaper_below"] == "a" == r["cheaper_above"]


def test_piecewise_fit_when_one_line_fits_badly():
    x = np.array([128, 256, 512, 1024, 2048, 4096, 8192, 16384], dtype=float)
    y = np.maximum(1.0, x / 1024.0) ** 2  # flat (launch-bound), then quadratic
    f = fit_loglog(x, y)
    assert f.kind == "piecewise"
    assert abs(np.log(f.breakpoint / 1024)) < 0.3 and abs(f.coef[2] - 2) < 0.1
    g = fit_loglog(x, 3 * x)
    assert g.kind == "linear" and abs(g.coef[1] - 1) < 1e-9
