"""Small, self-contained HTML and Markdown reports that the Kubeflow UI renders.

No external scripts or styles (the UI sandboxes HTML and shows a blank page otherwise), and every
value that came from a user or their data is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#202124}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:24px}"
    "table{border-collapse:collapse;margin:8px 0;font-size:13px}"
    "th,td{border:1px solid #dadce0;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f1f3f4}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".bad{color:#c5221f;font-weight:600}.warn{color:#b06000;font-weight:600}.ok{color:#137333}"
)


def format_value(value: Any) -> str:
    """A cell's text: floats to 4 significant digits, None/NaN as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}"
    return str(value)


@dataclass(frozen=True)
class Cell:
    """A table cell that needs more than its value: a CSS class (a verdict's colour) or markup that
    is already safe (an inline SVG figure), which ``html_table`` then writes unescaped."""

    value: Any = None
    css_class: str | None = None
    safe_html: str | None = None


def html_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """An HTML table of ``rows`` with the given ``columns``, every cell escaped (but a ``Cell``'s
    ``safe_html``)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            cell = value if isinstance(value, Cell) else Cell(value)
            css_class = cell.css_class
            if (
                css_class is None
                and isinstance(cell.value, (int, float))
                and not isinstance(cell.value, bool)
            ):
                css_class = "num"
            css = f' class="{css_class}"' if css_class else ""
            text = cell.safe_html if cell.safe_html is not None else html.escape(format_value(cell.value))
            cells.append(f"<td{css}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(title: str, sections: Iterable[tuple[str, str]]) -> str:
    """A whole HTML document. ``sections`` are (heading, body HTML) pairs; bodies must already be
    safe (built with ``html_table``, ``html_paragraph`` or ``html.escape``)."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def html_paragraph(text: str, css_class: str | None = None) -> str:
    cls = f' class="{css_class}"' if css_class else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def html_list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def _markdown_cell(value: Any) -> str:
    text = format_value(value)
    # A pipe or a newline would break the table; HTML in a cell must show as text.
    return html.escape(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table, every cell escaped."""
    lines = [
        "| " + " | ".join(_markdown_cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def markdown_text(text: str) -> str:
    """Escape user-supplied text for inclusion in Markdown prose."""
    return html.escape(text)
