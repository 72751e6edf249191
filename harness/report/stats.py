"""Per task x variant x sweep-point summaries over seeds: mean, std and a 95 % confidence interval.

CI method (stated in the ``ci_method`` column of every row):

* ``t`` - Student-t interval ``mean +- t_{0.975, n-1} * s / sqrt(n)`` when 2 <= n < 10;
* ``bootstrap`` - percentile bootstrap of the mean (``N_BOOT`` resamples, fixed RNG seed) when n >= 10;
* ``none`` - a single value (n = 1): no interval.

Only rows with ``status == "ok"`` enter the statistics; failures are reported by the status table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.report.load import ResultsSuite, cost_columns, metric_columns, ok_rows

ALPHA = 0.05
N_BOOT = 2000
BOOT_MIN_N = 10
RNG_SEED = 20240531


def mean_ci(values, alpha: float = ALPHA, n_boot: int = N_BOOT, seed: int = RNG_SEED
            ) -> tuple[float, float, float, float, str]:
    """``(mean, std, lo, hi, method)`` of finite ``values``; method is ``t``, ``bootstrap`` or ``none``."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return np.nan, np.nan, np.nan, np.nan, "none"
    m = float(x.mean())
    if n == 1:
        return m, np.nan, np.nan, np.nan, "none"
    s = float(x.std(ddof=1))
    if n < BOOT_MIN_N:
        h = float(sps.t.ppf(1 - alpha / 2, n - 1)) * s / np.sqrt(n)
        return m, s, m - h, m + h, "t"
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return m, s, float(lo), float(hi), "bootstrap"


GROUP_COLS = ["task", "variant", "mixer", "is_ssm", "size_point", "hp_point", "size", "ablation"]


def summarize(df: pd.DataFrame, suite: ResultsSuite, columns: list[str] | None = None) -> pd.DataFrame:
    """Long table: one row per task x variant x sweep point x column.

    Columns: ``task, variant, mixer, is_ssm, size_point, hp_point, size, ablation, column, kind
    (metric|cost), n, mean, std, ci_low, ci_high, ci_method``.
    """
    rows = []
    ok = ok_rows(df)
    for task, tdf in ok.groupby("task", sort=True):
        tinfo = suite.task(str(task))
        mcols = metric_columns(tdf, tinfo)
        ccols = cost_columns(tdf)
        cols = columns if columns is not None else mcols + ccols
        for key, g in tdf.groupby(GROUP_COLS, sort=True, dropna=False):
            for c in cols:
                if c not in g.columns:
                    continue
                vals = pd.to_numeric(g[c], errors="coerce")
                if not vals.notna().any():
                    continue
                m, s, lo, hi, how = mean_ci(vals)
                rows.append(dict(zip(GROUP_COLS, key), column=c, kind="metric" if c in mcols else "cost",
                                 n=int(vals.notna().sum()), mean=m, std=s, ci_low=lo, ci_high=hi,
                                 ci_method=how))
    cols_out = GROUP_COLS + ["column", "kind", "n", "mean", "std", "ci_low", "ci_high", "ci_method"]
    return pd.DataFrame(rows, columns=cols_out)


def wide(summary: pd.DataFrame, value: str = "mean") -> pd.DataFrame:
    """Pivot a :func:`summarize` table to one row per group and one column per measured column."""
    if summary.empty:
        return summary
    idx = [c for c in GROUP_COLS if c in summary.columns]
    return summary.pivot_table(index=idx, columns="column", values=value, aggfunc="first",
                               dropna=False).reset_index()


def ols_fit(x, y, log: bool = False) -> tuple[float, float, int]:
    """``(slope, stderr, n)``: least-squares slope of ``y`` on ``x`` (of ``log y`` on ``log x`` with ``log``) over the
    finite points; NaN slope with fewer than 2 distinct x, NaN stderr with fewer than 3 points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & ((x > 0) & (y > 0) if log else True)
    x, y = (np.log(x[keep]), np.log(y[keep])) if log else (x[keep], y[keep])
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return np.nan, np.nan, n
    r = sps.linregress(x, y)
    return float(r.slope), float(r.stderr) if n >= 3 else np.nan, n


def ols_slope(x, y, log: bool = False, alpha: float = ALPHA) -> tuple[float, float, float, int]:
    """``(slope, lo, hi, n)``: least-squares slope of ``y`` on ``x`` (of ``log y`` on ``log x`` with ``log``: the
    scaling exponent) with its (1 - alpha) t-interval over the points; NaN interval with fewer than 3 points.

    For one series (e.g. a cost measured on one seed). Over seeds, prefer :func:`per_seed_slopes` and test
    the per-seed values with :func:`harness.report.sequential.threshold_test` (seeds are the replicates)."""
    slope, se, n = ols_fit(x, y, log)
    if not np.isfinite(se):
        return slope, np.nan, np.nan, n
    h = float(sps.t.ppf(1 - alpha / 2, n - 2)) * se
    return slope, slope - h, slope + h, n


def ols_slope_pvalues(slope: float, stderr: float, n: int, margin: float) -> tuple[float, float]:
    """One-sided t-test p-values ``(above, below)`` of an :func:`ols_fit` slope against ``margin`` (n - 2 degrees
    of freedom; valid for independent normal residuals about a straight line). NaN without a stderr."""
    if not (np.isfinite(slope) and np.isfinite(stderr)) or n < 3:
        return np.nan, np.nan
    if stderr == 0:
        return (0.0, 1.0) if slope > margin else (1.0, 0.0) if slope < margin else (1.0, 1.0)
    t = (slope - margin) / stderr
    return float(sps.t.sf(t, n - 2)), float(sps.t.cdf(t, n - 2))


def per_seed_slopes(rows: pd.DataFrame, x: str, y: str, log: bool = False) -> pd.Series:
    """The slope of ``y`` over ``x`` within each seed (log-log with ``log``), indexed by seed; seeds with fewer
    than two distinct ``x`` are left out. The per-seed values are i.i.d. across seeds, so their mean's
    error control is that of :func:`harness.report.sequential.threshold_test` (claims: trend, scaling)."""
    out = {}
    for seed, g in rows.groupby("seed", sort=True):
        slope = ols_slope(pd.to_numeric(g[x], errors="coerce"), pd.to_numeric(g[y], errors="coerce"), log)[0]
        if np.isfinite(slope):
            out[seed] = slope
    return pd.Series(out, dtype=float, name=f"slope of {y} over {x}" + (" (log-log)" if log else ""))
