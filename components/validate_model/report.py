"""The model validation report as HTML and Markdown."""

from __future__ import annotations

from typing import Any

from mlstages.components.validate_model.gate import Blessing
from mlstages.components.validate_model.thresholds import FAILED, NOT_GATED, PASSED, ROBUSTNESS, THRESHOLD


def _model_rows(blessing: Blessing) -> list[dict[str, Any]]:
    rows = [{"model": "candidate", **{k: blessing.candidate.get(k) for k in ("version", "uri", "sha256")}}]
    if blessing.baseline is None:
        rows.append({"model": "baseline", "version": "none (first run)", "uri": "", "sha256": ""})
    else:
        rows.append(
            {
                "model": "baseline (champion)",
                **{k: blessing.baseline.get(k) for k in ("version", "uri", "sha256")},
            }
        )
    return rows


def _threshold_rows(blessing: Blessing) -> list[dict[str, Any]]:
    return [
        {
            "scope": c.scope,
            "rows": c.rows,
            "metric": c.metric,
            "rule": c.rule,
            "threshold": c.threshold,
            "value": "n/a" if c.value is None else c.value,
            "baseline": c.baseline,
            "status": c.status,
        }
        for c in blessing.checks
        if c.kind == THRESHOLD
    ]


def _robustness_rows(blessing: Blessing) -> list[dict[str, Any]]:
    return [
        {
            "simulation": c.rule,
            "column": c.column or "(all)",
            "simulated rows": c.rows,
            "status": c.status,
            "detail": c.message,
        }
        for c in blessing.checks
        if c.kind == ROBUSTNESS
    ]


_THRESHOLD_COLUMNS = ["scope", "rows", "metric", "rule", "threshold", "value", "baseline", "status"]


_ROBUSTNESS_COLUMNS = ["simulation", "column", "simulated rows", "status", "detail"]


def _headline(blessing: Blessing) -> str:
    counts = blessing.counts
    return (
        f"{blessing.decision.upper()}: {counts[PASSED]} check(s) passed, {counts[FAILED]} failed, "
        f"{counts[NOT_GATED]} reported but not gated."
    )


def render_html(blessing: Blessing) -> str:
    """The gate's report: decision, reasons, models compared, every threshold and robustness check."""
    from mlstages.components.common.reports import html_list, html_page, html_paragraph, html_table

    sections = [
        (
            "Decision",
            html_paragraph(_headline(blessing), "ok" if blessing.blessed else "bad")
            + html_list(blessing.reasons),
        ),
        ("Models", html_table(_model_rows(blessing), ["model", "version", "uri", "sha256"])),
    ]
    thresholds = _threshold_rows(blessing)
    sections.append(
        (
            "Thresholds",
            html_table(thresholds, _THRESHOLD_COLUMNS)
            if thresholds
            else html_paragraph("No threshold was checked."),
        )
    )
    sections.append(("Robustness", html_table(_robustness_rows(blessing), _ROBUSTNESS_COLUMNS)))
    if blessing.notes:
        sections.append(("Notes", html_list(blessing.notes)))
    if blessing.infra_validation is not None:
        infra = blessing.infra_validation
        rows = [
            {"check": c["name"], "result": "pass" if c["passed"] else "FAIL", "detail": c["detail"]}
            for c in infra.get("checks", [])
        ]
        sections.append(
            (
                "Infra validation",
                html_paragraph(
                    f"The candidate was served by the model server on 127.0.0.1 and queried with "
                    f"{infra.get('rows')} test row(s): {'passed' if infra.get('passed') else 'FAILED'}."
                )
                + html_table(rows, ["check", "result", "detail"]),
            )
        )
    return html_page("Model validation", sections)


def render_markdown(blessing: Blessing) -> str:
    """The run summary: decision, reasons, models, failed checks and notes."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    lines = ["# Validate model", "", f"**{markdown_text(_headline(blessing))}**", ""]
    lines += [f"- {markdown_text(r)}" for r in blessing.reasons]
    lines += ["", markdown_table(_model_rows(blessing), ["model", "version", "uri", "sha256"]), ""]
    thresholds = _threshold_rows(blessing)
    if thresholds:
        lines += ["## Thresholds", "", markdown_table(thresholds, _THRESHOLD_COLUMNS), ""]
    lines += ["## Robustness", "", markdown_table(_robustness_rows(blessing), _ROBUSTNESS_COLUMNS), ""]
    if blessing.notes:
        lines += ["## Notes", ""] + [f"- {markdown_text(n)}" for n in blessing.notes] + [""]
    if blessing.infra_validation is not None:
        # The serving code's own summary, which leaves the heading to its caller.
        lines += ["## Infra validation", "", str(blessing.infra_validation.get("summary", "")), ""]
    return "\n".join(lines)
