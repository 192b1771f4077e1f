"""The current window, summarised a batch at a time for the drift tests (``WindowAccumulator``).

Each reference column gets what its tests read, accumulated over the batches:

- every kind: rows and missing values;
- numeric columns: the finite values (every one up to WINDOW_VALUES, a seeded uniform sample of
  WINDOW_VALUES beyond: what the Kolmogorov-Smirnov test and the Wasserstein distance read), the
  count in each of the reference's quantile bins and, for a column the reference counts by value,
  the count of each value (both exact at any size, the bins and values being known before the
  window is read), and the first values that are not numbers;
- categorical columns: the count of every category the reference knows, and of every new one up
  to NEW_CATEGORIES new ones (beyond, the rest share one "(new values)" bin).

So a window of up to a million rows gives exactly the figures the whole table gave, and a larger
one runs the value tests on a million-value sample (its notes say so) and every binned test on all
its rows. A window with too many numeric columns for a quarter of the task's memory allowance to
hold a million values of each (``window_values``) samples fewer values a column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.reference import (
    CATEGORICAL_KIND,
    NUMERIC_KIND,
    category_counts,
    category_key,
    finite_values,
    float_values,
)
from mlstages.components.common.sketches import EXACT_MEMORY_SHARE, SeededSample
from mlstages.components.monitor_drift.config import MAX_NEW_VALUE_BINS, NEW_VALUES

WINDOW_VALUES = 1 << 20
WINDOW_SEED = 0
# A sampled value is held with its key (16 bytes), up to twice the sample's size between shrinks.
_SAMPLE_BYTES_PER_VALUE = 32
# Fewer values than this would make the value tests' samples the noisy part of the comparison.
_MIN_WINDOW_VALUES = 16_384
NEW_CATEGORIES = 100_000
_EXAMPLES = 3


class ColumnWindow:
    """Rows and missing values of a column of the window; the base of the typed summaries."""

    def __init__(self) -> None:
        self.rows = 0
        self.missing = 0  # isna: None, NaN, NaT
        self.dtype: Any = None

    def _see(self, series: pd.Series) -> None:
        self.rows += len(series)
        self._see_dtype(series.dtype)

    def _see_dtype(self, dtype: Any) -> None:
        # The whole column's dtype: a bool or int column has batches of objects or floats where
        # values are missing, and pandas gives the whole table the wider type.
        if dtype is None:
            return
        if self.dtype is None or (
            pd.api.types.is_numeric_dtype(self.dtype) and not pd.api.types.is_numeric_dtype(dtype)
        ):
            self.dtype = dtype
        elif str(self.dtype) != str(dtype) and pd.api.types.is_numeric_dtype(dtype):
            if not pd.api.types.is_bool_dtype(self.dtype) and not pd.api.types.is_bool_dtype(dtype):
                self.dtype = np.dtype(np.float64)

    def merge(self, other: ColumnWindow) -> None:
        """Add the summary of the rows after this one's (the next part of the window): what
        ``update`` would have given on those rows, exactly while the summaries are under their
        bounds."""
        self.rows += other.rows
        self.missing += other.missing
        self._see_dtype(other.dtype)

    @property
    def numeric_dtype(self) -> bool:
        return self.dtype is not None and (
            pd.api.types.is_numeric_dtype(self.dtype) or pd.api.types.is_bool_dtype(self.dtype)
        )

    def update(self, series: pd.Series, positions: np.ndarray) -> None:
        self._see(series)
        self.missing += int(series.isna().sum())


def window_values(numeric_columns: int) -> int:
    """The values each of ``numeric_columns`` columns keeps for the value tests: WINDOW_VALUES, or
    fewer when that many of each would take more than EXACT_MEMORY_SHARE of the task's memory
    allowance."""
    from mlstages.components.common.memory import rows_within

    bytes_per_value = max(numeric_columns, 1) * _SAMPLE_BYTES_PER_VALUE
    return min(WINDOW_VALUES, rows_within(EXACT_MEMORY_SHARE, bytes_per_value, floor=_MIN_WINDOW_VALUES))


class NumericWindow(ColumnWindow):
    def __init__(self, entry: Mapping[str, Any], sample_values: int = WINDOW_VALUES) -> None:
        super().__init__()
        self.not_numbers: list[str] = []
        self.finite = 0
        self.values = SeededSample(sample_values, WINDOW_SEED)
        edges = entry.get("bin_edges")
        self.edges = np.asarray(edges, dtype=float) if edges is not None else None
        self.bin_counts = np.zeros(len(edges) + 1, dtype=np.int64) if edges is not None else None
        keys = entry.get("value_counts")
        self.discrete = DiscreteCounts(set(keys)) if keys is not None else None

    def update(self, series: pd.Series, positions: np.ndarray) -> None:
        self._see(series)
        raw, bad = float_values(series)
        if bad or self.not_numbers:
            # A type change: nothing else is compared, only examples are collected (the first
            # distinct ones in row order, as float_values gives them for the whole column).
            self.not_numbers += [v for v in bad if v not in self.not_numbers][
                : _EXAMPLES - len(self.not_numbers)
            ]
            return
        finite = np.isfinite(raw)
        values = raw if finite.all() else raw[finite]
        self.finite += len(values)
        self.values.update(values, positions if finite.all() else positions[finite])
        if self.edges is not None and self.bin_counts is not None:
            bins = np.searchsorted(self.edges, values, side="right")
            self.bin_counts += np.bincount(bins, minlength=len(self.bin_counts))
        if self.discrete is not None:
            self.discrete.update(values)

    def merge(self, other: ColumnWindow) -> None:
        assert isinstance(other, NumericWindow)
        super().merge(other)
        if not self.not_numbers:
            # Once a value is not a number nothing else is compared, as in ``update``.
            self.finite += other.finite
            self.values.merge(other.values)
            if self.bin_counts is not None and other.bin_counts is not None:
                self.bin_counts += other.bin_counts
            if self.discrete is not None and other.discrete is not None:
                self.discrete.merge(other.discrete)
        self.not_numbers += [v for v in other.not_numbers if v not in self.not_numbers][
            : _EXAMPLES - len(self.not_numbers)
        ]

    def sorted_values(self) -> np.ndarray:
        return self.values.sorted_values()


class DiscreteCounts:
    """The count of each value of a column the reference counted by value: every distinct value
    while there are at most the reference's values plus MAX_NEW_VALUE_BINS, then the reference's
    values one by one and all others in one NEW_VALUES bin (``tests_by_type``'s rule)."""

    def __init__(self, reference_keys: set[str]) -> None:
        self.keys = sorted(reference_keys)
        numbers = np.array([float(k) for k in self.keys])
        self._order = np.argsort(numbers, kind="stable")
        self._numbers = numbers[self._order]
        self.known = np.zeros(len(self.keys), dtype=np.int64)
        self.total = 0
        self.limit = len(self.keys) + MAX_NEW_VALUE_BINS
        self.every: dict[float, int] | None = {}

    def update(self, values: np.ndarray) -> None:
        if not len(values):
            return
        self.total += len(values)
        if len(self._numbers):
            where = np.minimum(np.searchsorted(self._numbers, values), len(self._numbers) - 1)
            match = self._numbers[where] == values
            counts = np.bincount(where[match], minlength=len(self._numbers))
            self.known[self._order] += counts
        if self.every is not None:
            distinct, counts = np.unique(values, return_counts=True)
            for value, count in zip(distinct.tolist(), counts.tolist(), strict=True):
                self.every[value] = self.every.get(value, 0) + count
            if len(self.every) > self.limit:
                self.every = None

    def merge(self, other: DiscreteCounts) -> None:
        self.total += other.total
        self.known += other.known
        if self.every is None or other.every is None:
            self.every = None
            return
        for value, count in other.every.items():
            self.every[value] = self.every.get(value, 0) + count
        if len(self.every) > self.limit:
            self.every = None

    def counts(self) -> dict[str, int]:
        if self.every is not None:
            result: dict[str, int] = {}
            for value in sorted(self.every):
                key = category_key(value)
                result[key] = result.get(key, 0) + self.every[value]
            return result
        result = {k: int(c) for k, c in zip(self.keys, self.known.tolist(), strict=True) if c}
        pooled = self.total - sum(result.values())
        if pooled:
            result[NEW_VALUES] = pooled
        return result


class CategoricalWindow(ColumnWindow):
    def __init__(self, entry: Mapping[str, Any]) -> None:
        super().__init__()
        self.known = set(entry.get("counts") or {})
        self.counts: dict[str, int] = {}
        self.new_kept = 0  # new categories counted one by one
        self.new = 0  # rows of the categories beyond NEW_CATEGORIES new ones, pooled

    def update(self, series: pd.Series, positions: np.ndarray) -> None:
        self._see(series)
        counts, missing = category_counts(series)
        self.missing += missing
        self._count(counts)

    def merge(self, other: ColumnWindow) -> None:
        assert isinstance(other, CategoricalWindow)
        super().merge(other)
        self._count(other.counts)  # in the order the other part first saw them
        self.new += other.new

    def _count(self, counts: Mapping[str, int]) -> None:
        kept = self.counts
        for key, count in counts.items():
            if key in kept:
                kept[key] += count
            elif key in self.known:
                kept[key] = count
            elif self.new_kept < NEW_CATEGORIES:
                kept[key] = count
                self.new_kept += 1
            else:
                self.new += count

    def category_counts(self) -> dict[str, int]:
        """Counts per category, most frequent first (ties by key), as ``category_counts`` gives."""
        ordered = dict(sorted(self.counts.items(), key=lambda item: (-item[1], item[0])))
        if self.new:
            ordered[NEW_VALUES] = ordered.get(NEW_VALUES, 0) + self.new
        return ordered


class WindowAccumulator:
    """The summaries of the window's columns that the reference compares (see the module
    docstring); ``columns`` are the window's columns, ``label_column`` the label to compare too.
    ``sample_values``: the values a numeric column keeps for the value tests; by default
    ``window_values`` of the window's numeric columns, from this task's allowance (hand the task's
    figure to the parts' summaries on other workers)."""

    def __init__(
        self,
        reference: Mapping[str, Any],
        columns: Sequence[str],
        label_column: str | None,
        sample_values: int | None = None,
    ) -> None:
        self.columns = [str(c) for c in columns]
        present = set(self.columns)
        entries = {name: reference["columns"][name] for name in reference["features"] if name in present}
        self.label_column = label_column
        if label_column and reference.get("label") and label_column in present:
            entries[label_column] = reference["label"]
        numeric = sum(entry["kind"] == NUMERIC_KIND for entry in entries.values())
        self.sample_values = sample_values or window_values(numeric)
        self.summaries: dict[str, ColumnWindow] = {
            name: _summary(entry, self.sample_values) for name, entry in entries.items()
        }
        self.rows = 0

    @property
    def needed_columns(self) -> list[str]:
        return list(self.summaries)

    def update(self, batch: pd.DataFrame, start: int | None = None) -> None:
        start = self.rows if start is None else start
        positions = np.arange(start, start + len(batch), dtype=np.int64)
        for name, summary in self.summaries.items():
            summary.update(batch[name], positions)
        self.rows += len(batch)

    def merge(self, other: WindowAccumulator) -> None:
        """Add the window summary of the rows after this one's (the next part)."""
        for name, summary in self.summaries.items():
            summary.merge(other.summaries[name])
        self.rows += other.rows

    def summary(self, name: str) -> ColumnWindow | None:
        """The column's summary; None when the window lacks the column."""
        return self.summaries.get(name)


def _summary(entry: Mapping[str, Any], sample_values: int) -> ColumnWindow:
    if entry["kind"] == NUMERIC_KIND:
        return NumericWindow(entry, sample_values)
    if entry["kind"] == CATEGORICAL_KIND:
        return CategoricalWindow(entry)
    return ColumnWindow()


def finite_sorted(series: pd.Series) -> np.ndarray:
    """A column's finite values, sorted (what the value tests compare)."""
    raw, _ = float_values(series)
    return np.sort(finite_values(raw))
