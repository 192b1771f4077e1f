"""Statistics of a DataFrame, one JSON document per column (as TFX's StatisticsGen).

``compute_statistics`` describes a table held in memory; ``streaming.StatisticsAccumulator``
builds the same document a batch at a time, which is what validate_data does with a dataset
folder. Both are the same code: ``compute_statistics`` is the accumulator fed one batch.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlstages.components.validate_data.column_statistics import Limits
from mlstages.components.validate_data.config import TOP_CATEGORIES
from mlstages.components.validate_data.streaming import StatisticsAccumulator, with_text_column_names

# Kept under its old name: the checks and the schema import it from here.
_with_text_column_names = with_text_column_names


def compute_statistics(df: pd.DataFrame, limits: Limits | None = None) -> dict[str, Any]:
    """Describe ``df``: dataset-level counts and per-column statistics, as plain JSON values.

    Numeric columns: min, max, mean, std (pandas' sample std), quantiles p01..p99, share of zeros,
    IQR outliers (see OUTLIER_RULE) and a histogram; moments and quantiles use finite values only
    and ``infinite`` counts the rest. String, categorical and boolean columns: the top
    TOP_CATEGORIES values with their counts (text also its mean length in words). Datetime
    columns: min and max. Values that are undefined (no data) are None, never NaN.

    Every figure is exact while the column's summaries are under ``limits`` (a million values a
    column by default); beyond, quantiles, histogram and outlier counts, distinct counts, top
    values and the duplicate count are estimates, and the entry's ``estimates`` says which and
    within what error. ``exact`` (top level) is True when no figure is an estimate.
    """
    accumulator = StatisticsAccumulator(limits)
    accumulator.update(df, start=0)
    return accumulator.result()


def _top_values(labels: pd.Series) -> list[dict[str, Any]]:
    counts = labels.value_counts()
    # value_counts breaks ties arbitrarily; sort them by value so the statistics are deterministic.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
    return [{"value": value, "count": int(count)} for value, count in ordered]


def category_labels(values: pd.Series) -> pd.Series:
    """Non-numeric values as the strings a schema domain holds (``str`` of each value)."""
    return values.map(str).astype(object)
