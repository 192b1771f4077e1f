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
    """Each row's slice label (a string, as a categorical: 10M test rows hold a byte each rather
    than a string each) and a note on how the slices were formed. Labels are made once per
    distinct value."""
    codes, uniques = pd.factorize(series)  # -1 where missing
    missing = codes < 0
    distinct = len(uniques)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and distinct > MAX_NUMERIC_SLICE_VALUES:
        bins = pd.qcut(series, q=QUANTILE_BINS, duplicates="drop")
        names = [str(c) for c in bins.cat.categories]
        codes = bins.cat.codes.to_numpy().astype(np.int64)
        note = f"numeric with {distinct} distinct values: cut into {bins.cat.categories.size} quantile bins"
    else:
        # Distinct values may share a label (1 and 1.0): one slice each label.
        labels_of_values = [_slice_label(v) for v in uniques]
        names = list(dict.fromkeys(labels_of_values))
        position = {name: i for i, name in enumerate(names)}
        codes = np.append(np.array([position[n] for n in labels_of_values], dtype=np.int64), -1)[codes]
        note = f"{distinct} distinct value(s), one slice each"
        if not numeric and distinct > MAX_CATEGORY_SLICES:
            counts = np.bincount(codes[~missing], minlength=len(names))
            # Most frequent first; ties in order of first appearance.
            kept = np.argsort(-counts, kind="stable")[:MAX_CATEGORY_SLICES]
            remap = np.full(len(names) + 1, len(kept), dtype=np.int64)  # the rest: (other)
            remap[kept] = np.arange(len(kept))
            remap[-1] = -1
            codes = remap[codes]
            names = [names[i] for i in kept] + [OTHER_SLICE]
            note = (
                f"{distinct} distinct values: the {MAX_CATEGORY_SLICES} most frequent are slices, "
                f"the rest form {OTHER_SLICE!r}"
            )
    if missing.any():
        note += f"; {int(missing.sum())} missing value(s) form the {MISSING_SLICE!r} slice"
        codes = np.where(missing, len(names), codes)
        names = [*names, MISSING_SLICE]
    labels = pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))
    return pd.Series(labels, index=series.index, name=series.name), note


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
        codes = labels.cat.codes.to_numpy()
        for value in _slice_order(df[column], labels):
            idx = np.flatnonzero(codes == labels.cat.categories.get_loc(value))
            result.append(
                SliceMetrics(column=str(column), value=value, rows=len(idx), metrics=metrics_of(idx))
            )
    return result


def _slice_order(series: pd.Series, labels: pd.Series) -> list[str]:
    """Quantile bins in numeric order, values in sorted order, then (other) and (missing)."""
    categories = labels.cat.categories
    present = {
        str(categories[code])
        for code in np.flatnonzero(np.bincount(labels.cat.codes, minlength=len(categories)))
    }
    special = [s for s in (OTHER_SLICE, MISSING_SLICE) if s in present]
    values = present - set(special)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        first_value = {label: series[(labels == label).to_numpy()].min() for label in values}
        ordered = sorted(values, key=lambda label: first_value[label])
    else:
        ordered = sorted(values)
    return ordered + special
