"""What every reader's DataFrame goes through before it is written: one type per column.

Readers disagree on types at the edges: Parquet decimals arrive as Python ``Decimal`` objects (a
category to every later stage), JSON Lines can give a column numbers in some rows and strings in
others (Parquet cannot store that), nested Parquet columns hold lists and dicts (no stage can use
them, and the content hash fails on them), and shards of one dataset can give a column different
types. Each case is resolved here the way a user would expect, or refused naming the column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError, quoted

VALUES_IN_MESSAGE = 3


def one_type_per_column(df: pd.DataFrame, shown: str) -> pd.DataFrame:
    """``df`` with decimal columns as float64 and mixed number/text columns as text; an error
    naming nested (list, dict) columns."""
    nested = []
    for name in df.select_dtypes(include="object").columns:
        values = df[name].dropna()
        # pandas' C type inference first: a column of strings, the common case, costs no Python loop.
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred in ("string", "empty", "bytes", "datetime", "date", "time", "period"):
            continue
        if inferred == "decimal":
            # Parquet DECIMAL: exact to the cent, but every model takes floats.
            df[name] = values.astype("float64").reindex(df.index)
            continue
        if values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
            nested.append(name)
            continue
        categories = set(values.map(_value_category))
        if len(categories) > 1 or categories == {"big integer"}:
            # Numbers beside text in one column (JSON Lines: 1 and "one"), or integers past int64:
            # text, as a CSV reader gives it, so that validate_data can name what is not a number.
            df[name] = df[name].map(lambda v: v if v is None or isinstance(v, str) or v != v else str(v))
    if nested:
        examples = "; ".join(
            f"{name!r}: {quoted(df[name].dropna().iloc[0])}" for name in nested[:VALUES_IN_MESSAGE]
        )
        raise InputDataError(
            f"{shown}: column(s) {', '.join(map(repr, nested))} hold lists or records (nested values: "
            f"{examples}); no stage can use them: flatten them into plain columns upstream, or drop them"
        )
    return df


def _value_category(value: object) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return "big integer"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return type(value).__name__


def _kind(series: pd.Series) -> str:
    """numeric, boolean, datetime or text; '' for a column with no value (compatible with any)."""
    if series.isna().all():
        return ""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def check_shards(frames: Sequence[pd.DataFrame], names: Sequence[str], shown: str) -> None:
    """Refuse shards that give one column types that do not mix (numbers in one shard, text in
    another), naming the column, the shards and an example value; numbers of different widths
    (int64, float64) and columns missing from a shard entirely mix."""
    first_seen: dict[str, tuple[str, str]] = {}
    for frame, shard in zip(frames, names, strict=True):
        for column in frame.columns:
            kind = _kind(frame[column])
            if not kind:
                continue
            seen = first_seen.setdefault(str(column), (kind, shard))
            if seen[0] != kind:
                example = frame[column].dropna().iloc[0]
                raise InputDataError(
                    f"column {column!r} of {shown} is {seen[0]} in shard {seen[1]} but {kind} in shard "
                    f"{shard} (e.g. {quoted(example)}); make its values one type in every shard"
                )
