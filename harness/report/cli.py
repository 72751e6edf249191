"""What ``harness report``, ``harness claims`` and ``harness compare`` (``harness.cli``) run, returning exit codes.

Exit codes: 0 ok; 1 regressions found with ``--fail-on-regression``, or claims that fail ``--fail-on``; 2 bad
input (message, no traceback).
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from harness.errors import HarnessError


def _console(console=None):
    from rich.console import Console
    return console or Console()


def print_verdicts(verdicts, console=None) -> None:
    from rich.table import Table

    console = _console(console)
    style = {"SSM needed": "bold green", "SSM not needed": "bold blue", "inconclusive": "bold yellow", "cost only": "dim"}
    tab = Table(title="Does this task need an SSM?", show_lines=True)
    for c in ("task", "verdict", "recommended", "reasons"):
        tab.add_column(c, overflow="fold")
    for v in verdicts:
        tab.add_row(v.task, f"[{style.get(v.verdict, '')}]{v.verdict}[/]", v.recommended or "",
                    "\n".join(v.reasons))
    console.print(tab)


def cli_report(results_dir: str | Path, fmt: str = "html", baseline: str | Path | None = None,
               out: str | Path | None = None, console=None, papers_dir: str | Path | None = None,
               format: str | None = None) -> int:
    """``harness report RESULTS_DIR [--format html|md] [--baseline OTHER] [--out PATH]``; returns an exit code.

    ``format`` is accepted as an alias of ``fmt``. Prints the verdict table and, with a baseline, the
    regression summary; 0 on success, 2 on bad input.
    """
    format = format or fmt
    from harness.report.render import build_report_with_analysis  # heavy imports only when used

    console = _console(console)
    try:
        path, an = build_report_with_analysis(results_dir, fmt=format, baseline=baseline, out=out,
                                              papers_dir=papers_dir)
    except HarnessError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)  # one line, verbatim
        return 2
    print_verdicts(an.verdicts, console)
    if an.baseline is not None:
        from harness.report.compare import print_comparison
        print_comparison(an.baseline, console)
    console.print(f"report written to [bold]{path}[/bold]")
    return 0


OUTCOME_STYLE = {"reproduced": "bold green", "contradicted": "bold red", "undecided": "bold yellow"}


def _num(x) -> str:
    return f"{x:.3g}" if x is not None and x == x and abs(x) != float("inf") else "n/a"


def print_claims(results, console=None) -> None:
    """The claims table: id, source, claim, outcome, evidence (estimate [CI], test, n) and what would decide it."""
    from rich.table import Table

    console = _console(console)
    tab = Table(title="Claims: the papers' findings on these runs", show_lines=True)
    for c in ("id", "source", "claim", "outcome", "evidence"):
        tab.add_column(c, overflow="fold")
    for r in results:
        c = r.check
        ci = f" [{_num(c.ci_low)}, {_num(c.ci_high)}]" if c.ci_low == c.ci_low else ""
        lines = [f"{_num(c.estimate)}{ci}, {c.test or 'no test'}, n={c.n}; Holm p: reproduced {_num(r.p_repro_holm)}, "
                 f"contradicted {_num(r.p_contra_holm)}", c.evidence]
        if r.outcome == "undecided" and c.advice:
            lines.append(f"to decide: {c.advice}")
        tab.add_row(escape(r.id), escape(r.source), escape(r.claim),
                    f"[{OUTCOME_STYLE.get(r.outcome, '')}]{r.outcome}[/]", escape("\n".join(lines)))
    console.print(tab)


def cli_claims(results_dir: str | Path, fail_on: str | None = None, console=None) -> int:
    """``harness claims RESULTS_DIR [--fail-on contradicted|undecided]``: print the claims table, write
    ``claims.csv`` beside the results; 1 when a claim fails ``--fail-on``, 2 on bad input, else 0."""
    from harness.report.claims import claims_table, evaluate_claims, failed, write_claims_csv
    from harness.report.load import load_results
    from harness.report.sequential import read_design

    console = _console(console)
    try:
        df, suite = load_results(results_dir)
        results = evaluate_claims(df, suite, design=read_design(results_dir))
    except HarnessError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        return 2
    if not results:
        console.print(f"no claims in suite {suite.name or results_dir!r}: a task states them in expect: (see the README)")
        return 0
    print_claims(results, console)
    path = write_claims_csv(results_dir, claims_table(results))
    counts = ", ".join(f"{sum(r.outcome == o for r in results)} {o}" for o in OUTCOME_STYLE)
    console.print(f"{len(results)} claims: {counts}; table written to [bold]{escape(str(path))}[/bold]")
    bad = failed(results, fail_on)
    if bad:
        console.print(f"[red]--fail-on {fail_on}:[/red] {', '.join(escape(r.id) for r in bad)}")
    return 1 if bad else 0


def print_run_answer(results_dir: str | Path, tasks: set[str], console=None) -> None:
    """What ``harness run`` prints last: the verdict and the claims of each task it ran, one short line each.

    Read from the whole results folder, as ``harness report`` and ``harness claims`` read it (so the
    numbers agree with theirs: one Holm family per folder), then cut to ``tasks``. Writes nothing. It
    never fails the run: anything that stops it (no finished run, a folder written by older code) is
    printed as a note, since the runs it summarises are already stored."""
    from rich.table import Table

    from harness.report.claims import evaluate_claims
    from harness.report.load import load_results
    from harness.report.sequential import read_design
    from harness.report.verdict import task_verdicts

    console = _console(console)
    try:
        df, suite = load_results(results_dir)
        design = read_design(results_dir)
        verdicts = [v for v in task_verdicts(df, suite, design=design) if v.task in tasks]
        claims = [r for r in evaluate_claims(df, suite, design) if r.task in tasks]
    except Exception as exc:  # noqa: BLE001 - a summary must never turn stored runs into a failed command
        console.print(f"[yellow]no verdicts to print: {escape(str(exc) or type(exc).__name__)}[/]", highlight=False)
        return
    style = {"SSM needed": "bold green", "SSM not needed": "bold blue", "inconclusive": "bold yellow", "cost only": "dim"}
    tab = Table(title="Does this task need an SSM? (harness report for the evidence)", show_lines=False)
    for c in ("task", "verdict", "recommended", "why"):
        tab.add_column(c, overflow="fold")
    for v in verdicts:
        # the comparisons that decided it (each cell's quality lines after its header), else the first reason
        why = [r for r in v.reasons if any(r in c.quality[1:] for c in v.cells)] or v.reasons[:1]
        tab.add_row(escape(v.task), f"[{style.get(v.verdict, '')}]{v.verdict}[/]", escape(v.recommended or ""),
                    escape("\n".join(why)))
    console.print(tab)
    if not claims:
        return
    tab = Table(title="Claims (harness claims for the evidence)", show_lines=False)
    for c in ("id", "source", "outcome", "estimate [95% CI], n, Holm p"):
        tab.add_column(c, overflow="fold")
    for r in claims:
        c = r.check
        ci = f" [{_num(c.ci_low)}, {_num(c.ci_high)}]" if c.ci_low == c.ci_low else ""
        p = r.p_repro_holm if r.outcome != "contradicted" else r.p_contra_holm
        tab.add_row(escape(r.id), escape(r.source), f"[{OUTCOME_STYLE.get(r.outcome, '')}]{r.outcome}[/]",
                    f"{_num(c.estimate)}{ci}, n={c.n}, p {_num(p)}")
    console.print(tab)


def cli_compare(a: str | Path, b: str | Path, fail_on_regression: bool = False, metrics: list[str] | None = None,
                console=None) -> int:
    """``harness compare A B [--fail-on-regression]``: B is the new run, A the baseline."""
    from harness.report.compare import compare_dirs, print_comparison

    console = _console(console)
    try:
        res = compare_dirs(a, b, metrics=metrics)
    except HarnessError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)  # one line, verbatim
        return 2
    n_reg = print_comparison(res, console)
    return 1 if (fail_on_regression and n_reg) else 0
