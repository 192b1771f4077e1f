"""Slices: the values of a column that the metrics are computed per."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.evaluate.metrics import _native

MISSING_SLICE = "(missing)"


OTHER_SLICE = "(other)"


# A numeric slice column with more distinct values than this is cut into quantile bins.
MAX_NUMERIC_SLICE_VALUES = 10


QUANTILE_BINS = 4


# A categorical slice column keeps its most frequent values as slices; the rest form "(other)".
MAX_CATEGORY_SLICES = 50


@dataclass(frozen=True)
class SliceMetrics:
    column: str
    value: str
    rows: int
    metrics: dict[str, float | None]


def slice_values(series: pd.Series) -> tuple[pd.Series, str]:
    """Each row's slice label (a string) and a note on how the slices were formed."""
    missing = series.isna()
    distinct = series.dropna().nunique()
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and distinct > MAX_NUMERIC_SLICE_VALUES:
        bins = pd.qcut(series, q=QUANTILE_BINS, duplicates="drop")
        labels = bins.astype(str).where(~missing, MISSING_SLICE)
        note = f"numeric with {distinct} distinct values: cut into {bins.cat.categories.size} quantile bins"
    else:
        labels = series.map(_slice_label).where(~missing, MISSING_SLICE)
        note = f"{distinct} distinct value(s), one slice each"
        if not numeric and distinct > MAX_CATEGORY_SLICES:
            kept = set(labels[~missing].value_counts().index[:MAX_CATEGORY_SLICES])
            labels = labels.where(missing | labels.isin(kept), OTHER_SLICE)
            note = (
                f"{distinct} distinct values: the {MAX_CATEGORY_SLICES} most frequent are slices, "
                f"the rest form {OTHER_SLICE!r}"
            )
    if missing.any():
        note += f"; {int(missing.sum())} missing value(s) form the {MISSING_SLICE!r} slice"
    return labels.astype(str), note


def _slice_label(value: Any) -> str:
    value = _native(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def slice_notes(df: pd.DataFrame, slice_columns: Sequence[str]) -> dict[str, str]:
    return {column: slice_values(df[column])[1] for column in slice_columns}


def _slices(df: pd.DataFrame, slice_columns: Sequence[str], metrics_of: Any) -> list[SliceMetrics]:
    result = []
    for column in slice_columns:
        labels, _ = slice_values(df[column])
        for value in _slice_order(df[column], labels):
            idx = np.flatnonzero((labels == value).to_numpy())
            result.append(
                SliceMetrics(column=str(column), value=value, rows=len(idx), metrics=metrics_of(idx))
            )
    return result


def _slice_order(series: pd.Series, labels: pd.Series) -> list[str]:
    """Quantile bins in numeric order, values in sorted order, then (other) and (missing)."""
    present = set(labels)
    special = [s for s in (OTHER_SLICE, MISSING_SLICE) if s in present]
    values = present - set(special)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        first_value = {label: series[labels == label].min() for label in values}
        ordered = sorted(values, key=lambda label: first_value[label])
    else:
        ordered = sorted(values)
    return ordered + special
