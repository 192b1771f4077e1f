"""The functions behind the FunctionTransformers of the exported model (stable import paths:
saved models pickle them by name)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

# Numbers as people write them in tables: "3,750", "1 234.5", "$1,200.50", "12%", "-0.5e3". A
# comma is read as a thousands separator only between groups of three digits, so "1,5" (a decimal
# comma) is not silently read as 15: it is no number at all.
SEPARATED_NUMBER = re.compile(r"^\s*[-+]?[$€£¥]?\s*\d{1,3}(?:[,\s']\d{3})+(?:\.\d+)?\s*%?\s*$")
DECORATED_NUMBER = re.compile(r"^\s*[-+]?[$€£¥]\s*\d+(?:\.\d+)?\s*$|^\s*[-+]?\d+(?:\.\d+)?\s*%\s*$")
PLAIN_NUMBER = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_NUMBER_DECORATION = re.compile(r"[\s$€£¥%,']")
_TRUE_STRINGS = frozenset({"true", "t", "yes", "y", "1"})
_FALSE_STRINGS = frozenset({"false", "f", "no", "n", "0"})


def as_float(X: Any) -> pd.DataFrame:
    """Numbers and booleans (nullable ones included) as float64, missing values as NaN."""
    return pd.DataFrame(X).astype("float64")


def parse_numbers(X: Any) -> pd.DataFrame:
    """Columns declared numeric (``column_types``) as float64: numbers as they are, numbers written
    as text ("3,750", "$1,200.50", "12%" → 12.0) parsed, anything else (junk, "1,5") NaN."""
    frame = pd.DataFrame(X)
    return pd.DataFrame(
        {name: _number_column(frame[name]) for name in frame.columns}, index=frame.index
    ).astype("float64")


def _number_column(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    values = series.astype(object)
    texts = values.map(lambda v: isinstance(v, str))
    numbers = pd.to_numeric(values.where(~texts), errors="coerce").astype("float64")
    strings = values[texts].astype(str)
    readable = (
        strings.str.match(PLAIN_NUMBER)
        | strings.str.match(SEPARATED_NUMBER)
        | strings.str.match(DECORATED_NUMBER)
    )
    parsed = pd.to_numeric(strings[readable].str.replace(_NUMBER_DECORATION, "", regex=True), errors="coerce")
    numbers.loc[parsed.index] = parsed.astype("float64")
    return numbers


def parse_booleans(X: Any) -> pd.DataFrame:
    """Columns declared boolean (``column_types``) as 0/1 float64: booleans, 0 and 1, and the words
    true/false, yes/no, t/f, y/n in any case; anything else NaN."""
    frame = pd.DataFrame(X).astype(object)
    return frame.map(_boolean_value).astype("float64")


def _boolean_value(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return float(value)
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in _TRUE_STRINGS:
            return 1.0
        if word in _FALSE_STRINGS:
            return 0.0
    return float("nan")


def missing_as_nan(X: Any) -> pd.DataFrame:
    """Where each value is missing (None, pd.NA, NaN, NaT): float64 columns of NaN there and 0.0
    elsewhere, the input MissingIndicator needs.

    scikit-learn's imputers and MissingIndicator only recognise NaN, but Parquet and nullable
    dtypes give None and pd.NA. Only the missingness goes on: keeping the values would box them
    as objects to hold text and numbers in one array (measured on 200,000 rows x 25 columns:
    about 160 MiB more, and the indicator's fit and transform 1.0 s instead of 0.1 s).
    """
    frame = pd.DataFrame(X)
    return pd.DataFrame(
        np.where(frame.isna().to_numpy(), np.nan, 0.0), index=frame.index, columns=frame.columns
    )


def as_category_strings(X: Any) -> pd.DataFrame:
    """Category values as strings (encoders need one type per column), missing values as NaN."""
    frame = pd.DataFrame(X).astype(object)
    present = frame.notna()
    return frame.map(str).where(present, np.nan)


def output_feature_name(transformer_name: str, feature_name: str) -> str:
    """``<path>__<feature>``, as scikit-learn names it, minus MissingIndicator's long prefix."""
    if transformer_name == "missing":
        feature_name = feature_name.removeprefix("missingindicator_")
    return f"{transformer_name}__{feature_name}"
