"""Build the comparison report: one self-contained HTML file, or Markdown with PNG figures beside it.

``build_report(results_dir, fmt="html" | "md", baseline=None, out=None) -> Path``

analysis.py computes what the report shows, tables.py and blocks.py lay it out as one list of blocks, and
html.py / markdown.py render those blocks, so HTML and Markdown always carry the same content.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.report.analysis import Analysis, analyze
from harness.report.blocks import report_blocks
from harness.report.crossover import N_BOOT
from harness.report.html import render_html
from harness.report.markdown import render_markdown


def build_report(results_dir: str | Path, fmt: str = "html", baseline: str | Path | None = None,
                 out: str | Path | None = None, papers_dir: str | Path | None = None,
                 n_boot: int = N_BOOT) -> Path:
    """Write the report and return its path.

    ``fmt="html"``: one self-contained file (default ``RESULTS_DIR/report.html``). ``fmt="md"``:
    Markdown (default ``RESULTS_DIR/report.md``) with its PNG figures in ``<name>_files/`` beside it.
    ``baseline``: another results folder to compare against (adds a regression section).
    ``papers_dir``: paper reference YAMLs (default ``baselines/papers``; skipped when absent).
    """
    return build_report_with_analysis(results_dir, fmt, baseline, out, papers_dir, n_boot)[0]


def check_out(path: Path, fmt: str, fig_dir: Path) -> None:
    """Refuse an output path that cannot be written before the analysis, so nothing is left half-written."""
    from harness.store.store import check_writable_dir

    if path.is_dir():
        raise HarnessError(f"{path} is a folder; --out takes a file path, e.g. {path / f'report.{fmt}'}")
    if fmt == "md" and fig_dir.exists() and not fig_dir.is_dir():
        raise HarnessError(f"{fig_dir} (where the report's figures go) is a file; choose another --out")
    check_writable_dir(path.parent)


def build_report_with_analysis(results_dir, fmt="html", baseline=None, out=None, papers_dir=None,
                               n_boot: int = N_BOOT) -> tuple[Path, Analysis]:
    """:func:`build_report` that also returns the :class:`Analysis` (verdicts etc.) it rendered."""
    if fmt not in ("html", "md"):
        raise HarnessError(f"unknown report format {fmt!r} (use html or md)")
    path = Path(out) if out is not None else Path(results_dir) / f"report.{fmt}"
    fig_dir = path.parent / f"{path.stem}_files"
    check_out(path, fmt, fig_dir)
    an = analyze(results_dir, baseline=baseline, papers_dir=papers_dir, n_boot=n_boot)
    blocks = report_blocks(an)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        path.write_text(render_html(blocks), encoding="utf-8")
    else:
        path.write_text(render_markdown(blocks, fig_dir, fig_dir.name), encoding="utf-8")
    return path, an



__all__ = ["build_report", "build_report_with_analysis"]
