"""Claims: which of a paper's findings hold on these runs, which do not, and which the runs cannot yet tell.

A suite's tasks carry claims in ``expect:`` (:mod:`harness.config.claims`); ``harness run`` stores them in
``suite.json``. Each claim's check gives two p-values (:mod:`harness.report.claim_checks`): ``p_repro``,
small when the runs show the claim holds, and ``p_contra``, small when they show it fails; each kind
defines failing with the same tests as holding, one-sided the other way.

Outcomes, at ``alpha`` = 0.05:

* **reproduced**: ``p_repro`` Holm-corrected over the report's claims is below alpha;
* **contradicted**: ``p_contra`` Holm-corrected over the report's claims is below alpha;
* **undecided**: neither; the advice says what would decide it (about how many seeds, or a wider sweep,
  or that more seeds will not help).

Multiplicity: the claims are their own two families (reproduced and contradicted), apart from the
verdicts' families: adding a claim never changes a task's verdict (verdicts never read claims), and a
verdict's tests never change a claim's outcome (a ``verdict`` claim re-derives the verdict rule from its
task's runs alone, its comparisons Holm-corrected among themselves, so it can differ from the report's
verdict, whose Holm family is every comparison of the report). Each outcome's chance of being wrong is at
most alpha over all claims of the report together (Holm on valid p-values, adjusted for the looks of
``--until-decided``).

:func:`claim_open_items` lists the undecided claims as :class:`~harness.report.verdict.OpenItem` (the shape
of :func:`~harness.report.verdict.open_items`), so ``harness run --until-decided`` adds seeds for them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from harness.config.claims import Claim
from harness.errors import HarnessError
from harness.report.claim_checks import CheckResult, Context, evaluate_check
from harness.report.load import ResultsSuite
from harness.report.paired import holm
from harness.report.sequential import SequentialDesign
from harness.report.stats import ALPHA
from harness.report.verdict import OpenItem

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
UNDECIDED = "undecided"
CLAIMS_FILE = "claims.csv"
#: ``--fail-on`` level -> the outcomes that fail it (undecided fails on anything short of reproduced).
FAIL_ON = {CONTRADICTED: (CONTRADICTED,), UNDECIDED: (UNDECIDED, CONTRADICTED)}
CLAIM_COLUMNS = ["id", "task", "kind", "source", "claim", "outcome", "estimate", "ci_low", "ci_high", "test", "n",
                 "p_reproduced", "p_contradicted", "p_reproduced_holm", "p_contradicted_holm", "evidence", "advice",
                 "seeds_needed"]


@dataclass
class ClaimResult:
    """One claim, its outcome and its evidence (``check``: the raw p-values, estimate and advice)."""

    id: str
    task: str
    kind: str
    source: str
    claim: str
    outcome: str
    p_repro_holm: float
    p_contra_holm: float
    check: CheckResult


def stored_claims(suite: ResultsSuite) -> list[tuple[str, Claim, dict]]:
    """``(task, claim, metrics)`` of every claim in ``suite.json``, in task order (``metrics``: how the
    metrics the claim names read, as the family declared them)."""
    out = []
    for name in sorted(suite.tasks):
        for entry in suite.tasks[name].claims:
            try:
                claim = Claim.model_validate(entry["claim"])
            except (KeyError, TypeError, ValidationError) as exc:
                raise HarnessError(f"suite.json: a claim of task {name!r} cannot be read ({str(exc).splitlines()[0]}); "
                                   "rerun the suite (harness run resumes every stored run) to rewrite suite.json") from None
            out.append((name, claim, dict(entry.get("metrics") or {})))
    return out


def evaluate_claims(df: pd.DataFrame, suite: ResultsSuite, design: SequentialDesign | None = None,
                    alpha: float = ALPHA) -> list[ClaimResult]:
    """Every stored claim checked on ``df`` (from :func:`harness.report.load.load_results`) with its outcome."""
    claims = stored_claims(suite)
    level = alpha / max(1, len(claims))  # advice plans for the first Holm step
    checks = [evaluate_check(Context(df, suite, suite.task(task), metrics, design, level), claim)
              for task, claim, metrics in claims]
    repro = holm([c.p_repro for c in checks])
    contra = holm([c.p_contra for c in checks])
    out = []
    for (task, claim, _), c, pr, pc in zip(claims, checks, repro, contra):
        outcome = REPRODUCED if pr < alpha else CONTRADICTED if pc < alpha else UNDECIDED
        out.append(ClaimResult(claim.id, task, claim.kind, claim.source, claim.claim, outcome, float(pr), float(pc), c))
    return out


def claims_table(results: list[ClaimResult]) -> pd.DataFrame:
    """One row per claim (columns :data:`CLAIM_COLUMNS`; ``advice`` only for undecided claims)."""
    rows = []
    for r in results:
        c = r.check
        rows.append(dict(id=r.id, task=r.task, kind=r.kind, source=r.source, claim=r.claim, outcome=r.outcome,
                         estimate=c.estimate, ci_low=c.ci_low, ci_high=c.ci_high, test=c.test, n=c.n,
                         p_reproduced=c.p_repro, p_contradicted=c.p_contra, p_reproduced_holm=r.p_repro_holm,
                         p_contradicted_holm=r.p_contra_holm, evidence=c.evidence,
                         advice=c.advice if r.outcome == UNDECIDED else "",
                         seeds_needed=c.seeds_needed if r.outcome == UNDECIDED and c.seeds_needed else np.nan))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def claim_open_items(results: list[ClaimResult]) -> list[OpenItem]:
    """The undecided claims as open items (the shape of :func:`harness.report.verdict.open_items`): one per size
    point that more seeds would go to, with the variant labels run there; one with no variants when seeds
    will not decide the claim (its ``why`` says what would, e.g. a wider sweep)."""
    out = []
    for r in results:
        if r.outcome != UNDECIDED:
            continue
        c = r.check
        why = c.advice or c.evidence
        if c.open and c.seeds_needed:
            out.extend(OpenItem(r.task, sp, variants, why, c.seeds_needed, c.n, claim=r.id) for sp, variants in c.open)
        else:
            out.append(OpenItem(r.task, "{}", (), why, None, c.n, claim=r.id))
    return out


def write_claims_csv(results_dir: str | Path, table: pd.DataFrame) -> Path:
    """``RESULTS_DIR/claims.csv``, written atomically."""
    from harness.store.store import atomic_write_text

    path = Path(results_dir) / CLAIMS_FILE
    atomic_write_text(path, table.to_csv(index=False))
    return path


def failed(results: list[ClaimResult], fail_on: str | None) -> list[ClaimResult]:
    """The claims whose outcome fails ``--fail-on`` (contradicted, or undecided: anything not reproduced)."""
    return [r for r in results if fail_on and r.outcome in FAIL_ON[fail_on]]


__all__ = ["REPRODUCED", "CONTRADICTED", "UNDECIDED", "CLAIM_COLUMNS", "ClaimResult", "evaluate_claims", "claims_table",
           "claim_open_items", "stored_claims", "write_claims_csv", "failed"]
