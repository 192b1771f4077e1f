"""The column plan (what happens to each raw column) and the ColumnTransformer built from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
)

from mlstages.components.common.column_checks import check_declared_values
from mlstages.components.common.datasets import (
    BOOLEAN,
    DATETIME,
    NUMERIC,
    TEXT,
    column_types,
    require_columns,
)
from mlstages.components.common.errors import InputDataError
from mlstages.components.common.estimators.functions import (
    as_category_strings,
    as_float,
    missing_as_nan,
    output_feature_name,
    parse_booleans,
    parse_numbers,
)
from mlstages.components.common.estimators.outliers import OutlierClipper
from mlstages.components.common.estimators.scalers import make_scaler
from mlstages.components.common.estimators.text import TEXT_MAX_FEATURES, TfidfColumn
from mlstages.components.common.labels import (
    check_label,
)
from mlstages.components.preprocess.config import (
    PATH_BOOLEAN,
    PATH_CATEGORICAL,
    PATH_DROPPED,
    PATH_NUMERIC,
    PATH_TEXT,
    PreprocessConfig,
)


@dataclass(frozen=True)
class ColumnPlan:
    """What the transformer does with one column of the raw data."""

    column: str
    logical_type: str
    path: str
    treatment: str
    missing_in_train: int
    missing_indicator: bool = False
    # The column's raw values are text that column_types declares numeric or boolean: the
    # transformer parses them (parse_numbers, parse_booleans) before anything else.
    parsed: bool = False


def features_and_label(
    df: pd.DataFrame, config: PreprocessConfig, excluded: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.Series]:
    """The transformer's input X (all columns but the label, ``drop_columns``, the columns
    column_types ignores and ``excluded``) and the label."""
    y = check_label(df, config.label_column, what="data", task=None)
    left_out = (*config.drop_columns, *config.ignored_columns, *excluded)
    dropped = [c for c in dict.fromkeys(left_out) if c in df.columns]
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
    declared = {name: kind for name, kind in config.column_types.items() if name in train_X.columns}
    check_declared_values(train_X, declared)
    read_types = column_types(train_X)
    types = {name: declared.get(name, kind) for name, kind in read_types.items()}
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
        parsed = (kind == NUMERIC and read_types[name] not in (NUMERIC, BOOLEAN)) or (
            kind == BOOLEAN and read_types[name] != BOOLEAN
        )
        if missing == len(train_X):
            path, treatment = PATH_DROPPED, "dropped: every value is missing in the train split"
        elif kind == DATETIME:
            path = PATH_DROPPED
            treatment = "dropped: a datetime is not a model input; derive features with date_parts"
        elif (
            name in config.text_columns
            or declared.get(name) == TEXT
            or (kind == TEXT and not config.text_columns)
        ):
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
        if parsed and path != PATH_DROPPED:
            treatment = f"{_parsing_note(train_X[name], kind)}, {treatment}"
        if name in declared:
            treatment += f" (column_types: {declared[name]}; read as {read_types[name]})"
        if path != PATH_DROPPED and missing and config.add_missing_indicators:
            indicator = True
            treatment += ", + missing indicator"
        plans.append(ColumnPlan(name, kind, path, treatment, missing, indicator, parsed))
    if all(p.path == PATH_DROPPED for p in plans):
        raise InputDataError(
            "no usable feature column: "
            + "; ".join(f"{p.column!r} {p.treatment.removeprefix('dropped: ')}" for p in plans)
        )
    return plans


def _parsing_note(values: pd.Series, kind: str) -> str:
    parse, what = (parse_numbers, "numbers") if kind == NUMERIC else (parse_booleans, "true/false")
    unread = int((values.notna() & parse(values.to_frame())[values.name].isna()).sum())
    note = f"parsed as {what} from text"
    return note + (f" ({unread} value(s) that do not parse → missing)" if unread else "")


def _transformer_name(prefix: str, column: str) -> str:
    # ColumnTransformer reserves "__" in step names for set_params.
    return f"{prefix}_{column}".replace("__", "_")


def preprocessor_from_plan(plans: list[ColumnPlan], config: PreprocessConfig) -> ColumnTransformer:
    """The unfitted ColumnTransformer that carries out ``plans``."""

    def columns(path: str, parsed: bool = False) -> list[str]:
        return [p.column for p in plans if p.path == path and p.parsed == parsed]

    max_categories = config.max_categories or None
    transformers: list[tuple[str, Any, Any]] = []
    # Columns whose text is parsed get blocks of their own, so that the numeric and boolean blocks
    # keep the plain float conversion that fast_transform compiles for single-row serving.
    for name, parser, parsed in (("num", as_float, False), ("num_text", parse_numbers, True)):
        if columns(PATH_NUMERIC, parsed):
            transformers.append((name, _numeric_steps(parser, config), columns(PATH_NUMERIC, parsed)))
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
    for name, parser, parsed in (("bool", as_float, False), ("bool_text", parse_booleans, True)):
        if columns(PATH_BOOLEAN, parsed):
            boolean = Pipeline(
                [
                    ("as_float", FunctionTransformer(parser, feature_names_out="one-to-one")),
                    ("impute", SimpleImputer(strategy="most_frequent")),
                ]
            )
            transformers.append((name, boolean, columns(PATH_BOOLEAN, parsed)))
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


def _numeric_steps(parser: Any, config: PreprocessConfig) -> Pipeline:
    steps: list[tuple[str, Any]] = [("as_float", FunctionTransformer(parser, feature_names_out="one-to-one"))]
    factor = config.effective_outlier_factor
    if factor is not None:
        steps.append(("clip", OutlierClipper(method=config.outliers, factor=factor)))
    steps.append(
        ("impute", SimpleImputer(strategy=config.numeric_imputation, fill_value=config.fill_value_numeric))
    )
    scaler = make_scaler(config.scaling)
    if scaler is not None:
        steps.append(("scale", scaler))
    return Pipeline(steps)


def build_preprocessor(train_X: pd.DataFrame, config: PreprocessConfig) -> ColumnTransformer:
    """The unfitted preprocessing transformer for ``train_X`` (features only: no label, no
    ``drop_columns``). Its column paths are decided from ``train_X``, so pass the train split."""
    return preprocessor_from_plan(plan_columns(train_X, config), config)


def fit_preprocessor(train_X: pd.DataFrame, config: PreprocessConfig) -> ColumnTransformer:
    """The preprocessing transformer, fitted on ``train_X`` only."""
    return build_preprocessor(train_X, config).fit(train_X)
