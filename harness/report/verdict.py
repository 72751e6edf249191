"""The per-task verdict: does this task need an SSM?

Decision rule (the same text is returned by :func:`verdict_rule_markdown` and stored in
``harness/report/VERDICT_RULE.md`` for the README):

Evidence is taken per *cell* (one task at one size point), from finished, non-ablation runs; when the
task sweeps hyper-parameters each variant is represented by its best grid point (equal-budget rule).
The best SSM variant ``S`` (best mean primary metric) is compared, paired by seed, with every no-SSM
variant ``N`` (Gated CNN = MambaOut's test, attention, ...). ``adv`` is the mean per-seed advantage of
``S`` over ``N`` in the primary metric, oriented so that positive means S is better; ``CI`` is its 95 %
interval; ``thr`` the task's practical threshold (relative thresholds are scaled by |mean of N|);
``p_holm`` the paired test's p-value after Holm correction across all comparisons in the report.

* **SSM needed** in a cell iff for *every* no-SSM variant N: ``adv > thr`` and ``CI`` lies entirely
  above 0 and ``p_holm < 0.05``. The recommended variant is S.
* **SSM not needed** in a cell iff for *some* no-SSM variant N the upper end of ``CI`` is below
  ``thr`` (N is within the threshold of S, or better, with confidence). Cost then decides: the
  recommended variant is the cheapest such N (latency p50, then forward FLOPs, then parameters).
* **Inconclusive** otherwise: too few shared seeds (< 2) for an interval, intervals too wide to
  decide, no finished SSM or no finished no-SSM variant, or failures on one side (a no-SSM variant
  whose runs all failed or recorded no primary metric cannot be beaten).

Across cells (a size sweep): the task verdict is *needed* if any cell says needed (the sizes are named),
*not needed* if every cell says not needed, *inconclusive* otherwise. The reasons always name the
quality evidence (difference, CI, threshold, direction, test), the cost ratios of S to N at the task
size (largest swept size: params, FLOPs, latency, memory), and the structure: MambaOut's token-length
ratio L/(6D) and whether the task is causal (MambaOut's hypothesis: an SSM should help only when the
task is long-sequence, L/(6D) > 1, or autoregressive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.load import COST_COLUMNS, Suite, TaskInfo
from harness.report.paired import ALPHA, compare_variants, equal_budget, select_configs, size_label
from harness.report.stats import mean_ci

NEEDED = "SSM needed"
NOT_NEEDED = "SSM not needed"
INCONCLUSIVE = "inconclusive"

#: cost columns quoted as ratios, in this order, with the short name used in reasons.
RATIO_COLUMNS = [("params", "params"), ("flops_fwd", "FLOPs"), ("latency_ms_p50", "latency p50"),
                 ("peak_mem_mb_infer", "peak memory")]
#: order in which cost decides the recommended variant among equivalent ones.
COST_ORDER = ["latency_ms_p50", "flops_fwd", "params"]


def verdict_rule_markdown() -> str:
    """The decision rule as Markdown (for the README and the report)."""
    p = Path(__file__).with_name("VERDICT_RULE.md")
    return p.read_text()


@dataclass
class CellVerdict:
    size_point: str
    size: float
    verdict: str
    best_ssm: str | None
    recommended: str | None
    quality: list[str] = field(default_factory=list)
    comparisons: pd.DataFrame | None = None


@dataclass
class TaskVerdict:
    task: str
    family: str
    verdict: str
    recommended: str | None
    reasons: list[str]
    cells: list[CellVerdict] = field(default_factory=list)
    primary_metric: str | None = None

    def reasons_text(self) -> str:
        return " ".join(self.reasons)


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if ax >= 1 else f"{x:.{digits}f}".rstrip("0").rstrip(".") if ax else "0"


def _signed(x: float) -> str:
    s = _fmt(x)
    return s if s.startswith("-") or s == "n/a" else "+" + s


def _cell_verdict(t: TaskInfo, cdf: pd.DataFrame, comps: pd.DataFrame, alpha: float,
                  tried: pd.DataFrame) -> CellVerdict:
    """``cdf``: the cell's selected finished runs; ``tried``: every non-ablation run of the cell, any status."""
    size_point = cdf["size_point"].iloc[0]
    size = float(cdf["size"].iloc[0])
    pm = t.primary_metric
    where = f" at {size_label(size_point)}" if size_label(size_point) else ""
    if pm is None or pm not in cdf.columns or cdf[pm].notna().sum() == 0:
        return CellVerdict(size_point, size, INCONCLUSIVE, None, None,
                           [f"no primary metric recorded{where}."])
    hib = t.metric(pm).higher_is_better
    means = cdf.groupby("variant")[pm].mean().dropna()
    ssm_vars = sorted(set(cdf.loc[cdf["is_ssm"], "variant"]) & set(means.index))
    non_vars = sorted(set(cdf.loc[~cdf["is_ssm"], "variant"]) & set(means.index))
    if not ssm_vars or not non_vars:
        missing = "SSM" if not ssm_vars else "no-SSM"
        return CellVerdict(size_point, size, INCONCLUSIVE, ssm_vars[0] if ssm_vars else None, None,
                           [f"no finished {missing} variant{where}: nothing to compare."])
    scored = cdf[pm].dropna()
    if len(scored) > 1 and scored.nunique() == 1 and not _perfect(float(scored.iloc[0]), t.metric(pm)):
        # every model at one score short of perfect (e.g. chance): equal is no evidence of "as good"
        return CellVerdict(size_point, size, INCONCLUSIVE, ssm_vars[0], None,
                           [f"every finished run{where} scored {pm} = {_fmt(float(scored.iloc[0]))}: the variants "
                            f"cannot be told apart (none may have learned the task)."])
    sm = means[ssm_vars]
    best = str(sm.idxmax() if hib else sm.idxmin())
    m, _, lo, hi, _ = mean_ci(cdf.loc[cdf["variant"] == best, pm])
    unit = t.metric(pm).unit
    u = f" {unit}" if unit else ""
    direction = "higher is better" if hib else "lower is better"
    quality = [f"quality{where} ({pm}, {direction}): best SSM variant {best} = {_fmt(m)}{u} "
               f"[{_fmt(lo)}, {_fmt(hi)}]."]
    rows = comps[(comps["task"] == t.name) & (comps["size_point"] == size_point) & (comps["metric"] == pm)
                 & (comps["variant_a"] == best)]
    beats, within = {}, {}
    for n in non_vars:
        r = rows[rows["variant_b"] == n]
        if r.empty:
            beats[n], within[n] = False, False
            quality.append(f"vs {n}: no shared seeds.")
            continue
        r = r.iloc[0]
        thr = float(r["threshold"])
        enough = r["n"] >= 2 and np.isfinite(r["adv_ci_low"])
        b = bool(enough and r["adv"] > thr and r["adv_ci_low"] > 0 and r["p_holm"] < alpha)
        w = bool(enough and r["adv_ci_high"] < thr)
        beats[n], within[n] = b, w
        is_gcnn = any(k in n.lower() for k in ("gated", "cnn", "mambaout"))
        tag = " (gated CNN: MambaOut's test)" if is_gcnn else ""
        outcome = _outcome(n, r, thr, alpha, b, w, enough)
        quality.append(
            f"vs {n}{tag}: SSM advantage {_signed(r['adv'])}{u} [{_signed(r['adv_ci_low'])}, "
            f"{_signed(r['adv_ci_high'])}] (threshold {_fmt(thr)}{u}; {r['test']}, n={int(r['n'])}, "
            f"Holm p={_fmt(r['p_holm'])}) -> {outcome}.")
    # a planned no-SSM variant without a finished, scored run cannot be beaten: no evidence is not a win
    for n in sorted(set(tried.loc[~tried["is_ssm"], "variant"]) - set(non_vars)):
        runs = tried[tried["variant"] == n]
        statuses = ", ".join(f"{s} x{k}" for s, k in runs["status"].value_counts().items())
        beats[n], within[n] = False, False
        quality.append(f"vs {n}: no finished run with {pm} ({statuses}) -> no evidence, so the SSM is not "
                       f"shown better than it.")
    if all(beats.values()):
        return CellVerdict(size_point, size, NEEDED, best, best, quality, rows)
    eq = [n for n, w in within.items() if w]
    if eq:
        rec = _cheapest(cdf, eq)
        return CellVerdict(size_point, size, NOT_NEEDED, best, rec, quality, rows)
    return CellVerdict(size_point, size, INCONCLUSIVE, best, None, quality, rows)


def _perfect(value: float, metric) -> bool:
    """Whether ``value`` is the best a score can be: 1 (fraction) or 100 (%) higher-is-better, 0 lower-is-better."""
    if not metric.higher_is_better:
        return value == 0.0
    return (metric.unit == "fraction" and value == 1.0) or (metric.unit == "%" and value == 100.0)


def _outcome(n: str, r: pd.Series, thr: float, alpha: float, beats: bool, within: bool, enough: bool) -> str:
    """What one SSM-vs-``n`` comparison showed, naming the criteria that failed when it is undecided."""
    if beats:
        return "SSM better by more than the threshold"
    if within:
        return f"{n} better than the SSM" if r["adv_ci_high"] < 0 else f"{n} within the threshold of the SSM"
    if not enough:
        return f"too few shared seeds (n={int(r['n'])})"
    failed = [why for why, bad in (("mean advantage not above the threshold", not r["adv"] > thr),
                                   ("CI includes 0", not r["adv_ci_low"] > 0),
                                   (f"Holm p >= {alpha:g}", not r["p_holm"] < alpha)) if bad]
    return (f"undecided: SSM not shown better ({', '.join(failed)}) nor {n} within the threshold "
            f"(CI upper end {_signed(r['adv_ci_high'])} >= {_fmt(thr)})")


def _runs(cells: list[CellVerdict]) -> str:
    """Group consecutive sizes with the same verdict: ``seq_len=256-1024: SSM not needed; ...``."""
    groups: list[list[CellVerdict]] = []
    for c in cells:
        if groups and groups[-1][-1].verdict == c.verdict:
            groups[-1].append(c)
        else:
            groups.append([c])
    parts = []
    for g in groups:
        a, b = size_label(g[0].size_point) or "default", size_label(g[-1].size_point)
        rng = a if len(g) == 1 else f"{a} to {b.split('=')[-1]}"
        parts.append(f"{rng}: {g[0].verdict}")
    return "; ".join(parts)


def _cheapest(cdf: pd.DataFrame, variants: list[str]) -> str:
    for c in COST_ORDER:
        if c in cdf.columns:
            costs = cdf[cdf["variant"].isin(variants)].groupby("variant")[c].mean().dropna()
            if len(costs) == len(variants):
                return str(costs.idxmin())
    return variants[0]


def _cost_reason(cdf: pd.DataFrame, best: str, others: list[str]) -> str | None:
    parts = []
    for n in others:
        ratios = []
        for c, name in RATIO_COLUMNS:
            if c not in cdf.columns:
                continue
            a = cdf.loc[cdf["variant"] == best, c].mean()
            b = cdf.loc[cdf["variant"] == n, c].mean()
            if np.isfinite(a) and np.isfinite(b) and b > 0:
                ratios.append(f"{name} {a / b:.2f}x")
        if ratios:
            parts.append(f"{best}/{n}: " + ", ".join(ratios))
    if not parts:
        return None
    where = size_label(cdf["size_point"].iloc[0])
    return f"cost ratios (SSM / other{', at ' + where if where else ''}; > 1 means the SSM costs more): " + \
        "; ".join(parts) + "."


def _structure_reason(t: TaskInfo, tdf: pd.DataFrame, task_verdict: str) -> str:
    bits = []
    long_seq = None
    if "l_over_6d" in tdf.columns and tdf["l_over_6d"].notna().any():
        r = float(tdf["l_over_6d"].median())
        long_seq = r > 1
        bits.append(f"L/(6D) = {r:.2f} ({'> 1: long-sequence, the quadratic attention term dominates' if long_seq else '<= 1: short-sequence, the linear term dominates'})")
    causal = t.causal
    if causal is None and "causal" in tdf.columns and tdf["causal"].notna().any():
        causal = bool(tdf["causal"].dropna().astype(bool).iloc[0])
    if causal is not None:
        bits.append(f"causal: {'yes' if causal else 'no'}")
    if long_seq is None and causal is None:
        return "structure: no L/(6D) or causal flag recorded."
    expects = bool(long_seq) or bool(causal)
    pred = "an SSM may help" if expects else "an SSM should not be needed"
    agree = ""
    if task_verdict != INCONCLUSIVE:
        agrees = (task_verdict == NEEDED) == expects
        agree = " The measured verdict " + ("agrees." if agrees else "disagrees.")
    return f"structure: {', '.join(bits)}; MambaOut's hypothesis predicts {pred}.{agree}"


def task_verdicts(df: pd.DataFrame, suite: Suite, comparisons: pd.DataFrame | None = None,
                  alpha: float = ALPHA) -> list[TaskVerdict]:
    """One :class:`TaskVerdict` per task in ``df`` (see the module docstring for the rule)."""
    sel = select_configs(df, suite)
    comps = compare_variants(df, suite, alpha=alpha, selected=sel) if comparisons is None else comparisons
    budget = equal_budget(df, suite)
    out = []
    for task in sorted(df["task"].astype(str).unique()):
        t = suite.task(task)
        tdf = sel[sel["task"] == task]
        allt = df[df["task"] == task]
        if tdf.empty:
            ok = allt[allt["status"] == "ok"]
            why = ("an ablation study only: the verdict pairs non-ablation variants, and every finished run here "
                   "is an ablation or its base (see the Ablations section)." if len(ok) and (ok["ablation"] != "").all()
                   else "no finished runs: see the status table.")
            out.append(TaskVerdict(task, t.family, INCONCLUSIVE, None, [why], [], t.primary_metric))
            continue
        cells = []
        for sp, cdf in sorted(tdf.groupby("size_point"), key=lambda kv: (kv[1]["size"].iloc[0], kv[0])):
            tried = allt[(allt["ablation"] == "") & (allt["size_point"] == sp)]
            cells.append(_cell_verdict(t, cdf, comps, alpha, tried))
        kinds = [c.verdict for c in cells]
        reasons: list[str] = []
        if NEEDED in kinds:
            verdict = NEEDED
            needed_cells = [c for c in cells if c.verdict == NEEDED]
            deciding = needed_cells[-1]
            recommended = deciding.recommended
        elif all(k == NOT_NEEDED for k in kinds):
            verdict = NOT_NEEDED
            deciding = cells[-1]
            recommended = deciding.recommended
        else:
            verdict = INCONCLUSIVE
            deciding = next((c for c in reversed(cells) if c.verdict == INCONCLUSIVE), cells[-1])
            recommended = None
        if len(cells) > 1:
            reasons.append(f"per size: {_runs(cells)}.")
        reasons.extend(deciding.quality)
        if verdict == NOT_NEEDED and recommended:
            reasons.append(f"recommended: {recommended} (cheapest variant within the threshold).")
        elif verdict == NEEDED and recommended:
            reasons.append(f"recommended: {recommended}.")
        # cost at the task size: the largest size point
        last = tdf[tdf["size_point"] == cells[-1].size_point]
        best = cells[-1].best_ssm
        others = sorted(set(last.loc[~last["is_ssm"], "variant"]))
        if best and others:
            cr = _cost_reason(last, best, others)
            if cr:
                reasons.append(cr)
        reasons.append(_structure_reason(t, last, verdict))
        # budget and failure notes
        b = budget[(budget["task"] == task) & budget["unequal_trials"]]
        if len(b):
            counts = ", ".join(f"{r.variant}={r.trials}" for r in b.drop_duplicates("variant").itertuples())
            reasons.append(f"warning: unequal tuning budget (trials {counts}).")
        failed = allt[allt["status"] != "ok"]
        if len(failed):
            fs = failed.groupby(["variant", "status"]).size()
            reasons.append("failed runs: " + ", ".join(f"{v} {s} x{n}" for (v, s), n in fs.items()) + ".")
        if "budget_mismatch" in tdf.columns and (tdf["budget_mismatch"].abs() > 0.1).any():
            worst = tdf.loc[tdf["budget_mismatch"].abs().idxmax()]
            reasons.append(f"warning: budget mismatch up to {worst['budget_mismatch']:+.0%} ({worst['variant']}).")
        out.append(TaskVerdict(task, t.family, verdict, recommended, reasons, cells, t.primary_metric))
    return out


def verdict_table(verdicts: list[TaskVerdict]) -> pd.DataFrame:
    return pd.DataFrame([dict(task=v.task, family=v.family, verdict=v.verdict,
                              recommended=v.recommended or "", primary_metric=v.primary_metric or "",
                              reasons="\n".join(v.reasons)) for v in verdicts],
                        columns=["task", "family", "verdict", "recommended", "primary_metric", "reasons"])


__all__ = ["NEEDED", "NOT_NEEDED", "INCONCLUSIVE", "TaskVerdict", "CellVerdict", "task_verdicts",
           "verdict_table", "verdict_rule_markdown", "COST_COLUMNS"]
