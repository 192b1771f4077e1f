"""One column's statistics, a batch at a time: what ``compute_statistics`` reports for a column,
built by ``update`` on successive batches and ``merge`` of parts.

Counts, missing values, infinities, zeros, minimum, maximum and (for text) words are exact at any
size. Mean and standard deviation come from every value while the column has at most
``Limits.exact_values`` finite values (the same floating-point sums as the whole column gives),
then from Chan's combination of per-batch moments (within about 1e-12 relative of the two-pass
figures). Quantiles, histogram counts, IQR outlier counts, distinct counts and top values are exact
while their summaries are (see ``common.sketches``), estimates beyond with their bounds written
beside them under ``estimates``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
from mlstages.components.common.hashing import numeric_hashes, string_hashes, value_hashes
from mlstages.components.common.labels import (
    _MIN_ROWS_PER_CLASS_ON_AVERAGE,
    CLASSIFICATION,
    MAX_CLASSES_FOR_NUMERIC_LABEL,
    REGRESSION,
)
from mlstages.components.common.sketches import (
    DISTINCT_K,
    EXACT_DISTINCT,
    EXACT_KEYS,
    EXACT_VALUES,
    FREQUENT_CAPACITY,
    QUANTILE_K,
    DistinctHashes,
    FrequentCounts,
    Moments,
    QuantileValues,
)
from mlstages.components.validate_data.config import HISTOGRAM_BINS, IQR_FACTOR, TOP_CATEGORIES

QUANTILE_LEVELS = (0.01, 0.25, 0.5, 0.75, 0.99)
_QUANTILE_NAMES = ("p01", "p25", "p50", "p75", "p99")


@dataclass(frozen=True)
class Limits:
    """Where each summary stops being exact (see ``common.sketches``); ``row_hashes`` None sizes
    the duplicate-row summary from the task's memory allowance."""

    exact_values: int = EXACT_VALUES
    quantile_k: int = QUANTILE_K
    exact_distinct: int = EXACT_DISTINCT
    distinct_k: int = DISTINCT_K
    exact_keys: int = EXACT_KEYS
    frequent_capacity: int = FREQUENT_CAPACITY
    row_hashes: int | None = None


@dataclass(frozen=True)
class ColumnFacts:
    """What the schema and the anomaly checks need beyond the statistics document.

    categories: every distinct value as text, sorted, when they were counted exactly (string,
        categorical and boolean columns), else None. all_bool: every present value is a bool (a
        boolean column with gaps is stored as objects). label_kind: classification or regression,
        by ``labels.detect_task``'s rule. rows/distinct/distinct_exact/minimum/maximum/integer: the
        whole column, for the identifier check when the value checks see a sample. all_str: every
        present value is a str.
    """

    categories: tuple[str, ...] | None
    all_bool: bool
    label_kind: str
    rows: int
    missing: int
    distinct: int
    distinct_exact: bool
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    all_str: bool = False


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _distinct_estimate(distinct: DistinctHashes) -> dict[str, Any]:
    return {
        "method": f"KMV sketch of the {distinct.k:,} smallest 64-bit hashes",
        "relative_standard_error": distinct.relative_error,
    }


class ColumnStatistics:
    """The base of the per-type accumulators: rows and missing values."""

    kind = CATEGORICAL

    def __init__(self, name: str, dtype: Any, limits: Limits) -> None:
        self.name = name
        self.dtype = dtype
        self.limits = limits
        self.rows = 0
        self.missing = 0
        self.distinct = DistinctHashes(limits.exact_distinct, limits.distinct_k)

    @property
    def count(self) -> int:
        return self.rows - self.missing

    def accept(self, dtype: Any) -> None:
        """Take a batch of ``dtype``: the column's dtype becomes the one pandas gives the whole
        table. Parquet's int64 comes as float64 in a batch with missing values and bool as object,
        so those pairs widen; any other change is an error."""
        if str(dtype) == str(self.dtype):
            return
        numeric = [
            pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d)
            for d in (self.dtype, dtype)
        ]
        if all(numeric) and isinstance(self, NumericStatistics):
            self.dtype = np.dtype(np.float64)
            return
        pair = {pd.api.types.is_bool_dtype(d) or pd.api.types.is_object_dtype(d) for d in (self.dtype, dtype)}
        if pair == {True} and isinstance(self, CategoryStatistics):
            self.dtype = np.dtype(object)
            return
        raise InputDataError(
            f"column {self.name!r} is {self.dtype} in some rows of the dataset and {dtype} in others; "
            "give the column one type throughout (column_types can declare it)"
        )

    def merge(self, other: ColumnStatistics) -> None:
        if type(other) is not type(self):
            raise InputDataError(
                f"column {self.name!r} is {self.dtype} in one part of the dataset and {other.dtype} in "
                "another; give the column one type throughout (column_types can declare it)"
            )
        self.accept(other.dtype)
        self.rows += other.rows
        self.missing += other.missing
        self.distinct.merge(other.distinct)

    def _base(self, kind: str) -> dict[str, Any]:
        return {
            "logical_type": kind,
            "dtype": str(self.dtype),
            "count": self.count,
            "missing": self.missing,
            "missing_share": self.missing / self.rows if self.rows else None,
        }

    def distinct_count(self) -> int:
        return round(self.distinct.count())

    def facts(self) -> ColumnFacts:
        return ColumnFacts(
            categories=None,
            all_bool=False,
            label_kind=CLASSIFICATION,
            rows=self.rows,
            missing=self.missing,
            distinct=self.distinct_count(),
            distinct_exact=self.distinct.exact,
        )


class NumericStatistics(ColumnStatistics):
    kind = NUMERIC

    def __init__(self, name: str, dtype: Any, limits: Limits) -> None:
        super().__init__(name, dtype, limits)
        self.positive_infinite = 0
        self.negative_infinite = 0
        self.zeros = 0
        self.whole = True
        self.minimum: float | None = None
        self.maximum: float | None = None
        self.moments = Moments()
        self.values = QuantileValues(limits.exact_values, limits.quantile_k)

    def update(self, series: pd.Series, start: int) -> None:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        self.rows += len(values)
        self.missing += int(missing.sum())
        finite_mask = np.isfinite(values)
        finite = values[finite_mask] if not finite_mask.all() else values
        self.positive_infinite += int(np.count_nonzero(values == np.inf))
        self.negative_infinite += int(np.count_nonzero(values == -np.inf))
        if len(finite):
            self.zeros += int(np.count_nonzero(finite == 0))
            low, high = float(finite.min()), float(finite.max())
            self.minimum = low if self.minimum is None else min(self.minimum, low)
            self.maximum = high if self.maximum is None else max(self.maximum, high)
            if self.whole:
                self.whole = bool(np.all(finite == np.round(finite)))
            self.moments.update(finite)
            self.values.update(finite, start)
        if missing.all():
            return
        if series.dtype == np.float64:
            self.distinct.update(numeric_hashes(values[~missing] if missing.any() else values))
        else:
            self.distinct.update(value_hashes(series[~missing] if missing.any() else series))

    def merge(self, other: ColumnStatistics) -> None:
        super().merge(other)
        assert isinstance(other, NumericStatistics)
        self.positive_infinite += other.positive_infinite
        self.negative_infinite += other.negative_infinite
        self.zeros += other.zeros
        self.whole = self.whole and other.whole
        for bound, pick in (("minimum", min), ("maximum", max)):
            mine, theirs = getattr(self, bound), getattr(other, bound)
            setattr(self, bound, theirs if mine is None else mine if theirs is None else pick(mine, theirs))
        self.moments.merge(other.moments)
        self.values.merge(other.values)

    def result(self) -> dict[str, Any]:
        stats = self._base(NUMERIC)
        stats["distinct"] = self.distinct_count()
        present = self.count
        stats["infinite"] = self.positive_infinite + self.negative_infinite
        if not self.values.count:
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
            return self._with_estimates(stats)
        if self.values.exact:
            finite = self.values.values()
            quantiles = [float(q) for q in np.quantile(finite, QUANTILE_LEVELS)]
            mean, std = _float(finite.mean()), _float(finite.std(ddof=1)) if len(finite) > 1 else None
        else:
            assert self.values.sketch is not None
            quantiles = [float(q) for q in self.values.sketch.quantiles(QUANTILE_LEVELS)]
            mean, std = _float(self.moments.mean), _float(self.moments.std(1))
        stats.update(
            min=self.minimum,
            max=self.maximum,
            mean=mean,
            std=std,
            quantiles=dict(zip(_QUANTILE_NAMES, quantiles, strict=True)),
            zeros_share=float(self.zeros / present),
        )
        q25, q75 = quantiles[1], quantiles[3]
        iqr = q75 - q25
        if iqr > 0:
            lower, upper = q25 - IQR_FACTOR * iqr, q75 + IQR_FACTOR * iqr
            outliers = self._outliers(lower, upper)
            stats.update(
                outliers=outliers,
                outlier_share=outliers / present,
                outlier_bounds={"lower": lower, "upper": upper},
            )
        else:
            stats.update(outliers=None, outlier_share=None, outlier_bounds=None)
        stats["histogram"] = self._histogram()
        return self._with_estimates(stats)

    def _outliers(self, lower: float, upper: float) -> int:
        infinite = (self.positive_infinite if upper < np.inf else 0) + (
            self.negative_infinite if lower > -np.inf else 0
        )
        if self.values.exact:
            finite = self.values.values()
            return int(((finite < lower) | (finite > upper)).sum()) + infinite
        assert self.values.sketch is not None
        below, at_most_upper = (
            self.values.sketch.ranks([lower], inclusive=False)[0],
            self.values.sketch.ranks([upper], inclusive=True)[0],
        )
        return int(below + (self.values.count - at_most_upper)) + infinite

    def _histogram(self) -> dict[str, list[Any]]:
        if self.values.exact:
            counts, edges = np.histogram(self.values.values(), bins=HISTOGRAM_BINS)
        else:
            assert self.values.sketch is not None
            # The edges depend on the exact minimum and maximum alone, as np.histogram's do.
            edges = np.histogram_bin_edges(np.array([self.minimum, self.maximum]), bins=HISTOGRAM_BINS)
            below = self.values.sketch.ranks(edges[1:-1], inclusive=False)
            counts = np.diff(np.concatenate(([0], below, [self.values.count])))
        return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}

    def _with_estimates(self, stats: dict[str, Any]) -> dict[str, Any]:
        estimates: dict[str, Any] = {}
        if not self.values.exact:
            assert self.values.sketch is not None
            error = self.values.sketch.rank_error
            method = f"deterministic quantile sketch, {self.values.sketch.k:,} items a level"
            estimates["quantiles"] = {
                "method": method,
                "rank_error": error / self.values.count,
                "note": "each quantile is a value whose rank is within rank_error (a share of the "
                "finite values) of the level asked for; a bound, not a confidence interval",
            }
            estimates["histogram"] = {"method": method, "count_error": 2 * error}
            if stats.get("outliers") is not None:
                estimates["outliers"] = {"method": method, "count_error": 2 * error}
            estimates["moments"] = {"method": "Chan et al.'s parallel combination of batch moments"}
        if not self.distinct.exact:
            estimates["distinct"] = _distinct_estimate(self.distinct)
        if estimates:
            stats["estimates"] = estimates
        return stats

    def facts(self) -> ColumnFacts:
        distinct = self.distinct_count()
        count = self.count
        whole = self.whole
        # labels.detect_task on the whole column: whole numbers, few of them, each seen twice.
        classes = (
            whole
            and distinct <= MAX_CLASSES_FOR_NUMERIC_LABEL
            and count >= _MIN_ROWS_PER_CLASS_ON_AVERAGE * distinct
        )
        return ColumnFacts(
            categories=None,
            all_bool=False,
            label_kind=CLASSIFICATION if count and classes else REGRESSION,
            rows=self.rows,
            missing=self.missing,
            distinct=distinct,
            distinct_exact=self.distinct.exact,
            minimum=self.minimum,
            maximum=self.maximum,
            integer=pd.api.types.is_integer_dtype(self.dtype),
        )


class DatetimeStatistics(ColumnStatistics):
    kind = DATETIME

    def __init__(self, name: str, dtype: Any, limits: Limits) -> None:
        super().__init__(name, dtype, limits)
        self.minimum: pd.Timestamp | None = None
        self.maximum: pd.Timestamp | None = None

    def update(self, series: pd.Series, start: int) -> None:
        present = series.dropna()
        self.rows += len(series)
        self.missing += len(series) - len(present)
        if not len(present):
            return
        low, high = present.min(), present.max()
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)
        self.distinct.update(value_hashes(present))

    def merge(self, other: ColumnStatistics) -> None:
        super().merge(other)
        assert isinstance(other, DatetimeStatistics)
        for bound, pick in (("minimum", min), ("maximum", max)):
            mine, theirs = getattr(self, bound), getattr(other, bound)
            setattr(self, bound, theirs if mine is None else mine if theirs is None else pick(mine, theirs))

    def result(self) -> dict[str, Any]:
        stats = self._base(DATETIME)
        stats["distinct"] = self.distinct_count()
        stats["min"] = self.minimum.isoformat() if self.minimum is not None else None
        stats["max"] = self.maximum.isoformat() if self.maximum is not None else None
        if not self.distinct.exact:
            stats["estimates"] = {"distinct": _distinct_estimate(self.distinct)}
        return stats


class CategoryStatistics(ColumnStatistics):
    """String, categorical and boolean columns, counted by their text (``str`` of each value)."""

    def __init__(self, name: str, dtype: Any, limits: Limits) -> None:
        super().__init__(name, dtype, limits)
        self.counts = FrequentCounts(limits.exact_keys, limits.frequent_capacity)
        self.all_str = True
        self.all_bool = True
        self.hashable = True
        self.words = 0

    def update(self, series: pd.Series, start: int) -> None:
        missing = series.isna().to_numpy()
        present = series[~missing] if missing.any() else series
        self.rows += len(series)
        self.missing += int(missing.sum())
        if not len(present):
            return
        try:
            raw = present.value_counts(sort=False)
        except TypeError:  # unhashable cells (lists, dicts from Parquet) are counted by their text
            self.hashable = self.all_str = self.all_bool = False
            raw = present.map(str).value_counts(sort=False)
        raw = raw[raw.to_numpy() > 0]  # a categorical dtype lists its unused categories too
        counts = raw.to_numpy()
        strings = self.hashable and pd.api.types.infer_dtype(raw.index, skipna=False) == "string"
        if strings:  # the common case, checked in C: the values are their own labels
            labels = raw.index.tolist()
            self.all_bool = False
        elif self.hashable:
            values = list(raw.index)
            self.all_bool = self.all_bool and all(isinstance(v, (bool, np.bool_)) for v in values)
            labels = [str(v) for v in values]
        else:
            labels = list(raw.index)  # already the text of each value
        self.all_str = self.all_str and strings
        self.counts.update(labels, counts)
        self.distinct.update(string_hashes(np.array(labels, dtype=object)))
        if self.all_str:
            self.words += int(np.dot(word_counts(labels), counts.astype(np.int64)))

    def merge(self, other: ColumnStatistics) -> None:
        super().merge(other)
        assert isinstance(other, CategoryStatistics)
        self.counts.merge(other.counts)
        self.all_str = self.all_str and other.all_str
        self.all_bool = self.all_bool and other.all_bool
        self.hashable = self.hashable and other.hashable
        self.words += other.words

    def logical_type(self) -> str:
        """``datasets.logical_type`` of the whole column."""
        if pd.api.types.is_bool_dtype(self.dtype):
            return BOOLEAN
        count = self.count
        if not count or not self.all_str or not self.hashable:
            return CATEGORICAL
        if self.distinct.count() / count < _TEXT_MIN_DISTINCT_SHARE:
            return CATEGORICAL
        return TEXT if self.words / count >= _TEXT_MIN_MEAN_WORDS else CATEGORICAL

    def result(self) -> dict[str, Any]:
        kind = self.logical_type()
        stats = self._base(kind)
        stats["distinct"] = self.distinct_count()
        stats["top_values"] = [{"value": v, "count": int(c)} for v, c in self.counts.top(TOP_CATEGORIES)]
        if kind == TEXT:
            stats["mean_words"] = _float(self.words / self.count)
        estimates: dict[str, Any] = {}
        if not self.counts.exact:
            estimates["top_values"] = {
                "method": f"Misra-Gries summary of {self.counts.capacity:,} counters",
                "count_error": self.counts.count_error,
                "note": "each count is at most count_error below the true count",
            }
        if not self.distinct.exact:
            estimates["distinct"] = _distinct_estimate(self.distinct)
        if estimates:
            stats["estimates"] = estimates
        return stats

    def facts(self) -> ColumnFacts:
        return ColumnFacts(
            categories=tuple(sorted(self.counts.keys())) if self.counts.exact else None,
            all_bool=self.all_bool and self.hashable,
            all_str=self.all_str and self.hashable,
            label_kind=CLASSIFICATION,
            rows=self.rows,
            missing=self.missing,
            distinct=self.distinct_count(),
            distinct_exact=self.distinct.exact,
        )


# The characters str.split() splits on below 128: \t \n \v \f \r, \x1c to \x1f and space.
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


def word_counts(texts: list[str]) -> np.ndarray:
    """``len(text.split())`` of each text, counted with numpy on the bytes when every text is
    ASCII (a Python split per value was most of the time of a text column)."""
    if not texts:
        return np.empty(0, dtype=np.int64)
    joined = "\x1f".join(texts)  # a separator str.split() splits on, so words never join
    if not joined.isascii():
        return np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
    space = _ASCII_SPACE[np.frombuffer(joined.encode("ascii"), dtype=np.uint8)]
    starts = ~space
    starts[1:] &= space[:-1]  # a word starts at a non-space after a space (or at the start)
    words = np.flatnonzero(starts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    begins = np.concatenate(([0], np.cumsum(lengths[:-1] + 1)))
    return np.searchsorted(words, begins + lengths) - np.searchsorted(words, begins)


def column_statistics(name: str, series: pd.Series, limits: Limits) -> ColumnStatistics:
    """The accumulator for a column of ``series``'s dtype."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return CategoryStatistics(name, dtype, limits)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DatetimeStatistics(name, dtype, limits)
    if pd.api.types.is_numeric_dtype(dtype):
        return NumericStatistics(name, dtype, limits)
    return CategoryStatistics(name, dtype, limits)
