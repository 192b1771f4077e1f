"""The data validation report as HTML and Markdown."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from mlstages.components.common.reports import (
    Cell,
    format_value,
    html_page,
    html_paragraph,
    html_table,
    markdown_table,
    markdown_text,
)
from mlstages.components.common.sketches import EXACT_VALUES
from mlstages.components.validate_data.anomalies import Anomaly
from mlstages.components.validate_data.config import ERROR
from mlstages.components.validate_data.validate_data import ValidationResult


def _column_rows(statistics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, stats in statistics["columns"].items():
        top = stats.get("top_values") or []
        rows.append(
            {
                "column": name,
                "type": stats["logical_type"],
                "dtype": stats["dtype"],
                "missing": stats["missing"],
                "missing %": None if stats["missing_share"] is None else 100 * stats["missing_share"],
                "distinct": stats["distinct"],
                "min": stats.get("min"),
                "max": stats.get("max"),
                "mean": stats.get("mean"),
                "std": stats.get("std"),
                "outliers": stats.get("outliers"),
                "top values": ", ".join(f"{t['value']} ({t['count']})" for t in top[:5]),
            }
        )
    return rows


def method_notes(result: ValidationResult) -> list[str]:
    """How the figures were made, when not every figure is exact or a check read a sample."""
    notes = []
    statistics = result.statistics
    estimated = [
        f"{name} ({', '.join(stats['estimates'])})"
        for name, stats in statistics["columns"].items()
        if stats.get("estimates")
    ]
    if "estimates" in statistics["dataset"]:
        estimated.insert(0, "the dataset (duplicate_rows)")
    if estimated:
        notes.append(
            "Estimated from sketches, each within the error bound its statistics entry states under "
            f"'estimates': {', '.join(estimated)}. Every count, missing value, minimum and maximum is exact."
        )
        if result.exact_values is not None and result.exact_values < EXACT_VALUES:
            notes.append(
                f"A column's values are kept exactly up to {result.exact_values:,} of them, what a "
                "quarter of the task's working memory (its allowance less what the process itself "
                f"holds) holds for {statistics['dataset']['columns']:,} "
                f"columns (at most {EXACT_VALUES:,}): a larger allowance ($MLSTAGES_MEMORY_MB, or the "
                "pod's memory limit) keeps more of the figures exact."
            )
    if result.value_check_rows is not None:
        notes.append(
            f"The checks of each column's guessed type (numbers or dates as text, identifiers, leading "
            f"zeros, 'NA' as a category, label spellings) read a seeded sample of "
            f"{result.value_check_rows:,} of the {statistics['dataset']['rows']:,} rows; identifiers "
            "and the label's classes are judged on the whole column."
        )
    return notes


_COLUMN_TABLE = (
    "column",
    "type",
    "dtype",
    "missing",
    "missing %",
    "distinct",
    "min",
    "max",
    "mean",
    "std",
    "outliers",
    "top values",
)


def render_html(result: ValidationResult, title: str = "Data validation") -> str:
    """A self-contained HTML report: overview, anomalies, column statistics, numeric histograms."""
    dataset = result.statistics["dataset"]
    overview = html_table(
        [
            {"item": "rows", "value": dataset["rows"]},
            {"item": "columns", "value": dataset["columns"]},
            {"item": "duplicate rows", "value": dataset["duplicate_rows"]},
            {"item": "schema", "value": result.schema_source},
            {"item": "policy", "value": result.policy},
        ],
        ["item", "value"],
    )
    css = "ok" if result.passed and not result.warnings else ("warn" if result.passed else "bad")
    decision = html_paragraph(f"Decision: {result.decision}", css)
    anomalies = (
        _anomaly_table(result.anomalies) if result.anomalies else html_paragraph("No anomalies.", "ok")
    )
    figures = [
        _histogram_figure(name, stats["histogram"])
        for name, stats in result.statistics["columns"].items()
        if stats.get("histogram")
    ]
    sections = [
        ("Overview", decision + overview),
        ("Anomalies", anomalies),
        ("Column statistics", html_table(_column_rows(result.statistics), _COLUMN_TABLE)),
    ]
    if figures:
        sections.append(("Numeric distributions", '<div class="figures">' + "".join(figures) + "</div>"))
    sections.append(("Outlier rule", html_paragraph(result.statistics["outlier_rule"])))
    notes = method_notes(result)
    if notes:
        sections.append(("How the figures were made", "".join(html_paragraph(n) for n in notes)))
    return html_page(title, sections)


def _anomaly_table(anomalies: Iterable[Anomaly]) -> str:
    rows = [
        {
            "severity": Cell(anomaly.severity, css_class="bad" if anomaly.severity == ERROR else "warn"),
            "kind": Cell(anomaly.kind, css_class=""),
            "column": Cell(anomaly.column, css_class=""),
            "message": Cell(anomaly.message, css_class=""),
        }
        for anomaly in anomalies
    ]
    return html_table(rows, ("severity", "kind", "column", "message"))


def _histogram_figure(name: str, histogram: dict[str, Any], width: int = 240, height: int = 60) -> str:
    return (
        '<figure style="display:inline-block;margin:4px 12px 4px 0">'
        f"<figcaption>{html.escape(name)}</figcaption>"
        f"{histogram_svg(histogram['edges'], histogram['counts'], label=name, width=width, height=height)}"
        "</figure>"
    )


def histogram_svg(
    edges: list[float], counts: list[int], label: str = "", width: int = 240, height: int = 60
) -> str:
    """An inline SVG bar chart of a histogram, with the first and last edges as axis labels."""
    tallest = max(counts) if counts else 0
    bar_width = width / max(len(counts), 1)
    bars = []
    for index, count in enumerate(counts):
        bar_height = 0.0 if not tallest else height * count / tallest
        tip = f"[{format_value(edges[index])}, {format_value(edges[index + 1])}]: {count}"
        bars.append(
            f'<rect x="{index * bar_width:.2f}" y="{height - bar_height:.2f}" '
            f'width="{max(bar_width - 1, 0.5):.2f}" height="{bar_height:.2f}" fill="#1a73e8">'
            f"<title>{html.escape(tip)}</title></rect>"
        )
    axis_y = height + 12
    low, high = html.escape(format_value(edges[0])), html.escape(format_value(edges[-1]))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16}" '
        f'viewBox="0 0 {width} {height + 16}" role="img" '
        f'aria-label="{html.escape("histogram of " + label, quote=True)}">'
        f"{''.join(bars)}"
        f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#5f6368" stroke-width="1"/>'
        f'<text x="0" y="{axis_y}" font-size="10" fill="#5f6368">{low}</text>'
        f'<text x="{width}" y="{axis_y}" font-size="10" fill="#5f6368" text-anchor="end">{high}</text>'
        "</svg>"
    )


def render_markdown(result: ValidationResult) -> str:
    """A short Markdown summary for the Kubeflow UI: decision, anomalies, per-column table."""
    dataset = result.statistics["dataset"]
    lines = [
        "# Data validation",
        "",
        f"**Decision: {markdown_text(result.decision)}**",
        "",
        f"{dataset['rows']:,} rows, {dataset['columns']} columns, {dataset['duplicate_rows']} duplicate "
        f"row(s); schema {result.schema_source}.",
        "",
        "## Anomalies",
        "",
    ]
    if result.anomalies:
        lines += [
            f"- **{a.severity}** `{a.kind}`: {markdown_text(a.message).replace(chr(10), ' ')}"
            for a in result.anomalies
        ]
    else:
        lines.append("None.")
    columns = ("column", "type", "missing", "missing %", "distinct", "min", "max", "mean")
    lines += ["", "## Columns", "", markdown_table(_column_rows(result.statistics), columns), ""]
    notes = method_notes(result)
    if notes:
        lines += ["## How the figures were made", "", *(markdown_text(n) for n in notes), ""]
    return "\n".join(lines)
