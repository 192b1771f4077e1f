"""Preprocessing: split raw rows, then fit a preprocessing transformer on the train split only.

The split comes first, so nothing learned from validation or test rows (medians, categories,
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

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
)

from mlstages.components.common.datasets import (
    BOOLEAN,
    DATETIME,
    NUMERIC,
    TEXT,
    column_types,
    require_columns,
)
from mlstages.components.common.errors import InputDataError, ParameterError, require_choice
from mlstages.components.common.estimators.functions import (
    as_category_strings,
    as_float,
    missing_as_nan,
    output_feature_name,
)
from mlstages.components.common.estimators.outliers import OutlierClipper
from mlstages.components.common.estimators.scalers import SCALINGS, make_scaler
from mlstages.components.common.estimators.text import TEXT_MAX_FEATURES, TfidfColumn
from mlstages.components.common.labels import (
    CLASSIFICATION,
    REGRESSION,
    TASKS,
    check_label,
    class_counts,
    resolve_task,
)

SPLITS = ("stratified", "random", "time")


NUMERIC_IMPUTATIONS = ("mean", "median", "most_frequent", "constant")


CATEGORICAL_IMPUTATIONS = ("most_frequent", "constant")


ENCODINGS = ("onehot", "ordinal")


OUTLIER_METHODS = ("none", "iqr", "zscore")


DEFAULT_OUTLIER_FACTORS = {"iqr": 1.5, "zscore": 3.0}


SPLIT_NAMES = ("train", "validation", "test")


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
    test_size, validation_size: shares of the rows for the test and validation splits; each must
        be in (0, 1) and together below 1. Each split gets ``ceil(size * rows)`` rows and train
        the rest. Validation is never empty: later stages (model selection, evaluation) rely on it.
    seed: the random seed of the split.
    split: stratified (classification: each split keeps the class shares; a regression label is
        split at random instead, and the summary says so), random, or time (rows ordered by
        ``time_column``: the oldest go to train, then validation, the newest to test).
    time_column: the column that orders rows for ``split="time"``; only used with it.
    drop_columns: columns that are not features (IDs, leaks); they stay in the split outputs.
    numeric_imputation: mean, median, most_frequent or constant (``fill_value_numeric``).
    categorical_imputation: most_frequent or constant (``fill_value_categorical``).
    encoding: onehot (unknown categories at transform time → all zeros) or ordinal (→ -1).
    max_categories: per categorical column, the most frequent categories kept; the rest share one
        "infrequent" category. 0 keeps every category.
    outliers: none, iqr (clip to [Q1 - f·IQR, Q3 + f·IQR]) or zscore (clip to mean ± f·std), with
        the bounds fitted on train. A column whose IQR (or std) is 0 is not clipped, because
        clipping would flatten every value that differs from the common one.
    outlier_factor: f above; None for the method's default (1.5 for iqr, 3 for zscore).
    scaling: standard, minmax, robust or none; applies to numeric columns.
    text_columns: columns to TF-IDF. Empty: every column whose logical type is text. When given,
        other free-text columns are encoded as categories (capped by ``max_categories``).
    add_missing_indicators: add a 0/1 "was missing" feature for every column with missing values
        in the train split.
    """

    label_column: str
    task: str = "auto"
    test_size: float = 0.2
    validation_size: float = 0.1
    seed: int = 42
    split: str = "stratified"
    time_column: str = ""
    drop_columns: tuple[str, ...] = ()
    numeric_imputation: str = "median"
    categorical_imputation: str = "most_frequent"
    fill_value_numeric: float = 0.0
    fill_value_categorical: str = "missing"
    encoding: str = "onehot"
    max_categories: int = 20
    outliers: str = "iqr"
    outlier_factor: float | None = None
    scaling: str = "standard"
    text_columns: tuple[str, ...] = ()
    add_missing_indicators: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str) or not self.label_column.strip():
            raise ParameterError("parameter label_column is empty: name the column to predict")
        require_choice("task", self.task, TASKS)
        require_choice("split", self.split, SPLITS)
        require_choice("numeric_imputation", self.numeric_imputation, NUMERIC_IMPUTATIONS)
        require_choice("categorical_imputation", self.categorical_imputation, CATEGORICAL_IMPUTATIONS)
        require_choice("encoding", self.encoding, ENCODINGS)
        require_choice("outliers", self.outliers, OUTLIER_METHODS)
        require_choice("scaling", self.scaling, SCALINGS)
        for name in ("test_size", "validation_size"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value < 1:
                raise ParameterError(
                    f"parameter {name}={value!r} must be a share of the rows strictly between 0 and 1"
                )
        if self.test_size + self.validation_size >= 1:
            raise ParameterError(
                f"parameters test_size={self.test_size} and validation_size={self.validation_size} "
                "add up to 1 or more, leaving no rows to train on; make their sum less than 1"
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


def split_sizes(n_rows: int, config: PreprocessConfig) -> tuple[int, int, int]:
    """Rows for (train, validation, test): ``ceil(size * n_rows)`` for validation and test."""
    # round() first: 0.1 * 30 is 3.0000000000000004 in floating point, which must not ceil to 4.
    n_test = math.ceil(round(config.test_size * n_rows, 9))
    n_validation = math.ceil(round(config.validation_size * n_rows, 9))
    n_train = n_rows - n_test - n_validation
    if n_train < 1:
        raise InputDataError(
            f"{n_rows} row(s) are too few to split: test_size={config.test_size} takes {n_test} and "
            f"validation_size={config.validation_size} takes {n_validation}, leaving {n_train} to "
            "train on; provide more rows or lower the sizes"
        )
    return n_train, n_validation, n_test


@dataclass(frozen=True)
class _Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    method: str
    notes: tuple[str, ...]


def split_dataset(
    df: pd.DataFrame, config: PreprocessConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split raw rows into (train, validation, test), with every column kept.

    Seeded and deterministic. Stratified for classification labels (each class must then be in
    every split: a class too small for that raises InputDataError naming it); a time split orders
    the rows by ``time_column``. The index labels of ``df`` are kept, so rows can be traced back.
    """
    _check_not_empty(df)
    y = check_label(df, config.label_column, what="dataset", task=config.task)
    split = _split(df, y, resolve_task(y, config.task), config)
    return split.train, split.validation, split.test


def _check_not_empty(df: pd.DataFrame) -> None:
    if len(df) == 0:
        raise InputDataError(f"the dataset has no rows (columns: {', '.join(map(str, df.columns))})")


def _split(df: pd.DataFrame, y: pd.Series, task: str, config: PreprocessConfig) -> _Split:
    n_train, n_validation, n_test = split_sizes(len(df), config)
    notes: list[str] = []
    method = config.split
    if method == "stratified" and task == REGRESSION:
        method = "random"
        notes.append(
            "split='stratified' applies to classification labels; the regression label was split at random."
        )
    if method == "time":
        order = _time_order(df, config.time_column)
        train_pos = order[:n_train]
        validation_pos = order[n_train : n_train + n_validation]
        test_pos = order[n_train + n_validation :]
    else:
        stratify = y.to_numpy() if method == "stratified" else None
        if stratify is not None:
            _check_stratifiable(y, n_validation, n_test)
        positions = np.arange(len(df))
        try:
            rest_pos, test_pos = train_test_split(
                positions, test_size=n_test, random_state=config.seed, stratify=stratify
            )
            train_pos, validation_pos = train_test_split(
                rest_pos,
                test_size=n_validation,
                random_state=config.seed,
                stratify=None if stratify is None else stratify[rest_pos],
            )
        except ValueError as exc:  # sklearn's own checks on class counts and split sizes
            raise InputDataError(f"cannot split the {len(df)} rows with split={method!r}: {exc}") from exc
    parts = {
        "train": df.iloc[train_pos],
        "validation": df.iloc[validation_pos],
        "test": df.iloc[test_pos],
    }
    if task == CLASSIFICATION:
        notes.extend(_check_classes_present(y, parts, config.label_column, method))
    return _Split(parts["train"], parts["validation"], parts["test"], method, tuple(notes))


def _time_order(df: pd.DataFrame, time_column: str) -> np.ndarray:
    require_columns(df, [time_column], what="dataset", parameter="time_column")
    values = df[time_column]
    missing = values.isna().to_numpy()
    if missing.any():
        raise InputDataError(
            f"time_column {time_column!r} has {int(missing.sum())} missing value(s), first at row "
            f"{int(missing.nonzero()[0][0])} (0-based); a time split needs a time for every row"
        )
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)):
        parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
        bad = parsed.isna().to_numpy()
        if bad.any():
            position = int(bad.nonzero()[0][0])
            raise InputDataError(
                f"time_column {time_column!r} has values that are neither numbers nor dates, e.g. "
                f"{values.iloc[position]!r} at row {position} (0-based)"
            )
        values = parsed
    # A stable sort keeps rows with the same time in their original order.
    return np.argsort(values.to_numpy(), kind="stable")


def _check_stratifiable(y: pd.Series, n_validation: int, n_test: int) -> None:
    counts = y.value_counts()
    too_small = counts[counts < len(SPLIT_NAMES)]
    if len(too_small):
        label, count = too_small.index[0], int(too_small.iloc[0])
        raise InputDataError(
            f"class {label!r} of label column {y.name!r} has only {count} row(s); a stratified split "
            f"needs at least {len(SPLIT_NAMES)} per class (one per split). Add rows for it, remove or "
            "merge the class, or use split='random'"
        )
    smallest = min(n_validation, n_test)
    if smallest < len(counts):
        raise InputDataError(
            f"label column {y.name!r} has {len(counts)} classes, but the smallest split gets only "
            f"{smallest} row(s), too few to hold each class once; raise test_size / validation_size "
            "or provide more rows"
        )


def _check_classes_present(
    y: pd.Series, parts: dict[str, pd.DataFrame], label_column: str, method: str
) -> list[str]:
    """Errors for classes a split lacks when the split promised them; notes otherwise."""
    counts = y.value_counts()
    notes = []
    for split_name, part in parts.items():
        present = set(part[label_column].unique())
        for label, count in counts.items():
            if label in present:
                continue
            if split_name == "train" or method == "stratified":
                raise InputDataError(
                    f"class {label!r} of label column {label_column!r} ({int(count)} row(s) in all) got "
                    f"no row in the {split_name} split; add rows for it, raise the size of that split, "
                    "or remove the class"
                )
            notes.append(
                f"class {label!r} ({int(count)} row(s) in all) has no row in the {split_name} split."
            )
    return notes


@dataclass(frozen=True)
class ColumnPlan:
    """What the transformer does with one column of the raw data."""

    column: str
    logical_type: str
    path: str
    treatment: str
    missing_in_train: int
    missing_indicator: bool = False


def features_and_label(df: pd.DataFrame, config: PreprocessConfig) -> tuple[pd.DataFrame, pd.Series]:
    """The transformer's input X (all columns but the label and ``drop_columns``) and the label."""
    y = check_label(df, config.label_column, what="data", task=None)
    dropped = [c for c in config.drop_columns if c in df.columns]
    return df.drop(columns=[config.label_column, *dropped]), y


def plan_columns(train_X: pd.DataFrame, config: PreprocessConfig) -> list[ColumnPlan]:
    """Decide the path of every column of ``train_X`` from its logical type and missing values."""
    if train_X.shape[1] == 0:
        raise InputDataError(
            "no feature columns are left once the label and drop_columns are removed; "
            "the data needs at least one column to learn from"
        )
    leaked = [c for c in (config.label_column, *config.drop_columns) if c in train_X.columns]
    if leaked:
        raise InputDataError(
            f"train_X still has column(s) {', '.join(map(repr, leaked))} (the label or drop_columns); "
            "pass the features only, e.g. features_and_label(train, config)[0]"
        )
    require_columns(train_X, list(config.text_columns), what="training features", parameter="text_columns")
    types = column_types(train_X)
    for name in config.text_columns:
        if types[name] in (NUMERIC, BOOLEAN, DATETIME):
            raise InputDataError(
                f"text_columns: column {name!r} is {types[name]}, not text; TF-IDF needs strings, so "
                "remove it from text_columns"
            )
    factor = config.effective_outlier_factor
    numeric_steps = [
        f"{config.numeric_imputation} imputation"
        + (f" ({config.fill_value_numeric:g})" if config.numeric_imputation == "constant" else ""),
    ]
    if factor is not None:
        numeric_steps.insert(0, f"{config.outliers} clipping (factor {factor:g})")
    if config.scaling != "none":
        numeric_steps.append(f"{config.scaling} scaling")
    cap = f", at most {config.max_categories} categories" if config.max_categories else ""
    categorical_treatment = (
        f"{config.categorical_imputation} imputation"
        + (f" ({config.fill_value_categorical!r})" if config.categorical_imputation == "constant" else "")
        + (
            f", one-hot{cap}, unknown → all zeros"
            if config.encoding == "onehot"
            else f", ordinal codes{cap}, unknown → -1"
        )
    )
    plans = []
    for name, kind in types.items():
        missing = int(train_X[name].isna().sum())
        indicator = False
        if missing == len(train_X):
            path, treatment = PATH_DROPPED, "dropped: every value is missing in the train split"
        elif kind == DATETIME:
            path = PATH_DROPPED
            treatment = "dropped: a datetime is not a model input; derive features with date_parts"
        elif name in config.text_columns or (kind == TEXT and not config.text_columns):
            path = PATH_TEXT
            treatment = f"TF-IDF, at most {TEXT_MAX_FEATURES} terms, missing → empty text"
        elif kind == NUMERIC:
            path, treatment = PATH_NUMERIC, ", ".join(numeric_steps)
        elif kind == BOOLEAN:
            path, treatment = PATH_BOOLEAN, "0/1, most_frequent imputation"
        else:
            path, treatment = PATH_CATEGORICAL, categorical_treatment
            if kind == TEXT:
                treatment += " (free text, but text_columns names other columns)"
        if path != PATH_DROPPED and missing and config.add_missing_indicators:
            indicator = True
            treatment += ", + missing indicator"
        plans.append(ColumnPlan(name, kind, path, treatment, missing, indicator))
    if all(p.path == PATH_DROPPED for p in plans):
        raise InputDataError(
            "no usable feature column: "
            + "; ".join(f"{p.column!r} {p.treatment.removeprefix('dropped: ')}" for p in plans)
        )
    return plans


def _transformer_name(prefix: str, column: str) -> str:
    # ColumnTransformer reserves "__" in step names for set_params.
    return f"{prefix}_{column}".replace("__", "_")


def preprocessor_from_plan(plans: list[ColumnPlan], config: PreprocessConfig) -> ColumnTransformer:
    """The unfitted ColumnTransformer that carries out ``plans``."""

    def columns(path: str) -> list[str]:
        return [p.column for p in plans if p.path == path]

    max_categories = config.max_categories or None
    transformers: list[tuple[str, Any, Any]] = []
    if columns(PATH_NUMERIC):
        steps: list[tuple[str, Any]] = [
            ("as_float", FunctionTransformer(as_float, feature_names_out="one-to-one"))
        ]
        factor = config.effective_outlier_factor
        if factor is not None:
            steps.append(("clip", OutlierClipper(method=config.outliers, factor=factor)))
        steps.append(
            (
                "impute",
                SimpleImputer(strategy=config.numeric_imputation, fill_value=config.fill_value_numeric),
            )
        )
        scaler = make_scaler(config.scaling)
        if scaler is not None:
            steps.append(("scale", scaler))
        transformers.append(("num", Pipeline(steps), columns(PATH_NUMERIC)))
    if columns(PATH_CATEGORICAL):
        encoder = (
            OneHotEncoder(handle_unknown="ignore", max_categories=max_categories, sparse_output=False)
            if config.encoding == "onehot"
            else OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, max_categories=max_categories
            )
        )
        categorical = Pipeline(
            [
                ("as_str", FunctionTransformer(as_category_strings, feature_names_out="one-to-one")),
                (
                    "impute",
                    SimpleImputer(
                        strategy=config.categorical_imputation, fill_value=config.fill_value_categorical
                    ),
                ),
                ("encode", encoder),
            ]
        )
        transformers.append(("cat", categorical, columns(PATH_CATEGORICAL)))
    if columns(PATH_BOOLEAN):
        boolean = Pipeline(
            [
                ("as_float", FunctionTransformer(as_float, feature_names_out="one-to-one")),
                ("impute", SimpleImputer(strategy="most_frequent")),
            ]
        )
        transformers.append(("bool", boolean, columns(PATH_BOOLEAN)))
    for name in columns(PATH_TEXT):
        # A scalar column selector hands the transformer a 1-D Series, as TF-IDF expects.
        transformers.append((_transformer_name("text", name), TfidfColumn(TEXT_MAX_FEATURES), name))
    with_indicator = [p.column for p in plans if p.missing_indicator]
    if with_indicator:
        indicator = Pipeline(
            [
                ("as_nan", FunctionTransformer(missing_as_nan, feature_names_out="one-to-one")),
                ("indicate", MissingIndicator(features="all", error_on_new=False)),
                ("as_float", FunctionTransformer(as_float, feature_names_out="one-to-one")),
            ]
        )
        transformers.append(("missing", indicator, with_indicator))
    preprocessor = ColumnTransformer(
        transformers,
        remainder="drop",
        sparse_threshold=0.0,
        verbose_feature_names_out=output_feature_name,
    )
    return preprocessor.set_output(transform="pandas")


def build_preprocessor(train_X: pd.DataFrame, config: PreprocessConfig) -> ColumnTransformer:
    """The unfitted preprocessing transformer for ``train_X`` (features only: no label, no
    ``drop_columns``). Its column paths are decided from ``train_X``, so pass the train split."""
    return preprocessor_from_plan(plan_columns(train_X, config), config)


def fit_preprocessor(train_X: pd.DataFrame, config: PreprocessConfig) -> ColumnTransformer:
    """The preprocessing transformer, fitted on ``train_X`` only."""
    return build_preprocessor(train_X, config).fit(train_X)


@dataclass(frozen=True)
class PreprocessResult:
    """What ``preprocess`` produced: the raw splits, the fitted transformer, and how it decided."""

    config: PreprocessConfig
    task: str
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    preprocessor: ColumnTransformer
    column_plan: tuple[ColumnPlan, ...]
    feature_names: tuple[str, ...]
    split_method: str
    label_summary: dict[str, dict[str, Any]]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def splits(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    @property
    def row_counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.splits.items()}

    @property
    def input_columns(self) -> list[str]:
        return [str(c) for c in self.preprocessor.feature_names_in_]


def preprocess(df: pd.DataFrame, config: PreprocessConfig) -> PreprocessResult:
    """Split ``df`` into raw train / validation / test rows and fit the transformer on train only.

    Everything is checked before anything is fitted: the label column (present, no missing value,
    two classes or more for classification), the columns named in ``drop_columns``,
    ``text_columns`` and ``time_column``, and whether the data can be split as asked.
    """
    _check_not_empty(df)
    y = check_label(df, config.label_column, what="dataset", task=config.task)
    require_columns(df, list(config.drop_columns), what="dataset", parameter="drop_columns")
    require_columns(df, list(config.text_columns), what="dataset", parameter="text_columns")
    if config.time_column:
        require_columns(df, [config.time_column], what="dataset", parameter="time_column")
    task = resolve_task(y, config.task)
    split = _split(df, y, task, config)
    train_X, _ = features_and_label(split.train, config)
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
    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    return PreprocessResult(
        config=config,
        task=task,
        train=split.train,
        validation=split.validation,
        test=split.test,
        preprocessor=preprocessor,
        column_plan=tuple(full_plan),
        feature_names=tuple(str(n) for n in preprocessor.get_feature_names_out()),
        split_method=split.method,
        label_summary={name: _label_summary(part[config.label_column], task) for name, part in parts.items()},
        notes=(*split.notes, *datetime_notes),
        warnings=dropped_warnings,
    )


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
