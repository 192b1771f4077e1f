"""Datasets as Parquet files with their schema and provenance, shared by every stage."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError

# Logical column types, the vocabulary of schemas, statistics and preprocessing.
NUMERIC = "numeric"
CATEGORICAL = "categorical"
BOOLEAN = "boolean"
DATETIME = "datetime"
TEXT = "text"
LOGICAL_TYPES = (NUMERIC, CATEGORICAL, BOOLEAN, DATETIME, TEXT)

# A string column is free text (TF-IDF) rather than a category when its values are mostly
# distinct and have several words on average.
_TEXT_MIN_DISTINCT_SHARE = 0.5
_TEXT_MIN_MEAN_WORDS = 3.0


def logical_type(series: pd.Series) -> str:
    """The logical type of a column: numeric, categorical, boolean, datetime or text."""
    if pd.api.types.is_bool_dtype(series):
        return BOOLEAN
    if pd.api.types.is_datetime64_any_dtype(series):
        return DATETIME
    if pd.api.types.is_numeric_dtype(series):
        return NUMERIC
    values = series.dropna()
    if not len(values):
        return CATEGORICAL
    # Decided on the distinct values first: checking every row's type and word count took most of
    # a 1M-row pipeline's time, and a low-cardinality column (the common case) needs neither.
    try:
        distinct = pd.unique(values)
    except TypeError:  # unhashable values (lists, dicts) are not text
        return CATEGORICAL
    if not all(isinstance(v, str) for v in distinct):
        return CATEGORICAL
    if len(distinct) / len(values) < _TEXT_MIN_DISTINCT_SHARE:
        return CATEGORICAL
    return TEXT if values.str.split().str.len().mean() >= _TEXT_MIN_MEAN_WORDS else CATEGORICAL


def column_types(df: pd.DataFrame) -> dict[str, str]:
    """Logical type of every column, in column order."""
    return {str(name): logical_type(df[name]) for name in df.columns}


def content_hash(df: pd.DataFrame) -> str:
    """sha256 of a DataFrame's content (column names, dtypes and values, row order included).

    Independent of the Parquet writer, so the same data always hashes the same way.
    """
    digest = hashlib.sha256()
    for name in df.columns:
        digest.update(f"{name}\x00{df[name].dtype}\x00".encode())
    if len(df):
        hashed = pd.util.hash_pandas_object(df, index=False, categorize=False)
        digest.update(np.ascontiguousarray(hashed.to_numpy()).tobytes())
    return digest.hexdigest()


def dataset_metadata(df: pd.DataFrame, source: str | None = None) -> dict[str, Any]:
    """The provenance recorded on every Dataset artifact."""
    meta: dict[str, Any] = {
        "rows": len(df),
        "columns": int(df.shape[1]),
        "column_types": column_types(df),
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "content_hash": content_hash(df),
    }
    if source is not None:
        meta["source"] = source
    return meta


def write_dataset(df: pd.DataFrame, path: str | os.PathLike, source: str | None = None) -> dict[str, Any]:
    """Write ``df`` as one Parquet file at ``path`` and return its metadata.

    The file appears whole or not at all: it is written beside its final name and renamed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        df.to_parquet(partial, index=False)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return dataset_metadata(df, source)


def read_dataset(path: str | os.PathLike, *, what: str = "dataset") -> pd.DataFrame:
    """Read a Parquet dataset written by ``write_dataset``."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise InputDataError(f"{what} {path}: no such file") from exc
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputDataError(f"{what} {path} is not a readable Parquet file: {exc}") from exc


def require_columns(
    df: pd.DataFrame, columns: list[str] | tuple[str, ...], *, what: str, parameter: str
) -> None:
    """Raise an InputDataError naming ``parameter`` when any of ``columns`` is not in ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputDataError(
            f"{parameter}: column(s) {', '.join(map(repr, missing))} not in the {what}; "
            f"it has: {', '.join(map(str, df.columns))}"
        )
