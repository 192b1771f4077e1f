"""The training report as HTML and Markdown."""

from __future__ import annotations

import json
from typing import Any

from mlstages.components.common.baselines import DEFAULT_GRADIENT_BOOSTING
from mlstages.components.train.config import CLASSIFICATION
from mlstages.components.train.train import TrainResult


def _explanation(result: TrainResult) -> str:
    candidates = len(result.search_results)
    families = result.search_results["family"].nunique()
    text = (
        f"{result.best_family} with {json.dumps(result.best_params, sort_keys=True)} has the best mean "
        f"{result.cv_folds}-fold cross-validated {result.scoring} ({result.best_score:.4g}) of "
        f"{candidates} candidate(s) in {families} model famil{'y' if families == 1 else 'ies'} "
        f"({result.search} search); it was refit on all {result.train_rows:,} training rows."
    )
    floor = _floor_sentence(result)
    if floor:
        text += " " + floor
    if result.skipped:
        text += " Not searched: " + "; ".join(f"{f} ({why})" for f, why in result.skipped.items()) + "."
    if result.search_rows < result.train_rows:
        text += (
            f" The search ran on a seeded{' stratified' if result.task == CLASSIFICATION else ''} "
            f"sample of {result.search_rows:,} rows (max_search_rows)."
        )
    return text


def _floor_sentence(result: TrainResult) -> str:
    """How the chosen model compares with the baselines on the same folds."""
    scores = {b.name: b.mean_cv_score for b in result.baselines}
    default = scores.get(DEFAULT_GRADIENT_BOOSTING)
    if default is None:
        return ""
    if result.best_score >= default:
        return f"It scores at least as well as the default gradient boosting baseline ({default:.4g})."
    return (
        f"It scores BELOW the default gradient boosting baseline ({default:.4g}), which was not among the "
        "searched families: add gradient_boosting to model_families, or the blessing gate's quality "
        "floor may refuse it."
    )


def _baseline_rows(result: TrainResult) -> list[dict[str, Any]]:
    rows = [
        {"model": f"chosen: {result.best_family}", "mean_cv_score": result.best_score, "std_cv_score": ""}
    ]
    rows += [
        {"model": f"baseline: {b.name}", "mean_cv_score": b.mean_cv_score, "std_cv_score": b.std_cv_score}
        for b in result.baselines
    ]
    return rows


def _table_rows(result: TrainResult) -> list[dict[str, Any]]:
    rows = result.search_results.sort_values("rank", kind="stable").to_dict("records")
    for row in rows:
        row["chosen"] = "best" if row["rank"] == 1 else ""
        if row.get("default"):
            row["params"] = "{} (defaults: the baseline)"
    return rows


_TABLE_COLUMNS = [
    "rank",
    "chosen",
    "family",
    "params",
    "mean_cv_score",
    "std_cv_score",
    "rows_scored",
    "fit_time_seconds",
]


def render_html(result: TrainResult) -> str:
    """The search report: the chosen model and why, and every candidate sorted by rank."""
    from mlstages.components.common.reports import html_page, html_paragraph, html_table

    table = html_table(_table_rows(result), _TABLE_COLUMNS)
    # Rows are sorted by rank, so the first body row is the chosen candidate.
    table = table.replace("<tbody><tr>", '<tbody><tr class="ok" style="font-weight:600">', 1)
    chosen = [
        {"setting": "task", "value": result.task},
        {"setting": "label column", "value": result.label_column},
        {"setting": "family", "value": result.best_family},
        {"setting": "parameters", "value": json.dumps(result.best_params, sort_keys=True)},
        {"setting": f"mean CV {result.scoring}", "value": result.best_score},
        {"setting": "training rows", "value": result.train_rows},
        {"setting": "search rows", "value": result.search_rows},
    ]
    if result.classes is not None:
        chosen.append({"setting": "classes", "value": ", ".join(map(str, result.classes))})
    return html_page(
        "Training: model search",
        [
            ("Chosen model", html_paragraph(_explanation(result)) + html_table(chosen, ["setting", "value"])),
            (
                f"Quality floor: the baselines on the same folds ({result.scoring})",
                html_table(_baseline_rows(result), ["model", "mean_cv_score", "std_cv_score"]),
            ),
            (
                f"Search results ({result.scoring}, higher is better)",
                table,
            ),
        ],
    )


def render_markdown(result: TrainResult) -> str:
    """The run summary: the chosen model, why, and the best candidate of each family."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    per_family = (
        result.search_results.sort_values("rank", kind="stable").groupby("family", sort=False).head(1)
    )
    lines = [
        "# Train",
        "",
        markdown_text(_explanation(result)),
        "",
        f"Baselines on the same folds ({markdown_text(result.scoring)}):",
        "",
        markdown_table(_baseline_rows(result), ["model", "mean_cv_score", "std_cv_score"]),
        "",
        f"Best candidate of each family ({markdown_text(result.scoring)}, higher is better):",
        "",
        markdown_table(
            per_family.to_dict("records"), ["rank", "family", "params", "mean_cv_score", "std_cv_score"]
        ),
        "",
    ]
    return "\n".join(lines)
