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

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
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
from mlstages.components.preprocess.split import (
    _check_not_empty,
    _split,
    index_is_positions,
    row_positions,
)


@dataclass(frozen=True)
class SplitPlan:
    """Which rows go to which split, decided from the label (and time) column alone.

    Positions are the rows' places in the dataset (0-based), so the splits can be written by
    streaming the dataset once; the label summary is exact, over every row of each split.
    """

    task: str
    method: str
    train_positions: np.ndarray
    test_positions: np.ndarray
    label_summary: dict[str, dict[str, Any]]
    notes: tuple[str, ...] = ()
    unlabelled_rows_dropped: int = 0

    @property
    def row_counts(self) -> dict[str, int]:
        return {"train": len(self.train_positions), "test": len(self.test_positions)}


@dataclass(frozen=True)
class PreprocessResult:
    """What ``preprocess`` produced: the fitted transformer, how it decided, and, when the data was
    split in memory, the raw splits.

    ``train`` holds the rows the transformer was fitted on: every train row, or a seeded sample of
    them (``fit_rows`` < ``row_counts['train']``) when the train split is larger than max_fit_rows.
    ``test`` is None when the splits were streamed to disk rather than held.
    """

    config: PreprocessConfig
    task: str
    train: pd.DataFrame
    test: pd.DataFrame | None
    preprocessor: ColumnTransformer
    column_plan: tuple[ColumnPlan, ...]
    feature_names: tuple[str, ...]
    split_method: str
    label_summary: dict[str, dict[str, Any]]
    row_counts: dict[str, int]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    unlabelled_rows_dropped: int = 0
    # Identifier columns left out of the features (exclude_id_columns), in column order.
    id_columns: tuple[str, ...] = ()

    @property
    def fit_rows(self) -> int:
        return len(self.train)

    @property
    def splits(self) -> dict[str, pd.DataFrame]:
        if self.test is None:
            raise ValueError("the splits were streamed to disk, not held in memory")
        return {"train": self.train, "test": self.test}

    @property
    def input_columns(self) -> list[str]:
        return [str(c) for c in self.preprocessor.feature_names_in_]


def preprocess(df: pd.DataFrame, config: PreprocessConfig) -> PreprocessResult:
    """Split ``df`` into raw train / test rows and fit the transformer on train only (on a seeded
    sample of max_fit_rows of them when there are more).

    Everything is checked before anything is fitted: the label column (present, no missing value,
    two classes or more for classification), the columns named in ``drop_columns``,
    ``text_columns`` and ``time_column``, and whether the data can be split as asked.
    """
    # The plan names rows by index label (their positions for a dataset read from disk).
    frame = df if df.index.is_unique else df.reset_index(drop=True)
    plan = plan_split(frame, frame, config)
    train, test = frame.loc[plan.train_positions], frame.loc[plan.test_positions]
    fit = train
    if config.max_fit_rows and len(train) > config.max_fit_rows:
        fit = train.iloc[fit_sample(len(train), config.max_fit_rows, config.seed)]
    return fit_preprocessor(fit, config, plan, test=test, train_rows=train)


def fit_sample(rows: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of ``size`` of ``rows`` rows (all of them when fewer)."""
    from mlstages.components.common.dataset_positions import sample_positions

    return sample_positions(rows, size, seed)


def plan_split(labels: pd.DataFrame, columns: pd.DataFrame, config: PreprocessConfig) -> SplitPlan:
    """Check the data and the parameters, and decide the split.

    ``labels`` holds the label (and the time_column) of every row, indexed by the rows' positions
    in the dataset; ``columns`` has every column of the data (its rows may be none), for the checks
    of the column names the parameters give.
    """
    _check_not_empty(labels)
    if config.label_column not in columns.columns:
        check_label(columns, config.label_column, what="dataset")  # names the columns there are
    labels, unlabelled = drop_unlabelled(labels, config.label_column, config.unlabelled_rows, what="dataset")
    y = check_label(labels, config.label_column, what="dataset", task=config.task)
    require_columns(columns, list(config.drop_columns), what="dataset", parameter="drop_columns")
    require_columns(columns, list(config.text_columns), what="dataset", parameter="text_columns")
    if config.time_column:
        require_columns(columns, [config.time_column], what="dataset", parameter="time_column")
    check_column_types(config.column_types, columns)
    task = resolve_task(y, config.task)
    split = _split(labels, y, task, config)
    # Rows are named by their index labels: the dataset positions of a dataset read from disk.
    positions = row_positions(labels) if index_is_positions(labels.index) else labels.index.to_numpy()
    return SplitPlan(
        task=task,
        method=split.method,
        train_positions=positions[split.train],
        test_positions=positions[split.test],
        label_summary={
            name: split.class_counts(index)
            if split.codes is not None
            else _label_summary(y.iloc[index], task)
            for name, index in (("train", split.train), ("test", split.test))
        },
        notes=split.notes,
        unlabelled_rows_dropped=unlabelled,
    )


def fit_preprocessor(
    train: pd.DataFrame,
    config: PreprocessConfig,
    plan: SplitPlan,
    *,
    test: pd.DataFrame | None = None,
    train_rows: pd.DataFrame | None = None,
) -> PreprocessResult:
    """Fit the transformer on ``train`` (the train split's rows, or a sample of them) and say how
    every column is treated; ``test`` and ``train_rows`` are the whole splits when held in memory."""
    identifiers = _identifiers(train, config)
    train_X, _ = features_and_label(train, config, identifiers)
    plans = plan_columns(train_X, config)
    preprocessor = preprocessor_from_plan(plans, config).fit(train_X)

    def excluded(names: Sequence[str], why: str) -> list[ColumnPlan]:
        return [
            ColumnPlan(
                name, column_types(train[[name]])[name], PATH_EXCLUDED, why, int(train[name].isna().sum())
            )
            for name in names
        ]

    full_plan = [
        ColumnPlan(
            config.label_column,
            column_types(train[[config.label_column]])[config.label_column],
            PATH_LABEL,
            f"label ({plan.task})",
            0,
        ),
        *excluded(config.drop_columns, "excluded: drop_columns"),
        *excluded(config.ignored_columns, "excluded: column_types says ignore"),
        *[
            p
            for name in identifiers
            for p in excluded(
                [name],
                "excluded: an identifier (a different key-like value in every train row); "
                f"column_types={{{name!r}: 'categorical'}} keeps it as a feature",
            )
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
    unlabelled = plan.unlabelled_rows_dropped
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
    sample_notes = ()
    if len(train) < plan.row_counts["train"]:
        sample_notes = (
            f"The transformer was fitted on a seeded sample of {len(train):,} of the "
            f"{plan.row_counts['train']:,} train rows (max_fit_rows); missing counts in the column plan "
            "are the sample's.",
        )
    return PreprocessResult(
        config=config,
        task=plan.task,
        train=train_rows if train_rows is not None and len(train_rows) == len(train) else train,
        test=test,
        preprocessor=preprocessor,
        column_plan=tuple(full_plan),
        feature_names=tuple(str(n) for n in preprocessor.get_feature_names_out()),
        split_method=plan.method,
        label_summary=plan.label_summary,
        row_counts=plan.row_counts,
        notes=(*unlabelled_notes, *id_notes, *plan.notes, *sample_notes, *datetime_notes),
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
