"""compute_statistics as it was before the statistics streamed (commit 6636c59), kept unchanged as
the oracle of tests/unit/test_streaming_statistics.py: on small data the streamed statistics must
give exactly this document."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import (
    DATETIME,
    NUMERIC,
    TEXT,
    logical_type,
)
from mlstages.components.common.errors import (
    InputDataError,
)
from mlstages.components.validate_data.config import HISTOGRAM_BINS, IQR_FACTOR, OUTLIER_RULE, TOP_CATEGORIES


def compute_statistics(df: pd.DataFrame) -> dict[str, Any]:
    """Describe ``df``: dataset-level counts and per-column statistics, as plain JSON values.

    Numeric columns: min, max, mean, std (pandas' sample std), quantiles p01..p99, share of zeros,
    IQR outliers (see OUTLIER_RULE) and a histogram; moments and quantiles use finite values only
    and ``infinite`` counts the rest. String, categorical and boolean columns: the top
    TOP_CATEGORIES values with their counts (text also its mean length in words). Datetime
    columns: min and max. Values that are undefined (no data) are None, never NaN.
    """
    df = _with_text_column_names(df)
    rows = len(df)
    duplicates = int(_comparable(df).duplicated().sum()) if rows else 0
    return {
        "dataset": {
            "rows": rows,
            "columns": int(df.shape[1]),
            "duplicate_rows": duplicates,
            "duplicate_share": duplicates / rows if rows else None,
        },
        "outlier_rule": OUTLIER_RULE,
        "columns": {str(name): _column_statistics(df[name]) for name in df.columns},
    }


def _column_statistics(series: pd.Series) -> dict[str, Any]:
    kind = logical_type(series)
    total = len(series)
    present = series.dropna()
    missing = total - len(present)
    stats: dict[str, Any] = {
        "logical_type": kind,
        "dtype": str(series.dtype),
        "count": len(present),
        "missing": missing,
        "missing_share": missing / total if total else None,
    }
    if kind == NUMERIC:
        stats["distinct"] = int(present.nunique())
        stats.update(_numeric_statistics(present))
    elif kind == DATETIME:
        stats["distinct"] = int(present.nunique())
        stats["min"] = present.min().isoformat() if len(present) else None
        stats["max"] = present.max().isoformat() if len(present) else None
    else:
        labels = category_labels(present)
        stats["distinct"] = int(labels.nunique())
        stats["top_values"] = _top_values(labels)
        if kind == TEXT:
            stats["mean_words"] = _float(labels.str.split().str.len().mean())
    return stats


def _numeric_statistics(present: pd.Series) -> dict[str, Any]:
    values = present.to_numpy(dtype="float64")
    finite = values[np.isfinite(values)]
    stats: dict[str, Any] = {"infinite": int(len(values) - len(finite))}
    if not len(finite):
        stats.update(
            min=None,
            max=None,
            mean=None,
            std=None,
            quantiles=None,
            zeros_share=None,
            outliers=None,
            outlier_share=None,
            outlier_bounds=None,
            histogram=None,
        )
        return stats
    q01, q25, q50, q75, q99 = (float(q) for q in np.quantile(finite, [0.01, 0.25, 0.5, 0.75, 0.99]))
    stats.update(
        min=float(finite.min()),
        max=float(finite.max()),
        mean=_float(finite.mean()),
        std=_float(finite.std(ddof=1)) if len(finite) > 1 else None,
        quantiles={"p01": q01, "p25": q25, "p50": q50, "p75": q75, "p99": q99},
        zeros_share=float((finite == 0).sum() / len(values)),
    )
    iqr = q75 - q25
    if iqr > 0:
        lower, upper = q25 - IQR_FACTOR * iqr, q75 + IQR_FACTOR * iqr
        outliers = int(((values < lower) | (values > upper)).sum())
        stats.update(
            outliers=outliers,
            outlier_share=outliers / len(values),
            outlier_bounds={"lower": lower, "upper": upper},
        )
    else:
        stats.update(outliers=None, outlier_share=None, outlier_bounds=None)
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    stats["histogram"] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
    return stats


def _top_values(labels: pd.Series) -> list[dict[str, Any]]:
    counts = labels.value_counts()
    # value_counts breaks ties arbitrarily; sort them by value so the statistics are deterministic.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
    return [{"value": value, "count": int(count)} for value, count in ordered]


def category_labels(values: pd.Series) -> pd.Series:
    """Non-numeric values as the strings a schema domain holds (``str`` of each value)."""
    return values.map(str).astype(object)


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with unhashable cells (lists, dicts from Parquet) replaced by their repr."""
    result = df
    for name in df.columns:
        column = df[name]
        if column.dtype == object and not column.map(_is_hashable).all():
            if result is df:
                result = df.copy()
            result[name] = column.map(lambda v: v if _is_hashable(v) else repr(v))
    return result


def _is_hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _with_text_column_names(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with column names as strings (schemas are JSON), which must be unique."""
    names = pd.Index([str(c) for c in df.columns])
    duplicated = sorted(set(names[names.duplicated()]))
    if duplicated:
        raise InputDataError(
            f"the dataset has duplicate column names: {', '.join(map(repr, duplicated))}; "
            "rename them so every column has its own name"
        )
    if all(isinstance(c, str) for c in df.columns):
        return df
    return df.set_axis(list(names), axis=1)
