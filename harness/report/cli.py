"""What ``harness report`` and ``harness compare`` (``harness.cli``) run, returning their exit codes.

Exit codes: 0 ok; 1 regressions found with ``--fail-on-regression``; 2 bad input (message, no traceback).
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
