"""The Markdown renderer: the same blocks as the HTML, figures written as PNG files beside the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.blocks import Block
from harness.report.format import fmt_num


def md_cell(v) -> str:
    s = v if isinstance(v, str) else fmt_num(v)
    return s.replace("|", "\\|").replace("\n", "<br>")


def md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(md_cell(str(c)) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(md_cell(r[c]) for c in df.columns) + " |" for _, r in df.iterrows()]
    return "\n".join([head, sep, *rows])


def render_markdown(blocks: list[Block], fig_dir: Path, rel: str) -> str:
    fig_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.text}")
        elif b.kind == "h2":
            out.append(f"## {b.text}")
        elif b.kind == "h3":
            out.append(f"### {b.text}")
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "verdict":
            rec = f" — recommended: **{b.items[0]}**" if b.items and b.items[0] else ""
            out.append(f"Verdict: **{b.text}**{rec}")
        elif b.kind == "ul":
            out.append("\n".join(f"- {i}" for i in b.items))
        elif b.kind == "table":
            out.append(md_table(b.table))
        elif b.kind == "fig":
            (fig_dir / b.name).write_bytes(b.png)
            out.append(f"![{b.text}]({rel}/{b.name})")
        elif b.kind == "md":
            out.append(b.text.strip())
    return "\n\n".join(out) + "\n"

