"""Scaling fits and crossovers: where does one variant become cheaper than another?

For a task that sweeps a size key (sequence length, resolution, grid), each variant's cost (latency,
memory) is fitted as ``log(cost) = a + s * log(size)`` (a power law; ``s`` is the scaling exponent:
about 1 for a scan, about 2 for attention at long lengths). When one line fits badly (largest
log-residual above ``BAD_FIT_RESID`` and BIC prefers it by at least ``BIC_MARGIN``) a continuous
two-segment line is fitted instead, its breakpoint chosen by least squares (this captures the usual
"flat while launch-bound, then growing" shape).

A crossover between variants A and B is a size inside the common swept range where the fitted curves
cross (sign change of ``fit_A - fit_B`` in log space). Its 95 % CI comes from a bootstrap: when a size
has several runs (seeds or repeats), runs are resampled within each size; otherwise fit residuals are
resampled. ``boot_frac`` is the fraction of bootstrap replicates that still cross in range. When the
point estimate does not cross, the row says ``no crossover in range`` and names the variant that is
cheaper over the whole range. Extrapolation outside the swept range is never reported.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.optimize import brentq

from harness.report.load import ResultsSuite
from harness.report.paired import select_configs

BAD_FIT_RESID = 0.05   # 5 % in log space
BIC_MARGIN = 6.0
N_BOOT = 300
MIN_RUNS_RESAMPLE = 8
RNG_SEED = 1234
DEFAULT_COSTS = ("latency_ms_p50", "peak_mem_mb_infer")


@dataclass
class Fit:
    """A fitted log-log scaling curve. ``kind`` is ``linear`` or ``piecewise``."""

    kind: str
    coef: np.ndarray          # linear: (a, s); piecewise: (a, s1, s2) around log-breakpoint lb
    lb: float = np.nan        # log breakpoint (piecewise)
    xmin: float = np.nan
    xmax: float = np.nan
    r2: float = np.nan
    max_resid: float = np.nan

    def predict_log(self, lx):
        lx = np.asarray(lx, dtype=float)
        if self.kind == "linear":
            return self.coef[0] + self.coef[1] * lx
        z = lx - self.lb
        return self.coef[0] + self.coef[1] * np.minimum(z, 0) + self.coef[2] * np.maximum(z, 0)

    def predict(self, x):
        return np.exp(self.predict_log(np.log(np.asarray(x, dtype=float))))

    @property
    def breakpoint(self) -> float:
        return float(np.exp(self.lb)) if np.isfinite(self.lb) else np.nan

    def describe(self) -> str:
        if self.kind == "linear":
            return f"power law, exponent {self.coef[1]:.2f} (R2 {self.r2:.3f})"
        return (f"two segments, exponent {self.coef[1]:.2f} then {self.coef[2]:.2f} above "
                f"{self.breakpoint:.4g} (R2 {self.r2:.3f})")


def _lstsq(X, y):
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    return coef, float(resid @ resid), resid


def _fit_piecewise(lx, ly):
    ux = np.unique(lx)
    cands = np.linspace(ux[1], ux[-2], 41) if len(ux) >= 4 else []
    best = None
    for lb in cands:
        z = lx - lb
        X = np.column_stack([np.ones_like(lx), np.minimum(z, 0), np.maximum(z, 0)])
        coef, sse, resid = _lstsq(X, ly)
        if best is None or sse < best[1]:
            best = (coef, sse, resid, lb)
    return best


def fit_loglog(x, y, kind: str = "auto") -> Fit:
    """Fit ``log y`` against ``log x``; ``kind`` is ``auto``, ``linear`` or ``piecewise``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    n = len(lx)
    if n < 2 or len(np.unique(lx)) < 2:
        raise ValueError("need at least two distinct sizes to fit")
    sst = float(((ly - ly.mean()) ** 2).sum()) or 1e-300
    X = np.column_stack([np.ones_like(lx), lx])
    coef, sse, resid = _lstsq(X, ly)
    lin = Fit("linear", coef, xmin=float(np.exp(lx.min())), xmax=float(np.exp(lx.max())),
              r2=1 - sse / sst, max_resid=float(np.abs(resid).max()))
    if kind == "linear" or len(np.unique(lx)) < 4:
        return lin
    pw = _fit_piecewise(lx, ly)
    if pw is None:
        return lin
    pcoef, psse, presid, lb = pw
    pwfit = Fit("piecewise", pcoef, lb=lb, xmin=lin.xmin, xmax=lin.xmax, r2=1 - psse / sst,
                max_resid=float(np.abs(presid).max()))
    if kind == "piecewise":
        return pwfit
    eps = 1e-12 * n
    bic_lin = n * np.log(sse / n + eps) + 2 * np.log(n)
    bic_pw = n * np.log(psse / n + eps) + 4 * np.log(n)
    if lin.max_resid > BAD_FIT_RESID and bic_pw < bic_lin - BIC_MARGIN:
        return pwfit
    return lin


def crossings(fa: Fit, fb: Fit, lo: float | None = None, hi: float | None = None) -> list[float]:
    """Sizes in ``[lo, hi]`` (default: the common fitted range) where the two curves cross."""
    lo = max(fa.xmin, fb.xmin) if lo is None else lo
    hi = min(fa.xmax, fb.xmax) if hi is None else hi
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return []
    grid = np.linspace(np.log(lo), np.log(hi), 400)
    g = fa.predict_log(grid) - fb.predict_log(grid)
    out = []
    for i in range(len(grid) - 1):
        if g[i] == 0:
            out.append(float(np.exp(grid[i])))
        elif g[i] * g[i + 1] < 0:
            r = brentq(lambda t: float(fa.predict_log(t) - fb.predict_log(t)), grid[i], grid[i + 1])
            out.append(float(np.exp(r)))
    return out


def _boot_fit(x, y, kind, rng, base: Fit):
    """One bootstrap replicate.

    With >= ``MIN_RUNS_RESAMPLE`` runs (seeds/repeats) at every size, runs are resampled within each size.
    Otherwise residuals of the fit are resampled (pooled over sizes), inflated by sqrt(n / (n - k)) so
    that the few-runs case is not over-confident.
    """
    ux, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    if counts.min() >= MIN_RUNS_RESAMPLE:
        idx = np.concatenate([rng.choice(np.where(inv == k)[0], size=counts[k]) for k in range(len(ux))])
        return fit_loglog(x[idx], y[idx], kind=kind)
    ly_hat = base.predict_log(np.log(x))
    resid = np.log(y) - ly_hat
    k = 2 if base.kind == "linear" else 4
    resid = resid * np.sqrt(len(resid) / max(len(resid) - k, 1))
    ystar = np.exp(ly_hat + rng.choice(resid, size=len(resid)))
    return fit_loglog(x, ystar, kind=kind)


def crossover_ci(xa, ya, xb, yb, n_boot: int = N_BOOT, seed: int = RNG_SEED, alpha: float = 0.05) -> dict:
    """Point estimate, bootstrap CI and the fits for the crossover of two variants' costs vs size.

    Returns ``status`` (``crossover`` | ``no crossover in range``), ``crossover``, ``ci_low``,
    ``ci_high``, ``boot_frac``, ``all_crossings``, ``cheaper_below``, ``cheaper_above`` (``a``/``b``),
    ``fit_a``, ``fit_b``.
    """
    xa, ya, xb, yb = (np.asarray(v, dtype=float) for v in (xa, ya, xb, yb))
    ka = np.isfinite(xa) & np.isfinite(ya) & (xa > 0) & (ya > 0)
    kb = np.isfinite(xb) & np.isfinite(yb) & (xb > 0) & (yb > 0)
    xa, ya, xb, yb = xa[ka], ya[ka], xb[kb], yb[kb]
    fa, fb = fit_loglog(xa, ya), fit_loglog(xb, yb)
    lo, hi = max(fa.xmin, fb.xmin), min(fa.xmax, fb.xmax)
    cx = crossings(fa, fb, lo, hi)
    out = dict(fit_a=fa, fit_b=fb, all_crossings=cx, range_lo=lo, range_hi=hi)
    if not cx:
        cheaper = "a" if float(np.mean(fa.predict_log(np.linspace(np.log(lo), np.log(hi), 50)) -
                                       fb.predict_log(np.linspace(np.log(lo), np.log(hi), 50)))) < 0 else "b"
        out.update(status="no crossover in range", crossover=np.nan, ci_low=np.nan, ci_high=np.nan,
                   boot_frac=np.nan, cheaper_below=cheaper, cheaper_above=cheaper)
        return out
    x0 = cx[0]
    eps = 1e-3
    below = "a" if fa.predict_log(np.log(x0) - eps) < fb.predict_log(np.log(x0) - eps) else "b"
    above = "b" if below == "a" else "a"
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        try:
            ba = _boot_fit(xa, ya, fa.kind, rng, fa)
            bb = _boot_fit(xb, yb, fb.kind, rng, fb)
        except ValueError:
            continue
        c = crossings(ba, bb, lo, hi)
        if c:
            reps.append(min(c, key=lambda v: abs(np.log(v) - np.log(x0))))
    frac = len(reps) / max(n_boot, 1)
    if reps:
        # percentile interval in log(size), expanded by t_{df}/z for the small number of runs
        # (df = runs - fitted parameters): the plain percentile interval under-covers with ~20 runs.
        q_lo, q_hi = np.quantile(np.log(reps), [alpha / 2, 1 - alpha / 2])
        k = sum(2 if f.kind == "linear" else 4 for f in (fa, fb))
        df_ = max(len(xa) + len(xb) - k, 1)
        expand = float(sps.t.ppf(1 - alpha / 2, df_) / sps.norm.ppf(1 - alpha / 2))
        l0 = np.log(x0)
        ci_lo = float(np.exp(l0 - (l0 - min(q_lo, l0)) * expand))
        ci_hi = float(np.exp(l0 + (max(q_hi, l0) - l0) * expand))
    else:
        ci_lo = ci_hi = np.nan
    out.update(status="crossover", crossover=x0, ci_low=ci_lo, ci_high=ci_hi, boot_frac=frac,
               cheaper_below=below, cheaper_above=above)
    return out


CROSSOVER_COLUMNS = ["task", "size_key", "metric", "variant_a", "variant_b", "status", "crossover", "ci_low",
                     "ci_high", "boot_frac", "cheaper_below", "cheaper_above", "range_lo", "range_hi",
                     "fit_a", "fit_b", "summary"]


@dataclass
class ScalingResult:
    fits: dict            # (task, metric, variant) -> Fit
    fit_table: pd.DataFrame
    crossovers: pd.DataFrame


def _pairs(vs: pd.DataFrame) -> list[tuple[str, str]]:
    ssm = sorted(vs.loc[vs["is_ssm"], "variant"].unique())
    non = sorted(vs.loc[~vs["is_ssm"], "variant"].unique())
    if ssm and non:
        return [(a, b) for a in ssm for b in non]
    return list(itertools.combinations(sorted(vs["variant"].unique()), 2))


def analyze_scaling(df: pd.DataFrame, suite: ResultsSuite, metrics=DEFAULT_COSTS, n_boot: int = N_BOOT,
                    min_sizes: int = 3) -> ScalingResult:
    """Fit every variant's cost vs size and find crossovers, for tasks sweeping a size key."""
    sel = select_configs(df, suite)
    sel = sel[np.isfinite(sel["size"]) & (sel["size"] > 0)]
    fits, fit_rows, cross_rows = {}, [], []
    for task, tdf in sel.groupby("task", sort=True):
        if tdf["size"].nunique() < min_sizes:
            continue
        size_key = tdf["size_key"].iloc[0].split(".")[-1]
        for metric in metrics:
            if metric not in tdf.columns or tdf[metric].notna().sum() == 0:
                continue
            data = {}
            for var, g in tdf.groupby("variant"):
                g = g[np.isfinite(g[metric]) & (g[metric] > 0)]
                if g["size"].nunique() < min_sizes:
                    continue
                try:
                    f = fit_loglog(g["size"], g[metric])
                except ValueError:
                    continue
                fits[(task, metric, var)] = f
                data[var] = (g["size"].to_numpy(float), g[metric].to_numpy(float))
                fit_rows.append(dict(task=task, metric=metric, variant=var, kind=f.kind,
                                     exponent=f.coef[1] if f.kind == "linear" else f.coef[2],
                                     breakpoint=f.breakpoint, r2=f.r2, description=f.describe()))
            vs = tdf[tdf["variant"].isin(list(data))][["variant", "is_ssm"]].drop_duplicates("variant")
            for a, b in _pairs(vs):
                r = crossover_ci(*data[a], *data[b], n_boot=n_boot)
                name = {"a": a, "b": b}
                if r["status"] == "crossover":
                    summ = (f"{name[r['cheaper_above']]} becomes cheaper than {name[r['cheaper_below']]} "
                            f"above {size_key} ~ {r['crossover']:.4g} (95% CI {r['ci_low']:.4g} - "
                            f"{r['ci_high']:.4g}; crosses in {r['boot_frac']:.0%} of bootstrap fits)")
                    if len(r["all_crossings"]) > 1:
                        summ += f"; further crossings at {', '.join(f'{c:.4g}' for c in r['all_crossings'][1:])}"
                else:
                    summ = (f"no crossover in range {size_key} {r['range_lo']:.4g} - {r['range_hi']:.4g}: "
                            f"{name[r['cheaper_below']]} is cheaper throughout")
                cross_rows.append(dict(task=task, size_key=size_key, metric=metric, variant_a=a, variant_b=b,
                                       status=r["status"], crossover=r["crossover"], ci_low=r["ci_low"],
                                       ci_high=r["ci_high"], boot_frac=r["boot_frac"],
                                       cheaper_below=name[r["cheaper_below"]],
                                       cheaper_above=name[r["cheaper_above"]], range_lo=r["range_lo"],
                                       range_hi=r["range_hi"], fit_a=r["fit_a"].describe(),
                                       fit_b=r["fit_b"].describe(), summary=summ))
    return ScalingResult(fits, pd.DataFrame(fit_rows, columns=["task", "metric", "variant", "kind", "exponent",
                                                               "breakpoint", "r2", "description"]),
                         pd.DataFrame(cross_rows, columns=CROSSOVER_COLUMNS))
