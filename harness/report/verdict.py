"""The per-task verdict: does this task need an SSM? And which variant to use.

The rule (``harness/report/VERDICT_RULE.md`` holds the full text, returned by
:func:`verdict_rule_markdown` and shown in the README and every report):

Evidence is taken per *cell* (one task at one size point) from finished runs that are not ablations (an
ablation study's base is one), each variant at its best hyper-parameter point (equal-budget rule). The
best SSM variant ``S`` is compared, paired by seed, with every no-SSM variant ``N``: ``adv`` is S's mean
per-seed advantage (positive = S better), ``thr`` the task's practical threshold. Two one-sided tests
(:mod:`harness.report.sequential`; adjusted for the looks of ``--until-decided``), each Holm-corrected
over its own family of all comparisons in the report: *better* (``adv > thr``) and *within* (``adv < thr``).
Rows carry the task's trivial ``baseline``; a variant *learned* when it beats its baseline with
confidence (:mod:`harness.report.baseline`).

* **SSM needed** in a cell iff S is better beyond the threshold than *every* N, and S learned.
* **SSM not needed** iff *some* N that learned is within the threshold of S (or better), or scored the
  best possible value on every seed.
* **inconclusive** otherwise, e.g. when no compared variant learned ("did not learn the task"), n too
  small, or undecided comparisons (each says about how many seeds would decide it).
* **cost only** when the runs trained 0 steps: no quality verdict.

Rows without a ``baseline`` fall back to the older check: every run of the cell at one value short of
perfect is inconclusive. Across cells (a size sweep): *needed* if any cell says needed (the sizes are
named), *not needed* if every cell says not needed, *inconclusive* otherwise.

The recommendation weighs every adequate variant, the SSM included (:mod:`harness.report.recommend`): the
cheapest (latency p50, then forward FLOPs, then parameters) among the variants within the threshold of
the best, per size. The reasons name the quality evidence, the cost ratios of S to each N at the task
size, and MambaOut's structural hypothesis (an SSM helps only when L/(6D) > 1 or the task is causal).

:func:`open_items` lists what more seeds could decide (for ``harness run --until-decided`` and claims).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.baseline import learned_lookup, learned_table, perfect_score
from harness.report.load import COST_COLUMNS, ResultsSuite, TaskInfo, incomplete_flops
from harness.report.paired import (MAIN_ABLATIONS, compare_variants, equal_budget, select_configs,
                                   size_label)
from harness.report.recommend import adequacy_table, best_variant, candidates, recommend
from harness.report.sequential import N_TOO_SMALL, SequentialDesign
from harness.report.stats import ALPHA, mean_ci

NEEDED = "SSM needed"
NOT_NEEDED = "SSM not needed"
INCONCLUSIVE = "inconclusive"
COST_ONLY = "cost only"

#: cost columns quoted as ratios, in this order, with the short name used in reasons.
RATIO_COLUMNS = [("params", "params"), ("flops_fwd", "FLOPs"), ("latency_ms_p50", "latency p50"),
                 ("peak_mem_mb_infer", "peak memory")]


def verdict_rule_markdown() -> str:
    """The decision rule as Markdown (for the README and the report)."""
    p = Path(__file__).with_name("VERDICT_RULE.md")
    return p.read_text()


@dataclass(frozen=True)
class OpenItem:
    """An undecided cell and what could decide it: seeds for ``variants`` (paired: the same new seeds on
    each), about ``seeds_needed`` shared seeds in all; ``variants`` is empty when more seeds will not help.
    ``claim``: the id of the undecided claim this item serves (:mod:`harness.report.claims`), else empty."""

    task: str
    size_point: str
    variants: tuple[str, ...]
    why: str
    seeds_needed: int | None
    n: int
    claim: str = ""

    def describe(self) -> str:
        where = size_label(self.size_point)
        head = f"{'claim ' + self.claim + ': ' if self.claim else ''}{self.task}{' at ' + where if where else ''}"
        if not self.variants:
            return f"{head}: {self.why}" + ("" if "will not help" in self.why else " (more seeds will not help)")
        need = f"; about {self.seeds_needed} seeds" if self.seeds_needed else ""
        return f"{head}: seeds for {', '.join(self.variants)} (n={self.n}{need}): {self.why}"


@dataclass
class CellVerdict:
    size_point: str
    size: float
    verdict: str
    best_ssm: str | None
    recommended: str | None
    quality: list[str] = field(default_factory=list)
    comparisons: pd.DataFrame | None = None
    recommendation: str = ""          # why the recommended variant (cost ratio), empty without one
    open: OpenItem | None = None      # set when the cell is inconclusive


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


@dataclass
class Evidence:
    """Every test a verdict reads, computed once per report (each table is its own Holm family or pair)."""

    selected: pd.DataFrame
    comparisons: pd.DataFrame
    learned: pd.DataFrame
    adequacy: pd.DataFrame


def gather_evidence(df: pd.DataFrame, suite: ResultsSuite, design: SequentialDesign | None = None,
                    alpha: float = ALPHA) -> Evidence:
    """Selected configs, paired comparisons, learned-vs-baseline tests and adequacy tests of ``df``."""
    sel = select_configs(df, suite)
    learned = learned_table(sel, suite, design, alpha)
    return Evidence(sel, compare_variants(df, suite, alpha=alpha, selected=sel, design=design), learned,
                    adequacy_table(sel, suite, learned, design, alpha))



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


def _runs(cells: list[CellVerdict], key=lambda c: c.verdict) -> str:
    """Group consecutive sizes with the same ``key`` (the verdict): ``seq_len=256 to 1024: SSM not needed; ...``."""
    groups: list[list[CellVerdict]] = []
    for c in cells:
        if groups and key(groups[-1][-1]) == key(c):
            groups[-1].append(c)
        else:
            groups.append([c])
    parts = []
    for g in groups:
        a, b = size_label(g[0].size_point) or "default", size_label(g[-1].size_point)
        rng = a if len(g) == 1 else f"{a} to {b.split('=')[-1]}"
        parts.append(f"{rng}: {key(g[0])}")
    return "; ".join(parts)


def _cost_reason(cdf: pd.DataFrame, best: str, others: list[str]) -> str | None:
    parts = []
    incomplete = incomplete_flops(cdf)
    for n in others:
        ratios = []
        for c, name in RATIO_COLUMNS:
            if c not in cdf.columns:
                continue
            a = cdf.loc[cdf["variant"] == best, c].mean()
            b = cdf.loc[cdf["variant"] == n, c].mean()
            if np.isfinite(a) and np.isfinite(b) and b > 0:
                skips = [f"{v} ran {', '.join(incomplete[v])}" for v in (best, n) if v in incomplete]
                note = f" (incomplete: no FLOP formula where {'; '.join(skips)})" if c == "flops_fwd" and skips else ""
                ratios.append(f"{name} {a / b:.2f}x{note}")
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
    if task_verdict in (NEEDED, NOT_NEEDED):
        agrees = (task_verdict == NEEDED) == expects
        agree = " The measured verdict " + ("agrees." if agrees else "disagrees.")
    return f"structure: {', '.join(bits)}; MambaOut's hypothesis predicts {pred}.{agree}"


def _cost_only(cdf: pd.DataFrame) -> bool:
    """Every run of the cell trained 0 steps (``train.steps: 0``: a cost study)."""
    if "train_steps" not in cdf.columns:
        return False
    steps = pd.to_numeric(cdf["train_steps"], errors="coerce")
    return bool(len(steps) and steps.notna().all() and (steps == 0).all())


def _all_perfect(cdf: pd.DataFrame, variant: str, pm: str, metric) -> bool:
    x = cdf.loc[cdf["variant"] == variant, pm].dropna()
    return len(x) > 0 and all(perfect_score(float(v), metric) for v in x)


@dataclass
class _Gate:
    """Whether a variant may carry a decision: learned (or no baseline to tell), or what would show it learned."""

    ok: bool
    seeds: int | None = None   # finite when more seeds could show it learned
    text: str = ""


def _gate(learned: dict[str, pd.Series], v: str) -> _Gate:
    r = learned.get(v)
    if r is None or bool(r["learned"]):
        return _Gate(True)
    kind = f" ({r['baseline_kind']})" if r["baseline_kind"] else ""
    seeds = r["seeds_needed"] if r["margin"] > 0 and np.isfinite(r["seeds_needed"]) else None
    return _Gate(False, None if seeds is None else int(seeds),
                 f"{v} did not beat its trivial baseline{kind} with confidence ({_fmt(r['mean'])} vs "
                 f"{_fmt(r['baseline'])}, Holm p={_fmt(r['p_holm'])}): a model that learned nothing is no evidence")


@dataclass
class _Comparison:
    """One S-vs-N comparison read for the verdict: ``state`` is better / within / open-better / open-within /
    stuck (nothing more seeds could change)."""

    state: str
    text: str
    seeds: int | None = None
    n: int = 0


def _read_comparison(best: str, n: str, r: pd.Series, learned: dict[str, pd.Series], u: str) -> _Comparison:
    s_gate, n_gate = _gate(learned, best), _gate(learned, n)
    head = (f"SSM advantage {_signed(r['adv'])}{u} [{_signed(r['adv_ci_low'])}, {_signed(r['adv_ci_high'])}] "
            f"(threshold {_fmt(r['threshold'])}{u}; {r['test']}, n={int(r['n'])}, Holm p: better "
            f"{_fmt(r['p_better_holm'])}, within {_fmt(r['p_within_holm'])})")
    n_seeds = int(r["n"])

    def gated(gate: _Gate, toward: str, claim: str) -> _Comparison:
        if gate.seeds is not None:
            return _Comparison(f"open-{toward}", f"{head} -> {claim}, but {gate.text}; about {gate.seeds} seeds "
                               "would show whether it learned", gate.seeds, n_seeds)
        return _Comparison("stuck", f"{head} -> {claim}, but {gate.text}", None, n_seeds)

    if r["decision"] == "better":
        if s_gate.ok:
            return _Comparison("better", f"{head} -> SSM better by more than the threshold")
        return gated(s_gate, "better", "SSM ahead by more than the threshold")
    if r["decision"] == "within":
        claim = f"{n} better than the SSM" if r["adv_ci_high"] < 0 else f"{n} within the threshold of the SSM"
        return _Comparison("within", f"{head} -> {claim}") if n_gate.ok else gated(n_gate, "within", claim)
    seeds = None if not np.isfinite(r["seeds_needed"]) else int(r["seeds_needed"])
    toward = "better" if r["adv"] > r["threshold"] else "within"
    gate = s_gate if toward == "better" else n_gate
    text = f"{head} -> {r['advice']}" if r["decision"] == N_TOO_SMALL else (
        f"{head} -> undecided: SSM not shown better beyond the threshold, nor {n} within it; {r['advice']}")
    if not gate.ok:
        text += f"; and {gate.text}"
        seeds = None if seeds is None or gate.seeds is None else max(seeds, gate.seeds)
    return _Comparison(f"open-{toward}" if seeds is not None else "stuck", text, seeds, n_seeds)


def _open_item(task: str, sp: str, best: str, reads: dict[str, _Comparison]) -> OpenItem:
    """What more seeds could decide in an inconclusive cell: "needed" only if every N may still be beaten."""
    needed_reachable = all(c.state in ("better", "open-better") for c in reads.values())
    relevant = {n: c for n, c in reads.items()
                if c.state == "open-within" or (needed_reachable and c.state == "open-better")}
    def why(items):
        return "; ".join(f"{best} vs {n}: {c.text.split(' -> ', 1)[-1]}" for n, c in items.items())

    if not relevant:
        return OpenItem(task, sp, (), why({n: c for n, c in reads.items() if c.state == "stuck"}), None,
                        min((c.n for c in reads.values()), default=0))
    variants = tuple(sorted({best, *relevant}))
    return OpenItem(task, sp, variants, why(relevant), max(c.seeds for c in relevant.values()),
                    min(c.n for c in relevant.values()))


def _learned_line(learned: dict[str, pd.Series], variants: list[str], where: str) -> str:
    parts = []
    for v in variants:
        r = learned.get(v)
        if r is None:
            parts.append(f"{v}: no baseline recorded")
            continue
        kind = f" {r['baseline_kind']}" if r["baseline_kind"] else ""
        parts.append(f"{v} {_fmt(r['mean'])} vs{kind} {_fmt(r['baseline'])}: {'yes' if r['learned'] else 'no'} "
                     f"(Holm p={_fmt(r['p_holm'])})")
    return f"learned the task{where} (beat the trivial baseline with confidence): " + "; ".join(parts) + "."


def _cell_verdict(t: TaskInfo, cdf: pd.DataFrame, ev: Evidence, tried: pd.DataFrame, ablation_study: bool
                  ) -> CellVerdict:
    """``cdf``: the cell's selected finished runs; ``tried``: every main run of the cell, any status."""
    size_point = cdf["size_point"].iloc[0]
    size = float(cdf["size"].iloc[0])
    pm = t.primary_metric
    where = f" at {size_label(size_point)}" if size_label(size_point) else ""

    def inconclusive(best, quality, why=None, variants=(), seeds=None, n=0):
        item = OpenItem(t.name, size_point, tuple(variants), why or quality[-1].rstrip("."), seeds, n)
        return CellVerdict(size_point, size, INCONCLUSIVE, best, None, quality, None, "", item)

    if _cost_only(cdf):
        return CellVerdict(size_point, size, COST_ONLY, None, None,
                           [f"cost only{where}: every run trained 0 steps (train.steps: 0), so quality is not "
                            "compared."])
    if pm is None or pm not in cdf.columns or cdf[pm].notna().sum() == 0:
        return inconclusive(None, [f"no primary metric recorded{where}."])
    mi = t.metric(pm)
    means = cdf.groupby("variant")[pm].mean().dropna()
    ssm_vars = sorted(set(cdf.loc[cdf["is_ssm"], "variant"]) & set(means.index))
    non_vars = sorted(set(cdf.loc[~cdf["is_ssm"], "variant"]) & set(means.index))
    if not ssm_vars or not non_vars:
        missing = "SSM" if not ssm_vars else "no-SSM"
        study = (" (an ablation study: each ablation is compared with its base in the Ablations section)"
                 if ablation_study else "")
        return inconclusive(ssm_vars[0] if ssm_vars else None,
                            [f"no finished {missing} variant{where}: nothing to compare{study}."])
    learned = learned_lookup(ev.learned, t.name, size_point)
    scored = cdf[pm].dropna()
    if not learned and len(scored) > 1 and scored.nunique() == 1 and not perfect_score(float(scored.iloc[0]), mi):
        # no baseline recorded (older folders): every model at one score short of perfect, e.g. chance
        return inconclusive(ssm_vars[0], [f"every finished run{where} scored {pm} = {_fmt(float(scored.iloc[0]))}: "
                                          "the variants cannot be told apart (none may have learned the task)."])
    best = str(means[ssm_vars].idxmax() if mi.higher_is_better else means[ssm_vars].idxmin())
    m, _, lo, hi, _ = mean_ci(cdf.loc[cdf["variant"] == best, pm])
    u = f" {mi.unit}" if mi.unit else ""
    direction = "higher is better" if mi.higher_is_better else "lower is better"
    quality = [f"quality{where} ({pm}, {direction}): best SSM variant {best} = {_fmt(m)}{u} "
               f"[{_fmt(lo)}, {_fmt(hi)}]."]
    compared = [best, *non_vars]
    if learned:
        quality.append(_learned_line(learned, compared, where))
        if all(v in learned and not learned[v]["learned"] for v in compared):
            gates = {v: _gate(learned, v) for v in compared}
            could = sorted(v for v, g in gates.items() if g.seeds is not None)
            names = ", ".join(f"{v} {_fmt(learned[v]['mean'])} (baseline {_fmt(learned[v]['baseline'])}"
                              + (f", {learned[v]['baseline_kind']}" if learned[v]["baseline_kind"] else "") + ")"
                              for v in compared)
            if all(learned[v]["note"] == N_TOO_SMALL for v in compared):
                why = (f"{N_TOO_SMALL}{where}: {int(cdf['seed'].nunique())} seeds cannot show that any compared "
                       f"variant beat its trivial baseline ({names})")
            else:
                why = (f"did not learn the task{where}: no compared variant beat its trivial baseline with "
                       f"confidence ({names})" + ("" if could else "; train longer rather than add seeds"))
            return inconclusive(best, quality + [why + "."], why, could,
                                max((gates[v].seeds for v in could), default=None), int(cdf["seed"].nunique()))
    rows = ev.comparisons[(ev.comparisons["task"] == t.name) & (ev.comparisons["size_point"] == size_point)
                          & (ev.comparisons["metric"] == pm) & (ev.comparisons["variant_a"] == best)]
    reads: dict[str, _Comparison] = {}
    for n in non_vars:
        r = rows[rows["variant_b"] == n]
        tag = " (gated CNN: MambaOut's test)" if any(k in n.lower() for k in ("gated", "cnn", "mambaout")) else ""
        if _all_perfect(cdf, n, pm, mi):
            reads[n] = _Comparison("within", f"{n} scored the best possible {pm} on every seed: the SSM cannot do better")
        elif r.empty:
            reads[n] = _Comparison("stuck", "no shared seeds")
        else:
            reads[n] = _read_comparison(best, n, r.iloc[0], learned, u)
        quality.append(f"vs {n}{tag}: {reads[n].text}.")
    # a planned no-SSM variant without a finished, scored run cannot be beaten: no evidence is not a win
    for n in sorted(set(tried.loc[~tried["is_ssm"], "variant"]) - set(non_vars)):
        runs = tried[tried["variant"] == n]
        statuses = ", ".join(f"{s} x{k}" for s, k in runs["status"].value_counts().items())
        reads[n] = _Comparison("stuck", "no finished run")
        quality.append(f"vs {n}: no finished run with {pm} ({statuses}) -> no evidence, so the SSM is not "
                       f"shown better than it.")
    states = [c.state for c in reads.values()]
    if all(s == "better" for s in states):
        verdict = NEEDED
    elif "within" in states:
        verdict = NOT_NEEDED
    else:
        return CellVerdict(size_point, size, INCONCLUSIVE, best, None, quality, rows, "",
                           _open_item(t.name, size_point, best, reads))
    rec, why = _recommendation(t, cdf, ev, learned, verdict)
    return CellVerdict(size_point, size, verdict, best, rec, quality, rows, why)


def _recommendation(t: TaskInfo, cdf: pd.DataFrame, ev: Evidence, learned: dict[str, pd.Series],
                    verdict: str) -> tuple[str | None, str]:
    """The cheapest adequate variant of a decided cell (an SSM when the SSM is needed), and why."""
    pm = t.primary_metric
    cands = candidates(cdf, pm, learned)
    ssm = set(cdf.loc[cdf["is_ssm"], "variant"])
    if verdict == NEEDED:
        cands = [v for v in cands if v in ssm]
    best = best_variant(cdf, pm, cands, t.metric(pm).higher_is_better)
    if best is None:
        return None, ""
    a = ev.adequacy
    ok = a[(a["task"] == t.name) & (a["size_point"] == cdf["size_point"].iloc[0]) & (a["best"] == best) & a["adequate"]]
    adequate = [best, *[v for v in ok["variant"] if v in cands]]
    rec, why = recommend(cdf, adequate, best)
    return rec, f"{verdict} for quality; cheapest adequate variant: {why}"


def _recommendations_by_size(cells: list[CellVerdict]) -> str | None:
    """``recommended per size: seq_len=256 to 1024: attention; seq_len=4096 to 16384: mamba (the choice
    changes at seq_len=4096)`` when the recommendation differs across decided sizes."""
    decided = [c for c in cells if c.recommended]
    if len({c.recommended for c in decided}) < 2:
        return None
    runs = _runs(cells, key=lambda c: c.recommended or f"none ({c.verdict})")
    changes = [size_label(b.size_point) for a, b in zip(decided, decided[1:]) if a.recommended != b.recommended]
    return f"recommended per size: {runs} (the choice changes at {', '.join(changes)})."


def task_verdicts(df: pd.DataFrame, suite: ResultsSuite, evidence: Evidence | None = None, alpha: float = ALPHA,
                  design: SequentialDesign | None = None) -> list[TaskVerdict]:
    """One :class:`TaskVerdict` per task in ``df`` (see the module docstring for the rule).

    ``evidence``: from :func:`gather_evidence` (computed here when None, under ``design``)."""
    ev = evidence or gather_evidence(df, suite, design, alpha)
    budget = equal_budget(df, suite)
    out = []
    for task in sorted(df["task"].astype(str).unique()):
        t = suite.task(task)
        tdf = ev.selected[ev.selected["task"] == task]
        allt = df[df["task"] == task]
        ablation_study = bool((~allt["ablation"].isin(MAIN_ABLATIONS)).any())
        if tdf.empty:
            ok = allt[allt["status"] == "ok"]
            why = ("an ablation study only: every finished run here is an ablation, and the verdict pairs the "
                   "others (see the Ablations section)." if len(ok) else "no finished runs: see the status table.")
            out.append(TaskVerdict(task, t.family, INCONCLUSIVE, None, [why], [], t.primary_metric))
            continue
        cells = []
        for sp, cdf in sorted(tdf.groupby("size_point"), key=lambda kv: (kv[1]["size"].iloc[0], kv[0])):
            tried = allt[allt["ablation"].isin(MAIN_ABLATIONS) & (allt["size_point"] == sp)]
            cells.append(_cell_verdict(t, cdf, ev, tried, ablation_study))
        quality_cells = [c for c in cells if c.verdict != COST_ONLY]
        kinds = [c.verdict for c in quality_cells]
        if not quality_cells:
            verdict, deciding = COST_ONLY, cells[-1]
        elif NEEDED in kinds:
            verdict, deciding = NEEDED, [c for c in quality_cells if c.verdict == NEEDED][-1]
        elif all(k == NOT_NEEDED for k in kinds):
            verdict, deciding = NOT_NEEDED, quality_cells[-1]
        else:
            verdict = INCONCLUSIVE
            deciding = next(c for c in reversed(quality_cells) if c.verdict == INCONCLUSIVE)
        recommended = deciding.recommended if verdict in (NEEDED, NOT_NEEDED) else None
        reasons: list[str] = []
        if len(cells) > 1:
            reasons.append(f"per size: {_runs(cells)}.")
        reasons.extend(deciding.quality)
        if recommended:
            reasons.append(f"{deciding.recommendation}.")
        by_size = _recommendations_by_size(cells)
        if by_size:
            reasons.append(by_size)
        # cost at the task size: the largest size point
        last = tdf[tdf["size_point"] == cells[-1].size_point]
        best = cells[-1].best_ssm or next(iter(sorted(set(last.loc[last["is_ssm"], "variant"]))), None)
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


def open_items(verdicts: list[TaskVerdict]) -> list[OpenItem]:
    """Every undecided cell (task x size point) and what would decide it, in task and size order.

    For ``harness run --until-decided``: add ``seed_batch`` seeds to the ``variants`` of each item whose
    ``variants`` is non-empty (the same new seeds on each; every grid point of a swept variant), while its
    shared seeds are fewer than ``max_seeds``; items with no variants cannot be decided by seeds (their
    ``why`` says what would help). Cost-only and decided cells are never open."""
    return [c.open for v in verdicts for c in v.cells if c.verdict == INCONCLUSIVE and c.open is not None]


def verdict_table(verdicts: list[TaskVerdict]) -> pd.DataFrame:
    return pd.DataFrame([dict(task=v.task, family=v.family, verdict=v.verdict,
                              recommended=v.recommended or "", primary_metric=v.primary_metric or "",
                              reasons="\n".join(v.reasons)) for v in verdicts],
                        columns=["task", "family", "verdict", "recommended", "primary_metric", "reasons"])


__all__ = ["NEEDED", "NOT_NEEDED", "INCONCLUSIVE", "COST_ONLY", "TaskVerdict", "CellVerdict", "OpenItem",
           "Evidence", "gather_evidence", "task_verdicts", "open_items", "verdict_table", "verdict_rule_markdown",
           "COST_COLUMNS"]
