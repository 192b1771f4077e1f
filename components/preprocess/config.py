"""Preprocess' settings (PreprocessConfig) and their vocabularies."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlstages.components.common.column_checks import IGNORE, check_column_types
from mlstages.components.common.errors import ParameterError, require_choice
from mlstages.components.common.estimators.scalers import SCALINGS
from mlstages.components.common.labels import DEFAULT_UNLABELLED_ROWS, TASKS, UNLABELLED_ROWS

SPLITS = ("stratified", "random", "time")


NUMERIC_IMPUTATIONS = ("mean", "median", "most_frequent", "constant")


CATEGORICAL_IMPUTATIONS = ("most_frequent", "constant")


ENCODINGS = ("onehot", "ordinal")


OUTLIER_METHODS = ("none", "iqr", "zscore")


DEFAULT_OUTLIER_FACTORS = {"iqr": 1.5, "zscore": 3.0}


SPLIT_NAMES = ("train", "test")


# Column-plan paths: how each input column is treated.
PATH_NUMERIC = "numeric"


PATH_CATEGORICAL = "categorical"


PATH_BOOLEAN = "boolean"


PATH_TEXT = "text"


PATH_DROPPED = "dropped"


PATH_LABEL = "label"


PATH_EXCLUDED = "excluded"


@dataclass(frozen=True)
class PreprocessConfig:
    """How to split the data and what the preprocessing transformer does.

    label_column: the column to predict; kept in the split outputs, never a feature.
    task: auto, classification or regression (auto: see ``labels.detect_task``).
    test_size: the share of the rows for the test split, in (0, 1): ``ceil(test_size * rows)`` rows,
        train the rest. There is no validation split: train selects by cross-validation.
    seed: the random seed of the split.
    split: stratified (classification: each split keeps the class shares; a regression label is
        split at random instead, and the summary says so), random, or time (rows ordered by
        ``time_column``: the oldest go to train, the newest to test).
    time_column: the column that orders rows for ``split="time"``; only used with it.
    drop_columns: columns that are not features (IDs, leaks); they stay in the split outputs.
    numeric_imputation: mean, median, most_frequent or constant (``fill_value_numeric``).
    categorical_imputation: most_frequent or constant (``fill_value_categorical``).
    encoding: onehot (unknown categories at transform time → all zeros) or ordinal (→ -1).
    max_categories: per categorical column, the most frequent categories kept; the rest share one
        "infrequent" category. 0 keeps every category. 50 by default: a cap of 20 folded 18 of
        mpg's 38 car models into one feature and cost the model 8 points of F1 (0.918 against 1.0
        with every category), while a column with thousands of levels still stays bounded.
    outliers: none, iqr (clip to [Q1 - f·IQR, Q3 + f·IQR]) or zscore (clip to mean ± f·std), with
        the bounds fitted on train. A column whose IQR (or std) is 0 is not clipped, because
        clipping would flatten every value that differs from the common one.
    outlier_factor: f above; None for the method's default (1.5 for iqr, 3 for zscore).
    scaling: standard, minmax, robust or none; applies to numeric columns.
    text_columns: columns to TF-IDF. Empty: every column whose logical type is text. When given,
        other free-text columns are encoded as categories (capped by ``max_categories``).
    unlabelled_rows: drop (rows whose label is missing are dropped before the split, and the
        summary says how many) or fail (an error naming them).
    add_missing_indicators: add a 0/1 "was missing" feature for every column with missing values
        in the train split.
    column_types: column -> numeric, categorical, boolean, datetime, text or ignore, overriding
        the type read from the data, inside the fitted transformer (so serving reads raw values
        the same way): numeric parses numbers written as text ("3,750", "$1,200.50", "12%"; what
        does not parse is missing), boolean parses true/false, yes/no, t/f, y/n, 1/0, categorical
        and text take values as strings, datetime columns are not features (date_parts derives
        from them), ignore leaves the column out of the features.
    exclude_id_columns: leave out of the features every column with a distinct, key-like value in
        each train row (``column_checks.id_columns``): a customer number or a UUID generalises to
        nothing. A column named in ``column_types`` is never excluded as an ID.
    max_fit_rows: the transformer is fitted on a seeded sample of this many train rows when the
        train split has more (every row is still split and written); 0 lets the component size it
        from the task's memory allowance, at most 200,000 rows (``memory.fit_rows``), and keeps
        every row in memory here.
    """

    label_column: str
    task: str = "auto"
    test_size: float = 0.2
    seed: int = 42
    split: str = "stratified"
    time_column: str = ""
    drop_columns: tuple[str, ...] = ()
    numeric_imputation: str = "median"
    categorical_imputation: str = "most_frequent"
    fill_value_numeric: float = 0.0
    fill_value_categorical: str = "missing"
    encoding: str = "onehot"
    max_categories: int = 50
    outliers: str = "iqr"
    outlier_factor: float | None = None
    scaling: str = "standard"
    text_columns: tuple[str, ...] = ()
    add_missing_indicators: bool = True
    unlabelled_rows: str = DEFAULT_UNLABELLED_ROWS
    column_types: Mapping[str, str] = field(default_factory=dict)
    exclude_id_columns: bool = True
    max_fit_rows: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str) or not self.label_column.strip():
            raise ParameterError("parameter label_column is empty: name the column to predict")
        require_choice("task", self.task, TASKS)
        require_choice("unlabelled_rows", self.unlabelled_rows, UNLABELLED_ROWS)
        require_choice("split", self.split, SPLITS)
        require_choice("numeric_imputation", self.numeric_imputation, NUMERIC_IMPUTATIONS)
        require_choice("categorical_imputation", self.categorical_imputation, CATEGORICAL_IMPUTATIONS)
        require_choice("encoding", self.encoding, ENCODINGS)
        require_choice("outliers", self.outliers, OUTLIER_METHODS)
        require_choice("scaling", self.scaling, SCALINGS)
        if not _is_number(self.test_size) or not 0 < self.test_size < 1:
            raise ParameterError(
                f"parameter test_size={self.test_size!r} must be a share of the rows strictly between 0 and 1"
            )
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:
            raise ParameterError(f"parameter seed={self.seed!r} must be an integer in [0, 2**32)")
        if self.split == "time" and not self.time_column:
            raise ParameterError("split='time' needs parameter time_column: the column that orders the rows")
        if self.time_column and self.split != "time":
            raise ParameterError(
                f"parameter time_column={self.time_column!r} is only used with split='time' "
                f"(split is {self.split!r}); set split='time' or leave time_column empty"
            )
        object.__setattr__(self, "drop_columns", _column_tuple("drop_columns", self.drop_columns))
        object.__setattr__(self, "text_columns", _column_tuple("text_columns", self.text_columns))
        if self.label_column in self.drop_columns:
            raise ParameterError(
                f"parameter drop_columns lists the label column {self.label_column!r}; "
                "the label is never a feature, so remove it from drop_columns"
            )
        if self.label_column in self.text_columns:
            raise ParameterError(
                f"parameter text_columns lists the label column {self.label_column!r}; remove it"
            )
        both = [c for c in self.text_columns if c in self.drop_columns]
        if both:
            raise ParameterError(
                f"column(s) {', '.join(map(repr, both))} are in both text_columns and drop_columns; "
                "keep each in one of them"
            )
        object.__setattr__(self, "column_types", check_column_types(self.column_types or {}))
        self._check_column_types()
        if (
            isinstance(self.max_fit_rows, bool)
            or not isinstance(self.max_fit_rows, int)
            or self.max_fit_rows < 0
        ):
            raise ParameterError(
                f"parameter max_fit_rows={self.max_fit_rows!r} must be 0 (as many as the task's memory "
                "allows) or a positive number of rows"
            )
        if not isinstance(self.exclude_id_columns, bool):
            raise ParameterError(
                f"parameter exclude_id_columns={self.exclude_id_columns!r} must be true or false"
            )
        if not _is_number(self.fill_value_numeric) or not math.isfinite(self.fill_value_numeric):
            raise ParameterError(
                f"parameter fill_value_numeric={self.fill_value_numeric!r} must be a finite number"
            )
        if not isinstance(self.fill_value_categorical, str):
            raise ParameterError(
                f"parameter fill_value_categorical={self.fill_value_categorical!r} must be a string"
            )
        if not _is_int(self.max_categories) or self.max_categories == 1 or self.max_categories < 0:
            raise ParameterError(
                f"parameter max_categories={self.max_categories!r} must be 0 (keep every category) "
                "or an integer of at least 2"
            )
        if self.outlier_factor is not None and (
            not _is_number(self.outlier_factor) or not self.outlier_factor > 0
        ):
            raise ParameterError(
                f"parameter outlier_factor={self.outlier_factor!r} must be a positive number "
                "(or None for the method's default)"
            )
        if not isinstance(self.add_missing_indicators, bool):
            raise ParameterError(
                f"parameter add_missing_indicators={self.add_missing_indicators!r} must be true or false"
            )

    def _check_column_types(self) -> None:
        declared = self.column_types
        if self.label_column in declared:
            raise ParameterError(
                f"parameter column_types names the label column {self.label_column!r}; the label's "
                "type decides the task: use task='classification' or 'regression' instead"
            )
        both = [c for c in self.drop_columns if c in declared]
        if both:
            raise ParameterError(
                f"column(s) {', '.join(map(repr, both))} are in both drop_columns and column_types; "
                "keep each in one of them"
            )
        not_text = [c for c in self.text_columns if c in declared and declared[c] != "text"]
        if not_text:
            raise ParameterError(
                f"column(s) {', '.join(map(repr, not_text))} are in text_columns but column_types gives "
                "them another type; keep each in one of them"
            )
        if self.time_column and declared.get(self.time_column) == IGNORE:
            raise ParameterError(
                f"parameter time_column={self.time_column!r} orders the split, but column_types "
                "says to ignore it"
            )

    @property
    def ignored_columns(self) -> tuple[str, ...]:
        """Columns that ``column_types`` leaves out of the features."""
        return tuple(name for name, kind in self.column_types.items() if kind == IGNORE)

    @property
    def effective_outlier_factor(self) -> float | None:
        """The clipping factor in use: the given one, or the method's default; None without clipping."""
        if self.outliers == "none":
            return None
        return float(self.outlier_factor or DEFAULT_OUTLIER_FACTORS[self.outliers])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _column_tuple(parameter: str, columns: Any) -> tuple[str, ...]:
    if columns is None:
        return ()
    if isinstance(columns, str):
        raise ParameterError(
            f"parameter {parameter}={columns!r} must be a list of column names, not one string"
        )
    names = tuple(columns)
    bad = [c for c in names if not isinstance(c, str) or not c]
    if bad:
        raise ParameterError(f"parameter {parameter} has entries that are not column names: {bad!r}")
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ParameterError(f"parameter {parameter} lists {', '.join(map(repr, repeated))} more than once")
    return names
