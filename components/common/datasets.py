"""What a dataset is: logical column types, content hash, provenance and lineage, shared by every
stage. Its files (a folder of Parquet parts, read a batch at a time) are dataset_files.py's."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError
from mlstages.components.common.logical_types import BOOLEAN, CATEGORICAL, DATETIME, NUMERIC, TEXT

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


# The key of the Parquet schema metadata that carries a dataset's lineage: kept in the file, so
# every stage that reads the data reads where it came from, on a cluster as under kfp.local.
LINEAGE_KEY = b"mlstages.lineage"


def source_lineage(df: pd.DataFrame, uri: str, **more: Any) -> dict[str, Any]:
    """One source of a dataset, as lineage records it: its URI, rows, columns and content hash."""
    return {
        "uri": uri,
        "rows": len(df),
        "columns": int(df.shape[1]),
        "content_hash": content_hash(df),
        **more,
    }


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
