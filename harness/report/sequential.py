"""Decisions at a threshold with their error rate controlled, for a fixed number of seeds or seeds added in batches.

Every decision the report makes from seeds is one of two one-sided questions about the centre ``mu`` of a
per-seed statistic (a paired difference, a variant's margin over its trivial baseline, a per-seed slope):

* *above*: is ``mu > margin``?  (``H0: mu <= margin``) - e.g. "the SSM is better by more than the threshold";
* *below*: is ``mu < margin``?  (``H0: mu >= margin``) - e.g. "the other variant is within the threshold".

Test at one look: the one-sided Wilcoxon signed-rank test of ``values - margin``, exact (its null law is
the same for every continuous distribution symmetric about the margin: normal, bimodal, heavy-tailed),
so ``mu`` is the mean for symmetric differences (the Hodges-Lehmann centre in general). Why not the
t-test: with 3-5 seeds it trusts a tight cluster, and seed outcomes in this field are often bimodal (a
seed learns the task or does not); when the seeds split into two tight clusters with their mean exactly
at the margin, all three seeds land in one cluster with probability 1/8 and look like a consistent
effect, and the t-test then wrongly decides about 10-16 % of the time (measured by
``python -m harness.benchmarks.verdict_errors``). No test can be right there at 3 seeds: the smallest
p-value of any test that holds for such outcomes is 2^-n (all seeds on one side), so **n too small** is
said whenever that smallest p-value (after the look adjustment below) is above ``alpha``: n <= 4, and at
n = 5 a single comparison can decide, at n >= 6 three under Holm (1/64 < 0.05/3). Zero differences count
against the alternative and tied magnitudes get average ranks (conservative).

Sequential seeds (``harness run --until-decided``): the planned seeds form look 0; each undecided
comparison then gets ``seed_batch`` more seeds per look, up to ``max_seeds`` (the last batch is cut to
reach ``max_seeds`` exactly). A row records the look its seed was added at (column ``look``), and
``RESULTS_DIR/sequential.json`` records the design (:class:`SequentialDesign`). Testing the data of the
last look as if its n had been fixed would let repeated looks inflate the error; instead the reported
p-value of a comparison is

    p_seq = P_H0( min over ALL planned looks of the per-look p  <=  the smallest per-look p observed )

where the planned looks are the n of each observed look followed by the looks the design would still add.
Under H0 at the margin the signs of ``values - margin`` are fair coins independent of the magnitudes and
the magnitudes' ranks are a uniform random order, so the joint law of the signed-rank statistics at
nested looks is the same for every continuous symmetric distribution: it is simulated once per look
schedule (``NULL_SIMS`` sequences, fixed RNG seed, cached) and is exact up to Monte-Carlo error.
``p_seq`` is valid whatever the stopping rule: stopping early only leaves the observed minimum higher
than the minimum over all planned looks. With one look it is exactly the plain p-value. This is a
Pocock-type design in p-value form (one nominal level at every look), chosen over alpha-spending
boundaries (they need a known variance or large n) and anytime-valid confidence sequences (they need a
known scale or bounded outcomes and are too wide to decide at 5-10 seeds). Holm's correction applied to
``p_seq`` across the comparisons of a report keeps its family-wise error rate (Holm needs only valid
p-values).

These primitives are public for every decision made from seeds (verdicts, ablations, claims):
:func:`threshold_test` (both sides, fixed or sequential), :func:`seeds_advice` (how many seeds would
decide an undecided test), :class:`SequentialDesign` with :func:`read_design` / :func:`write_design`,
and the vectorised :func:`look_pvalues` / :func:`sequential_p` for simulations.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

from harness.errors import HarnessError
from harness.report.stats import ALPHA, mean_ci

DESIGN_FILE = "sequential.json"
DESIGN_VERSION = 1
NULL_SIMS = 100_000
NULL_SEED = 20250611
NULL_CHUNK = 25_000
#: beyond this many seeds the advice says the effect sits on the threshold: more seeds will not help.
SEEDS_CAP = 100
#: power that :func:`seeds_advice` plans for.
ADVICE_POWER = 0.8
TEST = "signed-rank"
NO_TEST = "none"
#: asymptotic relative efficiency of the signed-rank test to the t-test under normal differences (3/pi).
SIGNED_RANK_ARE = 3 / np.pi
N_TOO_SMALL = "n too small"


@dataclass(frozen=True)
class SequentialDesign:
    """``--until-decided --max-seeds N --seed-batch K``: after the planned seeds, K more per look up to N."""

    max_seeds: int
    seed_batch: int

    def __post_init__(self):
        if self.seed_batch < 1 or self.max_seeds < 2:
            raise HarnessError(f"sequential design needs seed_batch >= 1 and max_seeds >= 2, got "
                               f"seed_batch={self.seed_batch}, max_seeds={self.max_seeds}")

    def schedule(self, observed: tuple[int, ...]) -> tuple[int, ...]:
        """The n of each observed look, then the looks this design would still add (up to ``max_seeds``)."""
        out = list(observed)
        n = out[-1] if out else 0
        while n < self.max_seeds:
            n = min(n + self.seed_batch, self.max_seeds)
            out.append(n)
        return tuple(out)


def read_design(results_dir: str | Path) -> SequentialDesign | None:
    """The design in ``RESULTS_DIR/sequential.json``, or None when the seeds were fixed in advance."""
    p = Path(results_dir) / DESIGN_FILE
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text())
        return SequentialDesign(int(data["max_seeds"]), int(data["seed_batch"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"{p}: corrupt sequential design ({exc}); it must read "
                           '{"version": 1, "max_seeds": N, "seed_batch": K}: restore it from the command '
                           "that ran the suite (--max-seeds, --seed-batch)") from None


def write_design(results_dir: str | Path, design: SequentialDesign) -> None:
    """Record the design before the first added seed; refuse to change a recorded one (that would void its
    error control: the looks already taken were analysed under the recorded design)."""
    from harness.store.store import atomic_write_text

    old = read_design(results_dir)
    if old is not None and old != design:
        raise HarnessError(f"{Path(results_dir) / DESIGN_FILE} records --max-seeds {old.max_seeds} --seed-batch "
                           f"{old.seed_batch}; this run asks for --max-seeds {design.max_seeds} --seed-batch "
                           f"{design.seed_batch}: rerun with the recorded values, or into a new results folder")
    if old is None:
        atomic_write_text(Path(results_dir) / DESIGN_FILE,
                          json.dumps({"version": DESIGN_VERSION, **asdict(design)}, indent=1) + "\n")


@functools.lru_cache(maxsize=None)
def signed_rank_tail(n: int) -> np.ndarray:
    """``P(W >= w)`` for ``w = 0 .. n(n+1)/2`` under H0: the exact law of the signed-rank sum of n values
    (counts of subsets of {1..n} by their sum, by dynamic programming)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    tail = np.cumsum(counts[::-1])[::-1] / 2.0 ** n
    tail.flags.writeable = False
    return tail


def look_pvalues(values: np.ndarray, schedule: tuple[int, ...], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided signed-rank p-values ``(above, below)`` of ``values[..., :n] - margin`` at each look n of
    ``schedule``; ``values`` has shape (..., >= schedule[-1]) and no NaN; results have shape (..., looks)."""
    x = np.asarray(values, dtype=float)[..., : schedule[-1]] - margin
    above, below = [], []
    for n in schedule:
        d = x[..., :n]
        ranks = sps.rankdata(np.abs(d), axis=-1)
        tail = signed_rank_tail(n)
        above.append(tail[np.floor((ranks * (d > 0)).sum(axis=-1) + 1e-9).astype(int)])
        below.append(tail[np.floor((ranks * (d < 0)).sum(axis=-1) + 1e-9).astype(int)])
    return np.stack(above, axis=-1), np.stack(below, axis=-1)


@functools.lru_cache(maxsize=64)
def min_p_null(schedule: tuple[int, ...]) -> np.ndarray:
    """Sorted draws of ``min over the looks of the one-sided signed-rank p-value`` under H0 (any continuous
    distribution symmetric about the margin; the same law on both sides). ``schedule``: n at each look
    (increasing, each >= 2). ``NULL_SIMS`` simulated sequences with a fixed seed: a report is reproducible."""
    if len(schedule) < 2 or any(b <= a for a, b in zip(schedule, schedule[1:])) or schedule[0] < 2:
        raise ValueError(f"a sequential schedule has >= 2 increasing looks of >= 2 values, got {schedule}")
    rng = np.random.default_rng(NULL_SEED)
    out = []
    for start in range(0, NULL_SIMS, NULL_CHUNK):
        z = rng.standard_normal((min(NULL_CHUNK, NULL_SIMS - start), schedule[-1]))
        out.append(look_pvalues(z, schedule, 0.0)[0].min(axis=-1))
    draws = np.sort(np.concatenate(out))
    draws.flags.writeable = False
    return draws


def sequential_p(min_p, schedule: tuple[int, ...]):
    """``P_H0(min over the planned looks of p <= min_p)`` (vectorised over ``min_p``): the plain p with one
    look, else from :func:`min_p_null` as ``(1 + #draws <= min_p) / (1 + #draws)`` (a Monte-Carlo p-value
    that stays valid)."""
    if len(schedule) <= 1:
        return min_p
    draws = min_p_null(tuple(int(n) for n in schedule))
    out = (1 + np.searchsorted(draws, min_p, side="right")) / (1 + len(draws))
    return np.where(np.isfinite(min_p), out, np.nan) if np.ndim(min_p) else (float(out) if np.isfinite(min_p) else np.nan)


@dataclass
class ThresholdTest:
    """Both one-sided tests of a per-seed statistic against ``margin`` (see the module docstring).

    ``looks``: n at each observed look; ``schedule``: the looks the p-values are adjusted for (observed +
    still planned); ``p_min``: the smallest p-value these n values could give (all on one side), after
    that adjustment. ``ci_*``: the descriptive 95 % t-interval of the mean (not adjusted for looks or for
    multiplicity; NaN when the values are all equal). ``note``: ``n too small`` when ``p_min > alpha``."""

    n: int
    mean: float
    sd: float
    margin: float
    p_above: float
    p_below: float
    p_min: float
    test: str
    ci_low: float
    ci_high: float
    ci_method: str
    looks: tuple[int, ...]
    schedule: tuple[int, ...]
    note: str = ""


def threshold_test(values, margin: float, looks=None, design: SequentialDesign | None = None,
                   alpha: float = ALPHA) -> ThresholdTest:
    """Test the centre of ``values`` (one per seed) against ``margin`` on both sides.

    ``looks``: the look at which each value's seed was added (None: all at look 0). ``design``: the
    sequential design, whose still-planned looks the p-values are adjusted for (None: no further looks).
    """
    x = np.asarray(values, dtype=float)
    lk = np.zeros(len(x), dtype=int) if looks is None else np.asarray(looks, dtype=int)
    keep = np.isfinite(x)
    order = np.argsort(lk[keep], kind="mergesort")
    x, lk = x[keep][order], lk[keep][order]
    n = len(x)
    mean, sd, lo, hi, how = mean_ci(x, alpha=alpha)
    if n >= 2 and float(np.ptp(x)) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        lo = hi = np.nan  # all equal: no spread, no interval
        how = "none"
    observed = tuple(int((lk <= v).sum()) for v in np.unique(lk) if (lk <= v).sum() >= 2)
    if not observed:
        return ThresholdTest(n, mean, sd, float(margin), np.nan, np.nan, np.nan, NO_TEST, lo, hi, how, (), (),
                             N_TOO_SMALL)
    sched = design.schedule(observed) if design else observed
    above, below = look_pvalues(x, observed, margin)
    p_min = sequential_p(0.5 ** n, sched)
    return ThresholdTest(n, mean, sd, float(margin), sequential_p(float(above.min()), sched),
                         sequential_p(float(below.min()), sched), p_min, TEST, lo, hi, how, observed, sched,
                         N_TOO_SMALL if p_min > alpha else "")


def seeds_needed(mean: float, sd: float, margin: float, alpha: float, power: float = ADVICE_POWER) -> int | None:
    """About how many seeds the one-sided signed-rank test at level ``alpha`` needs to decide ``mean``
    against ``margin`` with the given power if the observed mean and SD held (the t-test's n under normal
    differences divided by the signed-rank test's efficiency 3/pi, and at least the n whose smallest
    p-value 2^-n is below ``alpha``); None beyond ``SEEDS_CAP`` (the effect sits on the threshold)."""
    delta = abs(mean - margin)
    if not (np.isfinite(delta) and np.isfinite(sd)) or delta == 0:
        return None
    floor = int(np.ceil(np.log2(1 / alpha)))
    if sd == 0:
        return floor
    n = np.arange(2, SEEDS_CAP + 1)
    ok = delta / (sd / np.sqrt(n)) >= sps.t.ppf(1 - alpha, n - 1) + sps.t.ppf(power, n - 1)
    if not ok.any():
        return None
    need = max(floor, int(np.ceil(n[ok][0] / SIGNED_RANK_ARE)))
    return need if need <= SEEDS_CAP else None


def seeds_advice(t: ThresholdTest, alpha: float) -> tuple[int | None, str]:
    """``(seeds, text)`` for an undecided test at its family's level ``alpha`` (e.g. alpha / number of tests):
    about how many seeds would decide it at the observed spread, or why more seeds will not help."""
    need = seeds_needed(t.mean, t.sd if t.n >= 2 else 0.0, t.margin, alpha)
    if t.n < 2:
        return need, f"{N_TOO_SMALL} (n={t.n}): a test needs at least 2 seeds"
    if need is None:
        return None, (f"the effect sits on the threshold for its spread (mean {t.mean:+.3g} vs {t.margin:.3g}, "
                      f"SD {t.sd:.2g}: more than {SEEDS_CAP} seeds): more seeds will not help")
    if t.note == N_TOO_SMALL:
        return need, (f"{N_TOO_SMALL}: with {t.n} seeds the smallest possible p is {t.p_min:.2g} > {alpha:.2g}; "
                      f"about {need} seeds would decide it")
    return need, f"about {need} seeds would decide it at the observed SD {t.sd:.2g}"


@dataclass
class ProportionTest:
    """Both one-sided exact binomial tests of the chance ``p`` that a seed shows an outcome (e.g. a run
    diverges), from ``k`` of ``n`` seeds: ``p_above`` of ``p > fraction``, ``p_below`` of ``p < fraction``.

    With seeds added in looks (``--until-decided``), each is the smallest per-look p-value times the number
    of planned looks (a union bound: valid whatever the stopping rule, and exact with one look; the
    signed-rank null law of :func:`min_p_null` does not apply to 0/1 outcomes). ``ci_*``: the exact
    (Clopper-Pearson) 95 % interval of ``k / n``, descriptive. ``note``: ``n too small`` when even
    ``k = n`` could not give ``p_above <= alpha``."""

    n: int
    k: int
    fraction: float
    p_above: float
    p_below: float
    p_min: float
    ci_low: float
    ci_high: float
    looks: tuple[int, ...]
    schedule: tuple[int, ...]
    note: str = ""

    @property
    def share(self) -> float:
        return self.k / self.n if self.n else np.nan


def proportion_test(hits, fraction: float, looks=None, design: SequentialDesign | None = None,
                    alpha: float = ALPHA) -> ProportionTest:
    """Test the chance that a seed shows an outcome against ``fraction`` (0 < fraction < 1) on both sides.

    ``hits``: one bool per seed; ``looks``: the look each seed was added at (None: all at look 0);
    ``design``: the sequential design whose still-planned looks the p-values are adjusted for."""
    if not 0 < fraction < 1:
        raise ValueError(f"a proportion is tested against a fraction strictly between 0 and 1, got {fraction}")
    x = np.asarray(hits, dtype=bool)
    lk = np.zeros(len(x), dtype=int) if looks is None else np.asarray(looks, dtype=int)
    order = np.argsort(lk, kind="mergesort")
    x, lk = x[order], lk[order]
    n, k = len(x), int(x.sum())
    if n == 0:
        return ProportionTest(0, 0, fraction, np.nan, np.nan, np.nan, np.nan, np.nan, (), (), N_TOO_SMALL)
    observed = tuple(int((lk <= v).sum()) for v in np.unique(lk))
    sched = design.schedule(observed) if design else observed
    counts = [int(x[:m].sum()) for m in observed]
    above = min(float(sps.binom.sf(c - 1, m, fraction)) for c, m in zip(counts, observed))
    below = min(float(sps.binom.cdf(c, m, fraction)) for c, m in zip(counts, observed))
    factor = len(sched)
    p_min = min(1.0, fraction ** n * factor)
    lo = float(sps.beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0  # Clopper-Pearson, as scipy's binomtest
    hi = float(sps.beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return ProportionTest(n, k, fraction, min(1.0, above * factor), min(1.0, below * factor), p_min, lo, hi,
                          observed, sched, N_TOO_SMALL if p_min > alpha else "")


def proportion_seeds_needed(share: float, fraction: float, alpha: float, power: float = ADVICE_POWER) -> int | None:
    """About how many seeds the exact binomial test at level ``alpha`` needs to tell a chance ``share`` from
    ``fraction`` with the given power (the exact power, searched up to ``SEEDS_CAP``); None beyond it."""
    if not np.isfinite(share) or share == fraction:
        return None
    for n in range(1, SEEDS_CAP + 1):
        k = np.arange(n + 1)
        if share > fraction:
            reject = k[sps.binom.sf(k - 1, n, fraction) <= alpha]
            got = float(sps.binom.sf(reject[0] - 1, n, share)) if len(reject) else 0.0
        else:
            reject = k[sps.binom.cdf(k, n, fraction) <= alpha]
            got = float(sps.binom.cdf(reject[-1], n, share)) if len(reject) else 0.0
        if got >= power:
            return n
    return None


def proportion_advice(t: ProportionTest, alpha: float) -> tuple[int | None, str]:
    """``(seeds, text)`` for an undecided :class:`ProportionTest` at level ``alpha``, as :func:`seeds_advice`."""
    need = proportion_seeds_needed(t.share, t.fraction, alpha)
    if need is None:
        return None, (f"the share of seeds ({t.k}/{t.n}) sits on the fraction {t.fraction:.3g}: more seeds will "
                      "not help" if t.n else "no runs: run the suite first")
    return need, f"about {need} seeds would decide it ({t.k}/{t.n} so far, fraction {t.fraction:.3g})"
