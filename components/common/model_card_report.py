"""The model card as a person reads it: an HTML page (train's ``model_card`` artifact, rendered in
the Kubeflow UI) and plain text (``mlstages registry show``), built from the same sections so
they never disagree.

Sections: the model (task, label, family, parameters, cross-validated score, baselines, file
sha256, library versions), its inputs, the data it was trained on (every source with its URI, rows
and content hash; the train split), the code (suite version, image references), each stage's
parameters, the parent champion, and, when evaluate has attached them, the test-set metrics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlstages.components.common.model_card import ModelCard

Section = tuple[str, list[dict[str, Any]], list[str]]


def _refit_rows(refit: Any) -> list[dict[str, Any]]:
    """Where the final fit ran, when train refit the winner on every row on the Dask engine."""
    if not isinstance(refit, Mapping):
        return []
    text = (
        f"on the Dask engine: all {refit.get('rows')} training rows, {refit.get('workers')} worker(s), "
        f"{refit.get('parts')} part(s); the task held {refit.get('held_rows')}"
    )
    return [{"field": "refit", "value": text}]


def card_sections(card: ModelCard, evaluation: Mapping[str, Any] | None = None) -> list[Section]:
    """(heading, table rows, table columns) per section of the card."""
    lineage = card.lineage or {}
    data = lineage.get("data") or {}
    code = lineage.get("code") or {}
    parent = lineage.get("parent")
    model_rows = [
        {"field": "task", "value": card.task},
        {"field": "label column", "value": card.label_column},
        {"field": "classes", "value": ", ".join(map(str, card.classes)) if card.classes else "-"},
        {"field": "model family", "value": card.family},
        {"field": "parameters", "value": json.dumps(dict(card.params), sort_keys=True)},
        {"field": f"cross-validated {card.scoring}", "value": card.cv_score},
        {"field": "search", "value": f"{card.search}, {card.cv_folds} folds, {card.search_rows} rows"},
        {"field": "train rows", "value": card.train_rows},
        *_refit_rows(card.extra.get("refit")),
        {"field": "model file sha256", "value": card.sha256},
        *[
            {
                "field": f"baseline {name} (CV)",
                "value": score.get("mean_cv_score") if isinstance(score, Mapping) else score,
            }
            for name, score in (card.baselines.get("cv_scores") or {}).items()
        ],
        *[{"field": library, "value": version} for library, version in sorted(card.versions.items())],
    ]
    sections: list[Section] = [("Model", model_rows, ["field", "value"])]
    if evaluation:
        metrics = evaluation.get("metrics") or {}
        rows = [{"metric": k, "value": v} for k, v in sorted(metrics.items()) if isinstance(v, (int, float))]
        sections.append(("Test-set metrics (evaluate)", rows, ["metric", "value"]))
    sections.append(
        (
            "Inputs",
            [{"column": f.name, "type": f.logical_type} for f in card.input_features],
            ["column", "type"],
        )
    )
    sources = [
        {
            "uri": s.get("uri"),
            "rows": s.get("rows"),
            "columns": s.get("columns"),
            "content hash": s.get("content_hash"),
            "role": role,
        }
        for source in data.get("sources") or []
        for s, role in [(source, "training data")]
        + [(part, f"part: {part.get('role', '')}") for part in source.get("parts") or []]
    ]
    sections.append(("Data", sources, ["uri", "rows", "columns", "content hash", "role"]))
    split = data.get("train_split") or {}
    if split:
        sections.append(
            ("Train split", [{"field": k, "value": v} for k, v in sorted(split.items())], ["field", "value"])
        )
    code_rows = [{"component": "suite version", "reference": code.get("suite_version", "-")}]
    code_rows += [{"component": stage, "reference": ref} for stage, ref in (code.get("images") or {}).items()]
    sections.append(("Code", code_rows, ["component", "reference"]))
    parameters = lineage.get("parameters") or {}
    for stage, values in parameters.items():
        rows = [{"parameter": k, "value": _shown(v)} for k, v in sorted((values or {}).items())]
        sections.append((f"Parameters: {stage}", rows, ["parameter", "value"]))
    parent_rows = (
        [{"field": k, "value": v} for k, v in sorted(parent.items())]
        if parent
        else [{"field": "parent", "value": "none: no champion when this model was trained"}]
    )
    sections.append(("Parent champion", parent_rows, ["field", "value"]))
    return sections


def _shown(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list, tuple)) else value


def render_card_html(card: ModelCard, title: str, evaluation: Mapping[str, Any] | None = None) -> str:
    """The model card as one HTML page."""
    from mlstages.components.common.reports import html_page, html_paragraph, html_table

    return html_page(
        title,
        [
            (heading, html_table(rows, columns) if rows else html_paragraph("none recorded"))
            for heading, rows, columns in card_sections(card, evaluation)
        ],
    )


def render_card_text(card: ModelCard, title: str, evaluation: Mapping[str, Any] | None = None) -> str:
    """The model card as plain text, for a terminal."""
    from mlstages.components.common.reports import format_value

    lines = [title, "=" * len(title)]
    for heading, rows, columns in card_sections(card, evaluation):
        lines += ["", heading, "-" * len(heading)]
        if not rows:
            lines.append("  none recorded")
        for row in rows:
            lines.append("  " + "  ".join(format_value(row.get(c)) for c in columns))
    return "\n".join(lines) + "\n"
