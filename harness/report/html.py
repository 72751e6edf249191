"""The HTML renderer: one self-contained file (inline CSS, figures as base64 PNG, no external asset)."""

from __future__ import annotations

import base64
import html

import pandas as pd
from markdown_it import MarkdownIt

from harness.report.blocks import Block
from harness.report.format import fmt_num, slug
from harness.report.verdict import COST_ONLY, INCONCLUSIVE, NEEDED, NOT_NEEDED

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;margin:24px auto;max-width:1280px;
color:#1d1d1f;line-height:1.45;padding:0 16px}
h1{font-size:26px;border-bottom:2px solid #333;padding-bottom:6px}
h2{font-size:21px;margin-top:36px;border-bottom:1px solid #ccc;padding-bottom:4px}
h3{font-size:16px;margin-top:22px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 14px 0;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d0d0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f4;position:sticky;top:0}
tr:nth-child(even) td{background:#fafafa}
td.reasons{min-width:420px;max-width:680px;font-size:12.5px}
img{max-width:100%;height:auto;display:block;margin:10px 0 18px 0}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-weight:600;font-size:13px;white-space:nowrap}
.needed{background:#d9f2e0;color:#0d5a26}.notneeded{background:#e3ecfb;color:#123f84}
.inconclusive{background:#fdf1d6;color:#7a5200}.costonly{background:#ececec;color:#444}
.reproduced{background:#d9f2e0;color:#0d5a26}.contradicted{background:#fbe0e0;color:#8a1414}.undecided{background:#fdf1d6;color:#7a5200}
.rule{background:#f7f7f9;border:1px solid #e2e2e6;border-radius:6px;padding:4px 16px}
code{background:#eef;padding:0 3px;border-radius:3px;font-size:90%}
ul{margin-top:4px} li{margin:2px 0}
"""


def badge(verdict: str) -> str:
    cls = {NEEDED: "needed", NOT_NEEDED: "notneeded", INCONCLUSIVE: "inconclusive",
           COST_ONLY: "costonly"}.get(verdict, "inconclusive")
    return f'<span class="badge {cls}">{html.escape(verdict)}</span>'


# CommonMark with GFM tables (the verdict rule, VERDICT_RULE.md, uses pipe tables); raw HTML in the text is escaped.
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def md_to_html(md: str) -> str:
    """Markdown (CommonMark + tables) to HTML, for the rule text the report embeds."""
    return _MD.render(md)


def html_table(df: pd.DataFrame, verdicts: bool = False, claims: bool = False) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            if verdicts and c == "verdict":
                cells.append(f"<td>{badge(str(v))}</td>")
            elif claims and c == "outcome":
                cells.append(f'<td><span class="badge {html.escape(str(v))}">{html.escape(str(v))}</span></td>')
            elif (verdicts or claims) and c == "task":
                cells.append(f'<td><a href="#task-{html.escape(slug(str(v)))}">{html.escape(str(v))}</a></td>')
            elif verdicts and c == "reasons":
                lines = "<br>".join(html.escape(x) for x in str(v).split("\n"))
                cells.append(f'<td class="reasons">{lines}</td>')
            else:
                cells.append(f"<td>{html.escape(fmt_num(v) if not isinstance(v, str) else v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(blocks: list[Block]) -> str:
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            ident = f' id="{html.escape(slug(b.name))}"' if b.name else ""
            body.append(f"<{b.kind}{ident}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "verdict":
            rec = f" — recommended: <b>{html.escape(b.items[0])}</b>" if b.items and b.items[0] else ""
            body.append(f"<p>Verdict: {badge(b.text)}{rec}</p>")
        elif b.kind == "ul":
            body.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            body.append(html_table(b.table, verdicts=b.name == "verdicts", claims=b.name == "claims"))
        elif b.kind == "fig":
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">')
        elif b.kind == "md":
            body.append(f'<div class="rule">{md_to_html(b.text)}</div>')
    title = next((b.text for b in blocks if b.kind == "h1"), "report")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")

