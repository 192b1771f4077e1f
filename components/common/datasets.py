"""Datasets as Parquet files with their schema and provenance, shared by every stage."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
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


# The key of the Parquet schema metadata that carries a dataset's lineage: kept in the file, so
# every stage that reads the data reads where it came from, on a cluster as under kfp.local.
LINEAGE_KEY = b"mlstages.lineage"


def write_dataset(
    df: pd.DataFrame,
    path: str | os.PathLike,
    source: str | None = None,
    lineage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``df`` as one Parquet file at ``path`` and return its metadata; ``lineage`` (where the
    rows came from, JSON) is kept in the file for ``read_lineage``.

    The file appears whole or not at all: it is written beside its final name and renamed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if lineage:
            kept = dict(table.schema.metadata or {})
            kept[LINEAGE_KEY] = json.dumps(dict(lineage), sort_keys=True, default=str).encode()
            table = table.replace_schema_metadata(kept)
        pq.write_table(table, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return dataset_metadata(df, source)


def read_lineage(path: str | os.PathLike) -> dict[str, Any]:
    """The lineage ``write_dataset`` kept in a Parquet dataset; empty for a file without one."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception:  # pyarrow raises several unrelated types for a bad file; read_dataset names it
        return {}
    raw = metadata.get(LINEAGE_KEY)
    return json.loads(raw) if raw else {}


def source_lineage(df: pd.DataFrame, uri: str, **more: Any) -> dict[str, Any]:
    """One source of a dataset, as lineage records it: its URI, rows, columns and content hash."""
    return {
        "uri": uri,
        "rows": len(df),
        "columns": int(df.shape[1]),
        "content_hash": content_hash(df),
        **more,
    }


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
