"""The label column: is it usable, and is the task classification or regression?

Shared by the stages that fit or score a model (preprocess, engineer_features, train, evaluate), so
that every stage reads the same label column the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError, require_choice

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = ("auto", CLASSIFICATION, REGRESSION)

# A numeric label is read as class codes when all its values are whole numbers, it has at most
# this many distinct values, and there are at least two rows per distinct value on average
# (an integer target with nearly one row per value is a count or an amount, not a class).
MAX_CLASSES_FOR_NUMERIC_LABEL = 20

# What to do with rows whose label is missing: drop them (and say how many), or stop. Dropping is
# the default because a table with a few unlabelled rows is common and otherwise a dead end.
UNLABELLED_ROWS = ("drop", "fail")
DEFAULT_UNLABELLED_ROWS = "drop"
_MIN_ROWS_PER_CLASS_ON_AVERAGE = 2
_MAX_ROWS_LISTED = 5

# Label values deduplicated at a time: pandas' unique and value_counts size their hash table by
# the rows, 500 MiB for 20M rows, however few the classes.
_DISTINCT_CHUNK_ROWS = 1 << 22


def distinct_values(y: pd.Series) -> pd.Series:
    """The distinct values of ``y``, in order of first appearance (as ``y.unique()``), found a chunk
    of rows at a time."""
    if len(y) <= _DISTINCT_CHUNK_ROWS:
        return pd.Series(y.unique(), dtype=y.dtype)
    parts = [
        y.iloc[s : s + _DISTINCT_CHUNK_ROWS].drop_duplicates() for s in range(0, len(y), _DISTINCT_CHUNK_ROWS)
    ]
    return pd.Series(pd.concat(parts).unique(), dtype=y.dtype)


def value_counts(y: pd.Series) -> pd.Series:
    """Rows per distinct value, most frequent first (ties in order of first appearance), counted a
    chunk of rows at a time."""
    parts = [
        y.iloc[s : s + _DISTINCT_CHUNK_ROWS].value_counts(sort=False)
        for s in range(0, len(y), _DISTINCT_CHUNK_ROWS)
    ]
    if not parts:
        return pd.Series([], dtype="int64")
    counts = pd.concat(parts).groupby(level=0, sort=False, observed=True).sum()
    return counts.sort_values(ascending=False, kind="stable")


def detect_task(y: pd.Series) -> str:
    """``"classification"`` or ``"regression"``, from the label's values.

    The rule: a label is a classification target when it is boolean, or not numeric (strings,
    categories, dates), or numeric with whole-number values only, at most
    ``MAX_CLASSES_FOR_NUMERIC_LABEL`` (20) distinct values and at least two rows per distinct
    value on average. Every other numeric label is a regression target. Missing values are ignored.
    Pass the task explicitly when the rule guesses wrong (say, a rating from 1 to 5 to be regressed).
    """
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return CLASSIFICATION
    # An integer column holds no missing value and no fraction: no copy of 50M labels to learn that.
    numpy_integer = isinstance(y.dtype, np.dtype) and y.dtype.kind in "iu"
    values = y if numpy_integer else y.dropna()
    if values.empty:
        return REGRESSION
    whole = numpy_integer or all(
        bool((chunk == chunk.round()).all())
        for chunk in (
            values.iloc[s : s + _DISTINCT_CHUNK_ROWS].astype("float64")
            for s in range(0, len(values), _DISTINCT_CHUNK_ROWS)
        )
    )
    distinct = len(distinct_values(values))
    if (
        whole
        and distinct <= MAX_CLASSES_FOR_NUMERIC_LABEL
        and len(values) >= _MIN_ROWS_PER_CLASS_ON_AVERAGE * distinct
    ):
        return CLASSIFICATION
    return REGRESSION


def resolve_task(y: pd.Series, task: str) -> str:
    """The task to run: ``task`` itself, or the detected one when ``task`` is ``"auto"``.

    Raises ParameterError for a task other than auto / classification / regression, and
    InputDataError when regression is asked for a label that is not numeric.
    """
    require_choice("task", task, TASKS)
    if task == "auto":
        return detect_task(y)
    if task == CLASSIFICATION:
        _refuse_continuous_classes(y)
    if task == REGRESSION and (pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y)):
        examples = ", ".join(repr(v) for v in y.dropna().unique()[:3])
        raise InputDataError(
            f"task='regression' needs a numeric label, but label column {y.name!r} has dtype "
            f"{y.dtype} (values such as {examples}); use task='classification' or 'auto', or "
            "convert the column to numbers"
        )
    return task


# More distinct values than this, some fractional, and a label is a measurement, not class ids.
_MAX_FRACTIONAL_CLASSES = 20


def _refuse_continuous_classes(y: pd.Series) -> None:
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_float_dtype(y):
        return
    values = y.dropna()
    fractional = values[values != values.round()]
    distinct = values.nunique()
    if len(fractional) and distinct > _MAX_FRACTIONAL_CLASSES:
        examples = ", ".join(f"{v:g}" for v in fractional.unique()[:3])
        raise InputDataError(
            f"task='classification', but label column {y.name!r} holds {distinct} distinct numbers, "
            f"{fractional.nunique()} of them fractional (e.g. {examples}): a continuous target, not "
            "classes; use task='regression' (or 'auto'), or bin the label into classes upstream"
        )


def drop_unlabelled(
    df: pd.DataFrame, label_column: str, unlabelled_rows: str, *, what: str
) -> tuple[pd.DataFrame, int]:
    """``df`` without the rows whose label is missing, and how many were dropped.

    With ``unlabelled_rows='fail'`` nothing is dropped (``check_label`` then names the rows). A
    label missing in every row is an InputDataError either way: nothing would be left to learn from.
    """
    require_choice("unlabelled_rows", unlabelled_rows, UNLABELLED_ROWS)
    if label_column not in df.columns:
        return df, 0  # check_label names the columns there are
    missing = df[label_column].isna().to_numpy()
    count = int(missing.sum())
    if count and count == len(df):
        raise InputDataError(
            f"label column {label_column!r} of the {what} is missing in all {count} rows: there is "
            "nothing to learn from; check label_column, or fill the label upstream"
        )
    if unlabelled_rows == "fail" or not count:
        return df, 0
    return df.loc[~missing], count


def check_label(df: pd.DataFrame, label_column: str, *, what: str, task: str | None = None) -> pd.Series:
    """Return ``df[label_column]`` after checking that it can be learned from.

    Raises InputDataError when the column is missing (listing the columns that exist), when it has
    missing values (their count and first row positions, 0-based), and, when ``task`` resolves to
    classification, when it holds a single class. ``what`` names the data in messages, e.g.
    ``"train split"``. ``task=None`` skips the class check.
    """
    if label_column not in df.columns:
        raise InputDataError(
            f"label_column {label_column!r} is not a column of the {what}; "
            f"its columns are: {', '.join(map(str, df.columns))}"
        )
    y = df[label_column]
    missing = y.isna().to_numpy()
    if missing.any():
        positions = missing.nonzero()[0][:_MAX_ROWS_LISTED].tolist()
        raise InputDataError(
            f"label column {label_column!r} of the {what} has {int(missing.sum())} missing value(s), "
            f"first at row(s) {', '.join(map(str, positions))} (0-based); fill them, or drop those "
            "rows (preprocess does with unlabelled_rows='drop')"
        )
    if task is not None and resolve_task(y, task) == CLASSIFICATION:
        classes = distinct_values(y).to_numpy()
        if len(classes) < 2:
            raise InputDataError(
                f"label column {label_column!r} of the {what} has a single class ({classes[0]!r}) in "
                f"all {len(y)} rows; classification needs at least two classes"
            )
    return y


def class_counts(y: pd.Series) -> dict[str, int]:
    """Rows per class, most frequent first, with class names as strings (JSON-able)."""
    counts = value_counts(y)
    return {str(label): int(n) for label, n in counts.items()}
