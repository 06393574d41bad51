"""One self-contained HTML file per snapshot: inline CSS, plots as base64 PNG, no external links.

``build_report(inputs)`` renders every section of ``custseg.report.sections.SECTIONS`` in
order; the file opens in any browser, can be mailed or attached to a ticket, and needs
nothing else beside it.
"""

from __future__ import annotations

import base64
import html
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from custseg import __version__
from custseg.report.sections import SECTIONS, Rendered, ReportInputs, Table, render_section

log = logging.getLogger(__name__)

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#2f6690;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px 0;font-size:24px}
header p{margin:0;opacity:.85}
nav{padding:10px 32px;background:#eef2f6;font-size:14px}
nav a{margin-right:14px;color:#2f6690;text-decoration:none}
main{padding:8px 32px 40px 32px;max-width:1200px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:14px 20px;margin:18px 0}
section h2{margin:0 0 6px 0;font-size:19px}
p.intro{color:#555;margin:0 0 10px 0}
p.na{color:#8a4b08;background:#fff5e6;border-left:4px solid #edae49;padding:8px 12px}
p.failed{color:#8b1a1a;background:#fdecea;border-left:4px solid #d1495b;padding:8px 12px}
p.note{color:#555;font-style:italic;margin:4px 0}
figure{margin:10px 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f3f5f7}
caption{text-align:left;font-weight:600;padding:4px 0}
footer{color:#777;font-size:12px;padding:0 32px 24px 32px}
"""


@dataclass(frozen=True)
class ReportResult:
    html: str
    sections: list[Rendered]

    @property
    def unavailable(self) -> list[str]:
        return [s.key for s in self.sections if s.status != "ok"]


def build_report(inputs: ReportInputs, title: str = "Customer segmentation report") -> ReportResult:
    """Render every section for ``inputs.snapshot_date``; sections that cannot be drawn say why."""
    rendered = [render_section(spec, inputs) for spec in SECTIONS]
    return ReportResult(render_html(rendered, inputs, title), rendered)


def render_html(sections: list[Rendered], inputs: ReportInputs, title: str) -> str:
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#sec-{s.key}">{_e(s.title)}</a>' for s in sections)
    body = "\n".join(_section_html(s) for s in sections)
    ok = sum(s.status == "ok" for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} {inputs.snapshot_date}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{_e(title)}</h1><p>Snapshot {inputs.snapshot_date} &middot; generated {generated} &middot; {ok} of {len(sections)} sections available</p></header>
<nav>{nav}</nav>
<main>
{body}
</main>
<footer>custseg {__version__}. Figures are aggregates computed in Spark from the Delta tables of the snapshot; no customer-level data is embedded.</footer>
</body>
</html>
"""


def _section_html(s: Rendered) -> str:
    parts = [
        f'<section id="sec-{s.key}" data-section="{s.key}" data-status="{s.status}">',
        f"<h2>{_e(s.title)}</h2>",
    ]
    if s.intro:
        parts.append(f'<p class="intro">{_e(s.intro)}</p>')
    if s.status != "ok":
        css = "na" if s.status == "unavailable" else "failed"
        parts.append(f'<p class="{css}">{_e(s.message)}</p>')
    for alt, png in s.figures:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></figure>')
    for note in s.notes:
        parts.append(f'<p class="note">{_e(note)}</p>')
    for table in s.tables:
        parts.append(table_html(table))
    parts.append("</section>")
    return "\n".join(parts)


def table_html(table: Table, max_rows: int = 200) -> str:
    """A pandas frame as an HTML table, numbers formatted per column (int, pct, num, money)."""
    frame = table.frame.head(max_rows)
    head = "".join(f"<th>{_e(str(c))}</th>" for c in frame.columns)
    rows = []
    for rec in frame.itertuples(index=False, name=None):
        cells = []
        for col, value in zip(frame.columns, rec, strict=True):
            kind = table.formats.get(col)
            text = format_value(value, kind)
            numeric = kind in ("int", "pct", "num", "money")
            cells.append(f'<td class="n">{_e(text)}</td>' if numeric else f"<td>{_e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="note">{len(table.frame) - max_rows} more rows not shown</p>' if len(table.frame) > max_rows else ""
    )
    return f"<table><caption>{_e(table.caption)}</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def format_value(value, kind: str | None) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):  # arrays and other non-scalars
        pass
    try:
        if kind == "int":
            return f"{int(round(float(value))):,}"
        if kind == "pct":
            return f"{float(value):.1%}"
        if kind == "num":
            v = float(value)
            return (
                f"{v:,.0f}"
                if abs(v) >= 1000
                else f"{v:.3g}"
                if abs(v) < 0.01 and v != 0
                else f"{v:,.3f}".rstrip("0").rstrip(".")
            )
        if kind == "money":
            return f"{float(value):,.2f}"
    except (TypeError, ValueError):
        pass
    return str(value)


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
