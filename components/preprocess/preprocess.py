"""Preprocessing: split raw rows, then fit a preprocessing transformer on the train split only.

The split comes first, so nothing learned from test rows (medians, categories,
clipping bounds, vocabularies, scales) can leak into the model. The split outputs stay RAW rows:
the fitted transformer is applied later, inside the exported model, so the served model takes the
same raw rows as training and evaluation.

The transformer is a scikit-learn ``ColumnTransformer`` with one path per logical column type:

- numeric: outlier clipping (bounds fitted on train), imputation, scaling;
- categorical: imputation, one-hot (unknown categories → all zeros, rare ones → "infrequent") or
  ordinal encoding (unknown → -1);
- boolean: 0/1, imputed with the most frequent value;
- text: TF-IDF per column (at most ``TEXT_MAX_FEATURES`` terms);
- missing-value indicators for the columns that have missing values in the train split;
- datetime columns are dropped (``engineer_features``' ``date_parts`` derives features from them),
  and so are columns with no value at all in the train split, each with a note in the column plan.

Its output is a pandas DataFrame with readable, unique names: ``num__bill_length_mm``,
``cat__island_Biscoe``, ``bool__flag``, ``text_review__great``, ``missing__sex``.

Its custom steps (OutlierClipper, TfidfColumn, the FunctionTransformer functions, the scalers) live
in ``mlstages.components.common.estimators``, where ``fast_transform`` also turns the fitted
transformer into its numpy arithmetic for fast single-row predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer

from mlstages.components.common.column_checks import check_column_types, id_columns
from mlstages.components.common.datasets import (
    DATETIME,
    column_types,
    require_columns,
)
from mlstages.components.common.labels import (
    CLASSIFICATION,
    check_label,
    class_counts,
    drop_unlabelled,
    resolve_task,
)
from mlstages.components.preprocess.columns import (
    ColumnPlan,
    features_and_label,
    plan_columns,
    preprocessor_from_plan,
)
from mlstages.components.preprocess.config import (
    PATH_DROPPED,
    PATH_EXCLUDED,
    PATH_LABEL,
    SPLIT_NAMES,
    PreprocessConfig,
)
from mlstages.components.preprocess.split import _check_not_empty, _split


@dataclass(frozen=True)
class PreprocessResult:
    """What ``preprocess`` produced: the raw splits, the fitted transformer, and how it decided."""

    config: PreprocessConfig
    task: str
    train: pd.DataFrame
    test: pd.DataFrame
    preprocessor: ColumnTransformer
    column_plan: tuple[ColumnPlan, ...]
    feature_names: tuple[str, ...]
    split_method: str
    label_summary: dict[str, dict[str, Any]]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    unlabelled_rows_dropped: int = 0
    # Identifier columns left out of the features (exclude_id_columns), in column order.
    id_columns: tuple[str, ...] = ()

    @property
    def splits(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "test": self.test}

    @property
    def row_counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.splits.items()}

    @property
    def input_columns(self) -> list[str]:
        return [str(c) for c in self.preprocessor.feature_names_in_]


def preprocess(df: pd.DataFrame, config: PreprocessConfig) -> PreprocessResult:
    """Split ``df`` into raw train / test rows and fit the transformer on train only.

    Everything is checked before anything is fitted: the label column (present, no missing value,
    two classes or more for classification), the columns named in ``drop_columns``,
    ``text_columns`` and ``time_column``, and whether the data can be split as asked.
    """
    _check_not_empty(df)
    df, unlabelled = drop_unlabelled(df, config.label_column, config.unlabelled_rows, what="dataset")
    y = check_label(df, config.label_column, what="dataset", task=config.task)
    require_columns(df, list(config.drop_columns), what="dataset", parameter="drop_columns")
    require_columns(df, list(config.text_columns), what="dataset", parameter="text_columns")
    if config.time_column:
        require_columns(df, [config.time_column], what="dataset", parameter="time_column")
    check_column_types(config.column_types, df)
    task = resolve_task(y, config.task)
    split = _split(df, y, task, config)
    identifiers = _identifiers(split.train, config)
    train_X, _ = features_and_label(split.train, config, identifiers)
    plans = plan_columns(train_X, config)
    preprocessor = preprocessor_from_plan(plans, config).fit(train_X)
    full_plan = [
        ColumnPlan(
            config.label_column,
            column_types(df[[config.label_column]])[config.label_column],
            PATH_LABEL,
            f"label ({task})",
            0,
        ),
        *[
            ColumnPlan(
                name,
                column_types(df[[name]])[name],
                PATH_EXCLUDED,
                "excluded: drop_columns",
                int(split.train[name].isna().sum()),
            )
            for name in config.drop_columns
        ],
        *[
            ColumnPlan(
                name,
                column_types(df[[name]])[name],
                PATH_EXCLUDED,
                "excluded: column_types says ignore",
                int(split.train[name].isna().sum()),
            )
            for name in config.ignored_columns
        ],
        *[
            ColumnPlan(
                name,
                column_types(df[[name]])[name],
                PATH_EXCLUDED,
                "excluded: an identifier (a different key-like value in every train row); "
                f"column_types={{{name!r}: 'categorical'}} keeps it as a feature",
                int(split.train[name].isna().sum()),
            )
            for name in identifiers
        ],
        *plans,
    ]
    dropped_warnings = tuple(
        f"column {p.column!r} was dropped: every value is missing in the train split"
        for p in plans
        if p.path == PATH_DROPPED and p.logical_type != DATETIME
    )
    datetime_notes = tuple(
        f"datetime column {p.column!r} is not a transformer input feature; "
        "engineer_features' date_parts can derive year, month, day, weekday and hour from it."
        for p in plans
        if p.path == PATH_DROPPED and p.logical_type == DATETIME and p.missing_in_train < len(train_X)
    )
    parts = {"train": split.train, "test": split.test}
    unlabelled_notes = (
        (
            f"{unlabelled} row(s) with no {config.label_column!r} label were dropped before the split "
            "(unlabelled_rows='drop').",
        )
        if unlabelled
        else ()
    )
    id_notes = tuple(
        f"column {name!r} is an identifier (a different value in every train row) and is not a "
        f"feature; set column_types={{{name!r}: 'categorical'}} (or exclude_id_columns=false) to use it."
        for name in identifiers
    )
    return PreprocessResult(
        config=config,
        task=task,
        train=split.train,
        test=split.test,
        preprocessor=preprocessor,
        column_plan=tuple(full_plan),
        feature_names=tuple(str(n) for n in preprocessor.get_feature_names_out()),
        split_method=split.method,
        label_summary={name: _label_summary(part[config.label_column], task) for name, part in parts.items()},
        notes=(*unlabelled_notes, *id_notes, *split.notes, *datetime_notes),
        warnings=dropped_warnings,
        unlabelled_rows_dropped=unlabelled,
        id_columns=identifiers,
    )


def _identifiers(train: pd.DataFrame, config: PreprocessConfig) -> tuple[str, ...]:
    """The identifier columns of the train rows that are left out of the features: none without
    ``exclude_id_columns``; never a column the user named (column_types, text_columns, time_column)."""
    if not config.exclude_id_columns:
        return ()
    named = (
        config.label_column,
        *config.drop_columns,
        *config.column_types,
        *config.text_columns,
        config.time_column,
    )
    return tuple(id_columns(train, exclude=tuple(c for c in named if c)))


def _label_summary(y: pd.Series, task: str) -> dict[str, Any]:
    if task == CLASSIFICATION:
        return class_counts(y)
    values = y.astype("float64")
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=0)),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def preprocessor_metadata(result: PreprocessResult) -> dict[str, Any]:
    """The metadata saved beside the fitted transformer (and on the Model artifact)."""
    config = asdict(result.config)
    config["drop_columns"] = list(result.config.drop_columns)
    config["text_columns"] = list(result.config.text_columns)
    config["column_types"] = dict(result.config.column_types)
    return {
        "stage": "preprocess",
        "label_column": result.config.label_column,
        "task": result.task,
        # Logical type of each raw input column; metadata.json sorts keys, so the order is kept apart.
        "input_columns": column_types(result.train[result.input_columns]),
        "input_column_order": list(result.input_columns),
        "feature_names": list(result.feature_names),
        "split_method": result.split_method,
        "row_counts": result.row_counts,
        "unlabelled_rows_dropped": result.unlabelled_rows_dropped,
        "id_columns": list(result.id_columns),
        "column_plan": [asdict(p) for p in result.column_plan],
        "config": config,
    }


def render_markdown(result: PreprocessResult) -> str:
    """The Markdown summary: rows per split, label balance, the column plan, notes and warnings."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    counts = result.row_counts
    total = sum(counts.values())
    config = result.config
    lines = [
        "# Preprocess",
        "",
        f"Task: **{result.task}** (label column `{markdown_text(config.label_column)}`). "
        f"Split: **{result.split_method}**, seed {config.seed}"
        + (f", ordered by `{markdown_text(config.time_column)}`" if result.split_method == "time" else "")
        + ". The transformer was fitted on the train split only; the splits hold raw rows.",
        "",
        markdown_table(
            [{"split": name, "rows": n, "share": f"{n / total:.1%}"} for name, n in counts.items()],
            ["split", "rows", "share"],
        ),
        "",
    ]
    if result.task == CLASSIFICATION:
        labels = list(result.label_summary["train"])
        for name in SPLIT_NAMES:
            labels += [c for c in result.label_summary[name] if c not in labels]
        rows = []
        for label in labels:
            row: dict[str, Any] = {"class": label}
            for name in SPLIT_NAMES:
                n = result.label_summary[name].get(label, 0)
                row[name] = f"{n} ({n / max(counts[name], 1):.1%})"
            rows.append(row)
        lines += ["## Class balance", "", markdown_table(rows, ["class", *SPLIT_NAMES]), ""]
    else:
        rows = [{"split": name, **stats} for name, stats in result.label_summary.items()]
        lines += ["## Label", "", markdown_table(rows, ["split", "mean", "std", "min", "max"]), ""]
    plan_rows = [
        {
            "column": p.column,
            "type": p.logical_type,
            "path": p.path,
            "missing in train": p.missing_in_train,
            "treatment": p.treatment,
        }
        for p in result.column_plan
    ]
    lines += [
        "## Columns",
        "",
        markdown_table(plan_rows, ["column", "type", "path", "missing in train", "treatment"]),
        "",
        f"The transformer turns {len(result.input_columns)} input column(s) into "
        f"**{len(result.feature_names)}** feature(s).",
        "",
    ]
    if result.notes or result.warnings:
        lines += ["## Notes", ""]
        lines += [f"- {markdown_text(n)}" for n in (*result.warnings, *result.notes)]
        lines.append("")
    return "\n".join(lines)
