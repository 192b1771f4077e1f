"""The drift reference of each column, built a batch at a time (``ReferenceAccumulator``).

A numeric column keeps every finite value up to ``sketches.EXACT_VALUES`` (a built reference:
``sketches.exact_limit``, fewer for a table too wide for the allowance) and its entry is then
exactly what the whole column gives (the same sorted values, sample, quantiles, bins and counts);
beyond, it keeps a deterministic quantile sketch, and the entry's quantiles, bin edges and bin
counts come from it (within the rank error the entry states under ``estimates``), its stratified
sample is drawn by inverting the sketch's distribution at one seeded point in each stratum (as
``stratified_sample`` draws one value from each), and its mean and standard deviation come from
Chan's combination of batch moments. Counts, missing values, minimum and maximum are exact at any
size; the count of each value of a column with at most MAX_DISCRETE_VALUES values too.

A categorical column counts every category exactly up to ``sketches.EXACT_KEYS`` categories, then
keeps the most frequent in a Misra-Gries summary (the entry states how far a count may be low).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import (
    _TEXT_MIN_DISTINCT_SHARE,
    _TEXT_MIN_MEAN_WORDS,
    BOOLEAN,
    CATEGORICAL,
    DATETIME,
    NUMERIC,
    TEXT,
)
from mlstages.components.common.errors import InputDataError
from mlstages.components.common.hashing import numeric_hashes, string_hashes
from mlstages.components.common.reference import (
    CATEGORICAL_KIND,
    KIND_OF_TYPE,
    MAX_CATEGORIES,
    MAX_DISCRETE_VALUES,
    NUMERIC_KIND,
    QUANTILE_LEVELS,
    UNTESTED_KIND,
    _number,
    bin_counts_sorted,
    category_counts,
    category_key,
    finite_values,
    float_values,
    quantile_edges,
    stratified_sample,
    value_counts_sorted,
)
from mlstages.components.common.sketches import (
    EXACT_VALUES,
    QUANTILE_K,
    DistinctHashes,
    FrequentCounts,
    Moments,
    QuantileValues,
)


class NumericReference:
    """A numeric column's reference entry (``reference.py``'s module docstring says what it holds)."""

    def __init__(
        self, name: str, logical: str, exact_values: int = EXACT_VALUES, k: int = QUANTILE_K
    ) -> None:
        self.name = name
        self.logical = logical
        self.rows = 0
        self.values = QuantileValues(exact_values, k)
        self.moments = Moments()
        self.minimum: float | None = None
        self.maximum: float | None = None
        self.distinct = DistinctHashes(exact_values)
        # The count of each value while there are at most MAX_DISCRETE_VALUES of them; None after.
        self.discrete: dict[float, int] | None = {}

    def update(self, series: pd.Series, start: int) -> None:
        raw, not_numbers = float_values(series)
        if not_numbers:
            raise InputDataError(
                f"column {self.name!r} is declared {self.logical} but has value(s) that are not numbers, "
                f"such as {', '.join(not_numbers)}; fix the data or its declared type"
            )
        self.rows += len(series)
        values = finite_values(raw)
        if not len(values):
            return
        self.values.update(values, start)
        self.moments.update(values)
        low, high = float(values.min()), float(values.max())
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)
        self.distinct.update(numeric_hashes(values))
        if self.discrete is not None:
            distinct, counts = np.unique(values, return_counts=True)
            self._add_discrete(zip(distinct.tolist(), counts.tolist(), strict=True))

    def _add_discrete(self, pairs: Any) -> None:
        if self.discrete is None:
            return
        for value, count in pairs:
            self.discrete[value] = self.discrete.get(value, 0) + count
        if len(self.discrete) > MAX_DISCRETE_VALUES:
            self.discrete = None

    def merge(self, other: NumericReference) -> None:
        self.rows += other.rows
        self.values.merge(other.values)
        self.moments.merge(other.moments)
        for bound, pick in (("minimum", min), ("maximum", max)):
            mine, theirs = getattr(self, bound), getattr(other, bound)
            setattr(self, bound, theirs if mine is None else mine if theirs is None else pick(mine, theirs))
        self.distinct.merge(other.distinct)
        if other.discrete is None:
            self.discrete = None
        else:
            self._add_discrete(other.discrete.items())

    def entry(self, *, max_sample: int, bins: int, rng: np.random.Generator) -> dict[str, Any]:
        count = self.values.count
        entry: dict[str, Any] = {
            "type": self.logical,
            "kind": NUMERIC_KIND,
            "rows": self.rows,
            "count": count,
            "missing": int(self.rows - count),
        }
        if count == 0:
            return entry
        if self.values.exact:
            return _entry_from_sorted(entry, np.sort(self.values.values()), max_sample, bins, rng)
        sketch = self.values.sketch
        assert sketch is not None and self.minimum is not None and self.maximum is not None
        quantiles = sketch.quantiles(QUANTILE_LEVELS)
        entry["summary"] = {
            "mean": _number(self.moments.mean),
            "std": _number(self.moments.std(0) or 0.0),  # count > 0: std(0) is a number
            "min": self.minimum,
            "max": self.maximum,
            "quantiles": {
                f"{level:g}": float(q) for level, q in zip(QUANTILE_LEVELS, quantiles, strict=True)
            },
        }
        entry["distinct"] = round(self.distinct.count())
        if self.discrete is not None:
            entry["value_counts"] = {category_key(v): int(self.discrete[v]) for v in sorted(self.discrete)}
        # One value from each of max_sample equal-count strata, drawn through the sketch's
        # quantile function; the same single call on rng as stratified_sample makes.
        points = (np.arange(max_sample) + rng.random(max_sample)) / max_sample
        entry["sample"] = np.sort(sketch.quantiles(points)).tolist()
        edges = np.unique(sketch.quantiles(np.arange(1, bins) / bins))
        edges = edges[edges > self.minimum]
        entry["bin_edges"] = edges.tolist()
        below = sketch.ranks(edges, inclusive=False)
        entry["bin_counts"] = np.diff(np.concatenate(([0], below, [count]))).astype(int).tolist()
        method = f"deterministic quantile sketch, {sketch.k:,} items a level"
        entry["estimates"] = {
            "quantiles": {"method": method, "rank_error": sketch.rank_error / count},
            "bin_counts": {"method": method, "count_error": 2 * sketch.rank_error},
            "sample": {"method": "the sketch's quantile function at one seeded point in each stratum"},
        }
        if not self.distinct.exact:
            entry["estimates"]["distinct"] = {"relative_standard_error": self.distinct.relative_error}
        return entry


def _entry_from_sorted(
    entry: dict[str, Any], values: np.ndarray, max_sample: int, bins: int, rng: np.random.Generator
) -> dict[str, Any]:
    """The entry of a numeric column from all its finite values, sorted."""
    distinct, distinct_counts = value_counts_sorted(values)
    entry["summary"] = {
        "mean": _number(values.mean()),
        "std": _number(values.std()),
        "min": float(values[0]),
        "max": float(values[-1]),
        "quantiles": {
            f"{level:g}": float(q)
            for level, q in zip(QUANTILE_LEVELS, np.quantile(values, QUANTILE_LEVELS), strict=True)
        },
    }
    entry["distinct"] = len(distinct)
    if len(distinct) <= MAX_DISCRETE_VALUES:
        entry["value_counts"] = {
            category_key(v): int(c) for v, c in zip(distinct.tolist(), distinct_counts.tolist(), strict=True)
        }
    entry["sample"] = stratified_sample(values, max_sample, rng).tolist()
    edges = quantile_edges(values, bins)
    entry["bin_edges"] = edges.tolist()
    entry["bin_counts"] = bin_counts_sorted(values, edges).tolist()
    return entry


class CategoricalReference:
    """A categorical or boolean column's category counts; for a label of strings also what tells
    categories from free text (``datasets.logical_type``)."""

    def __init__(self, name: str, logical: str | None, exact_values: int = EXACT_VALUES) -> None:
        self.name = name
        self.logical = logical  # None: decided at the end, as logical_type decides (the label)
        self.dtype: Any = None
        self.rows = 0
        self.missing = 0
        self.counts = FrequentCounts()
        self.distinct = DistinctHashes(exact_values)
        self.all_str = True
        self.words = 0

    def update(self, series: pd.Series, start: int) -> None:
        if self.dtype is None or pd.api.types.is_bool_dtype(self.dtype):
            self.dtype = series.dtype  # bool with gaps comes as object: the whole column is object
        counts, missing = category_counts(series)
        self.rows += len(series)
        self.missing += missing
        self.counts.update_mapping(counts)
        self.distinct.update(string_hashes(np.array(list(counts), dtype=object)))
        if self.logical is None and self.all_str:
            values = series.dtype.categories if isinstance(series.dtype, pd.CategoricalDtype) else series
            self.all_str = pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")
            self.words += sum(len(key.split()) * count for key, count in counts.items())

    def merge(self, other: CategoricalReference) -> None:
        if self.dtype is None or pd.api.types.is_bool_dtype(self.dtype):
            self.dtype = other.dtype
        self.rows += other.rows
        self.missing += other.missing
        self.counts.merge(other.counts)
        self.distinct.merge(other.distinct)
        self.all_str = self.all_str and other.all_str
        self.words += other.words

    def logical_type(self) -> str:
        if self.logical is not None:
            return self.logical
        if self.dtype is not None and pd.api.types.is_bool_dtype(self.dtype):
            return BOOLEAN
        count = self.rows - self.missing
        if not count or not self.all_str or self.distinct.count() / count < _TEXT_MIN_DISTINCT_SHARE:
            return CATEGORICAL
        return TEXT if self.words / count >= _TEXT_MIN_MEAN_WORDS else CATEGORICAL

    def entry(self, **_: Any) -> dict[str, Any]:
        logical = self.logical_type()
        if KIND_OF_TYPE[logical] != CATEGORICAL_KIND:
            return _untested(logical, self.rows, self.missing)
        kept = dict(self.counts.top(MAX_CATEGORIES))
        entry = {
            "type": logical,
            "kind": CATEGORICAL_KIND,
            "rows": self.rows,
            "count": int(self.rows - self.missing),
            "missing": self.missing,
            "distinct": round(self.distinct.count()),
            "counts": kept,
            "other": int(self.counts.total - sum(kept.values())),
        }
        if not self.counts.exact:
            entry["estimates"] = {
                "counts": {
                    "method": f"Misra-Gries summary of {self.counts.capacity:,} counters",
                    "count_error": self.counts.count_error,
                }
            }
            if not self.distinct.exact:
                entry["estimates"]["distinct"] = {"relative_standard_error": self.distinct.relative_error}
        return entry


class UntestedReference:
    """Datetime and text columns: only their missing values."""

    def __init__(self, name: str, logical: str) -> None:
        self.name = name
        self.logical = logical
        self.rows = 0
        self.missing = 0

    def update(self, series: pd.Series, start: int) -> None:
        self.rows += len(series)
        self.missing += int(series.isna().sum())

    def merge(self, other: UntestedReference) -> None:
        self.rows += other.rows
        self.missing += other.missing

    def entry(self, **_: Any) -> dict[str, Any]:
        return _untested(self.logical, self.rows, self.missing)


def _untested(logical: str, rows: int, missing: int) -> dict[str, Any]:
    return {
        "type": logical,
        "kind": UNTESTED_KIND,
        "rows": rows,
        "count": int(rows - missing),
        "missing": missing,
    }


ColumnReference = NumericReference | CategoricalReference | UntestedReference


def column_accumulator(name: str, logical: str, exact_values: int = EXACT_VALUES) -> ColumnReference:
    kind = KIND_OF_TYPE[logical]
    if kind == NUMERIC_KIND:
        return NumericReference(name, logical, exact_values)
    if kind == CATEGORICAL_KIND:
        return CategoricalReference(name, logical, exact_values)
    return UntestedReference(name, logical)


def label_accumulator(name: str, dtype: Any, exact_values: int = EXACT_VALUES) -> ColumnReference:
    """The label's accumulator, chosen as ``logical_type`` would from its dtype; a string label is
    told from free text at the end."""
    if pd.api.types.is_bool_dtype(dtype):
        return CategoricalReference(name, None, exact_values)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return UntestedReference(name, DATETIME)
    if pd.api.types.is_numeric_dtype(dtype):
        return NumericReference(name, NUMERIC, exact_values)
    return CategoricalReference(name, None, exact_values)


class ReferenceAccumulator:
    """The reference of the training data, a batch at a time: ``update`` with each batch,
    ``merge`` with accumulators of other rows, ``result`` (``reference.build_reference``'s entries)."""

    def __init__(
        self, input_columns: Mapping[str, str], label_column: str | None, exact_values: int = EXACT_VALUES
    ) -> None:
        self.columns = {
            str(name): column_accumulator(str(name), logical, exact_values)
            for name, logical in input_columns.items()
        }
        self.exact_values = exact_values
        self.label_column = label_column
        self.label: ColumnReference | None = None
        self.rows = 0

    def update(self, batch: pd.DataFrame, start: int | None = None) -> None:
        start = self.rows if start is None else start
        for name, column in self.columns.items():
            column.update(batch[name], start)
        if self.label_column is not None:
            series = batch[self.label_column]
            if self.label is None:
                self.label = label_accumulator(self.label_column, series.dtype, self.exact_values)
            self.label.update(series, start)
        self.rows += len(batch)

    def merge(self, other: ReferenceAccumulator) -> None:
        for name, column in self.columns.items():
            column.merge(other.columns[name])  # type: ignore[arg-type]
        if other.label is not None:
            if self.label is None:
                self.label = other.label
            else:
                self.label.merge(other.label)  # type: ignore[arg-type]
        self.rows += other.rows

    def entries(
        self, *, max_sample: int, bins: int, seed: int
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The column entries in input order, then the label's, drawing the samples from one
        generator seeded with ``seed`` in that order."""
        rng = np.random.default_rng(seed)
        columns = {
            name: column.entry(max_sample=max_sample, bins=bins, rng=rng)
            for name, column in self.columns.items()
        }
        label = (
            self.label.entry(max_sample=max_sample, bins=bins, rng=rng) if self.label is not None else None
        )
        return columns, label
