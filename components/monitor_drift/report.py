"""The drift report as HTML and Markdown."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from mlstages.components.monitor_drift.config import METHOD_NAMES
from mlstages.components.monitor_drift.results import (
    DriftResult,
    FeatureDrift,
    PerformanceCheck,
    _names,
    _percent,
)


def _decision(result: DriftResult) -> str:
    verdict = "Retrain" if result.retrain else "No retraining needed"
    drift = "dataset drift" if result.dataset_drift else "no dataset drift"
    return (
        f"{verdict}. {result.drifted_features} of {result.features_checked} features drifted "
        f"(share {result.drift_share:.2f}; the threshold is {result.drift_share_threshold:g}): {drift}. "
        f"{result.rows:,} current rows against {result.reference_rows:,} training rows; "
        f"retraining on {result.retrain_on.replace('_', ' ')}."
    )


def _feature_row(f: FeatureDrift) -> dict[str, Any]:
    missing = f"{_percent(f.reference_missing_share)} → {_percent(f.current_missing_share)}"
    details = list(f.reasons)
    if f.new_categories:
        details.append(f"new: {_names(f.new_categories)}")
    details += f.notes
    return {
        "feature": f.column,
        "type": f.type,
        "test": METHOD_NAMES.get(f.method or "", f.status),
        "score": "n/a" if f.score is None else f.score,
        "threshold": "" if f.threshold is None else f.threshold,
        "drift": "yes" if f.drifted else "no",
        # No sample sizes where no test ran (a missing column, a type change).
        "reference n": f.reference_n if f.method else "",
        "current n": f.current_n if f.method else "",
        "missing": missing,
        "details": "; ".join(details),
    }


FEATURE_COLUMNS = [
    "feature",
    "type",
    "test",
    "score",
    "threshold",
    "drift",
    "reference n",
    "current n",
    "missing",
    "details",
]


def distribution_svg(plot: Mapping[str, Any], width: int = 240, height: int = 90) -> str:
    """Reference (grey) and current (blue) shares per bin or category as a small inline SVG."""
    labels = plot["labels"]
    reference, current = plot["reference"], plot["current"]
    top = max([*reference, *current, 1e-12])
    slots = max(len(labels), 1)
    slot = (width - 4) / slots
    bar = max(slot / 2 - 1, 1.0)
    base = height - 14
    scale = (base - 4) / top
    parts = []
    for k, label in enumerate(labels):
        x = 2 + k * slot
        for offset, share, colour, name in (
            (0.0, reference[k], "#9aa0a6", "training"),
            (bar, current[k], "#1a73e8", "current"),
        ):
            h = share * scale
            tip = html.escape(f"{label}: {name} {100 * share:.1f}%")
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{tip}</title></rect>"
            )
    legend = (
        f'<text x="2" y="{height - 2}" font-size="10" fill="#5f6368">grey: training, blue: current; '
        "hover for values</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="training and current distribution">'
        f'<line x1="0" y1="{base}" x2="{width}" y2="{base}" stroke="#dadce0"/>{"".join(parts)}{legend}</svg>'
    )


def _feature_table_html(features: Sequence[FeatureDrift]) -> str:
    from mlstages.components.common.reports import Cell, html_table

    rows = []
    for f in features:
        row = _feature_row(f)
        row["drift"] = Cell(row["drift"], css_class="bad" if f.drifted else "ok")
        row["distribution"] = Cell(safe_html=distribution_svg(f.plot) if f.plot else "")
        rows.append(row)
    return html_table(rows, [*FEATURE_COLUMNS, "distribution"])


def _performance_rows(performance: PerformanceCheck) -> list[dict[str, Any]]:
    rows = []
    compared = {c["metric"]: c for c in performance.comparisons}
    for name, value in performance.metrics.items():
        c = compared.get(name)
        rows.append(
            {
                "metric": name,
                "training (test split)": _na(performance.reference_metrics.get(name)),
                "current": _na(value),
                "relative drop": "" if c is None else f"{100 * c['drop']:.1f}%",
                "allowed": "" if c is None else f"{100 * c['max_drop']:g}%",
                "decay": "" if c is None else ("yes" if c["decayed"] else "no"),
            }
        )
    return rows


PERFORMANCE_COLUMNS = ["metric", "training (test split)", "current", "relative drop", "allowed", "decay"]


def _na(value: Any) -> Any:
    return "n/a" if value is None else value


METHOD_NOTES = [
    "Kolmogorov-Smirnov, chi-squared (test of homogeneity) and Z-test (two proportions): drift when the "
    "p-value is below the threshold (0.05 by default); used when either sample has at most 1,000 values.",
    "Wasserstein distance normed by the training standard deviation, Jensen-Shannon distance (natural "
    "log) and PSI: drift when the distance reaches the threshold (0.1, 0.1 and 0.2 by default).",
    "KS and Wasserstein use the reference's stratified sample (at most 5,000 values); the categorical "
    "and binned tests use counts of all training values. 'reference n' is what each test used.",
    "Missing values are not part of any distribution; a missing share that rose too far is drift by itself.",
]


def render_html(result: DriftResult) -> str:
    """The drift report: decision, reasons, one row per feature with a small chart, label and performance."""
    from mlstages.components.common.reports import html_list, html_page, html_paragraph, html_table

    decision = html_paragraph(_decision(result), "bad" if result.retrain else "ok")
    if result.reasons:
        decision += html_list(result.reasons)
    if result.warnings:
        decision += html_paragraph("Warnings:", "warn") + html_list(result.warnings)
    sections = [("Decision", decision), ("Features", _feature_table_html(result.features))]
    if result.new_columns:
        sections.append(
            (
                "New columns",
                html_paragraph("Columns of the window that the reference does not know (not tested):")
                + html_list(result.new_columns),
            )
        )
    if result.label is not None:
        sections.append(("Label", _feature_table_html([result.label])))
    if result.performance is not None:
        body = html_paragraph(
            f"Performance {result.performance.message} on {result.performance.rows:,} labelled rows."
        )
        if result.performance.computed:
            body += html_table(_performance_rows(result.performance), PERFORMANCE_COLUMNS)
        sections.append(("Performance", body))
    sections.append(("How to read this", html_list(METHOD_NOTES)))
    return html_page("Drift monitoring", sections)


def render_markdown(result: DriftResult) -> str:
    """The run summary: decision, reasons, the feature table, label and performance."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    lines = ["# Monitor drift", "", markdown_text(_decision(result)), ""]
    if result.reasons:
        lines += ["Reasons:", ""] + [f"- {markdown_text(r)}" for r in result.reasons] + [""]
    if result.warnings:
        lines += ["Warnings:", ""] + [f"- {markdown_text(w)}" for w in result.warnings] + [""]
    lines += [
        "## Features",
        "",
        markdown_table([_feature_row(f) for f in result.features], FEATURE_COLUMNS),
        "",
    ]
    if result.new_columns:
        lines += ["## New columns", "", markdown_text(", ".join(result.new_columns)), ""]
    if result.label is not None:
        lines += ["## Label", "", markdown_table([_feature_row(result.label)], FEATURE_COLUMNS), ""]
    if result.performance is not None:
        lines += [
            "## Performance",
            "",
            markdown_text(
                f"Performance {result.performance.message} on {result.performance.rows:,} labelled rows."
            ),
            "",
        ]
        if result.performance.computed:
            lines += [markdown_table(_performance_rows(result.performance), PERFORMANCE_COLUMNS), ""]
    return "\n".join(lines)
