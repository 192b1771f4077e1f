"""The evaluation report as HTML and Markdown."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from mlstages.components.evaluate.evaluate import EvaluationResult
from mlstages.components.evaluate.metrics import CLASSIFICATION, PRIMARY_METRIC


def _metric_cell(value: Any) -> Any:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _metric_names(result: EvaluationResult) -> list[str]:
    return list(result.metrics)


def _overall_columns(result: EvaluationResult) -> list[str]:
    return ["metric", "value", *(f"baseline: {name}" for name in result.baselines)]


def _overall_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    rows = []
    for name, value in result.metrics.items():
        row = {"metric": name, "value": _metric_cell(value)}
        row.update({f"baseline: {b}": _metric_cell(m.get(name)) for b, m in result.baselines.items()})
        rows.append(row)
    return rows


def _slice_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    rows = []
    for s in result.slices:
        row: dict[str, Any] = {"column": s.column, "value": s.value, "rows": s.rows}
        row.update({name: _metric_cell(s.metrics.get(name)) for name in _metric_names(result)})
        rows.append(row)
    return rows


def _confusion_rows(result: EvaluationResult) -> tuple[list[dict[str, Any]], list[str]]:
    assert result.confusion_matrix is not None
    labels = [str(label) for label in result.confusion_matrix["labels"]]
    corner = "actual / predicted"
    rows = []
    for label, counts in zip(labels, result.confusion_matrix["matrix"], strict=True):
        row: dict[str, Any] = {corner: label}
        row.update(dict(zip(labels, counts, strict=True)))
        rows.append(row)
    return rows, [corner, *labels]


def _headline(result: EvaluationResult) -> str:
    primary = PRIMARY_METRIC[result.task]
    value = result.metrics.get(primary)
    shown = "n/a" if value is None else f"{value:.4g}"
    text = f"{result.task.capitalize()} of {result.label_column} on {result.rows:,} test rows: {primary} = {shown}."
    if result.baselines:
        text += " Beside it, the baselines train fitted on the same training rows (the quality floor)."
    return text


def roc_svg(curve: Mapping[str, Any], size: int = 320) -> str:
    """The ROC curve as a self-contained inline SVG line chart."""
    margin = 40
    plot = size - 2 * margin

    def x(v: float) -> float:
        return margin + v * plot

    def y(v: float) -> float:
        return size - margin - v * plot

    points = " ".join(f"{x(f):.1f},{y(t):.1f}" for f, t in zip(curve["fpr"], curve["tpr"], strict=True))
    ticks = []
    for v in (0.0, 0.5, 1.0):
        ticks.append(
            f'<text x="{x(v):.1f}" y="{size - margin + 16}" font-size="11" text-anchor="middle">{v:g}</text>'
            f'<text x="{margin - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>'
        )
    title = "ROC curve, " + (
        f"positive class {curve.get('positive_class')}"
        if curve.get("kind") == "binary"
        else str(curve.get("kind"))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img" aria-label="{html.escape(title)}">'
        f"<title>{html.escape(title)}</title>"
        f'<rect x="{margin}" y="{margin}" width="{plot}" height="{plot}" fill="none" stroke="#dadce0"/>'
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#9aa0a6" stroke-dasharray="4 4"/>'
        f'<polyline points="{points}" fill="none" stroke="#1a73e8" stroke-width="2"/>'
        f"{''.join(ticks)}"
        f'<text x="{size / 2}" y="{size - 6}" font-size="12" text-anchor="middle">false positive rate</text>'
        f'<text x="12" y="{size / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {size / 2})">true positive rate</text>'
        "</svg>"
    )


def render_html(result: EvaluationResult) -> str:
    """The evaluation report: overall metrics, per-slice metrics, confusion matrix and ROC curve."""
    from mlstages.components.common.reports import html_list, html_page, html_paragraph, html_table

    sections = [
        (
            "Overall",
            html_paragraph(_headline(result)) + html_table(_overall_rows(result), _overall_columns(result)),
        )
    ]
    if result.slices:
        notes = html_list(f"{column}: {note}" for column, note in result.slice_notes.items())
        columns = ["column", "value", "rows", *_metric_names(result)]
        sections.append(("Slices", notes + html_table(_slice_rows(result), columns)))
    if result.confusion_matrix is not None:
        rows, columns = _confusion_rows(result)
        sections.append(
            (
                "Confusion matrix",
                html_paragraph("Rows: actual class; columns: predicted class.") + html_table(rows, columns),
            )
        )
    if result.roc_curve is not None:
        sections.append(("ROC curve", roc_svg(result.roc_curve)))
    elif result.task == CLASSIFICATION:
        sections.append(("ROC curve", html_paragraph("n/a: the test data holds a single class.")))
    return html_page("Evaluation", sections)


def render_markdown(result: EvaluationResult) -> str:
    """The run summary: overall metrics, slices and confusion matrix as Markdown tables."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    lines = [
        "# Evaluate",
        "",
        markdown_text(_headline(result)),
        "",
        markdown_table(_overall_rows(result), _overall_columns(result)),
        "",
    ]
    if result.slices:
        lines += ["## Slices", ""]
        lines += [
            f"- {markdown_text(column)}: {markdown_text(note)}" for column, note in result.slice_notes.items()
        ]
        columns = ["column", "value", "rows", *_metric_names(result)]
        lines += ["", markdown_table(_slice_rows(result), columns), ""]
    if result.confusion_matrix is not None:
        rows, columns = _confusion_rows(result)
        lines += ["## Confusion matrix", "", "Rows: actual class; columns: predicted class.", ""]
        lines += [markdown_table(rows, columns), ""]
    return "\n".join(lines)
