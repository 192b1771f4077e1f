"""Mergeable summaries of columns too large to hold: exact while small, sketched beyond a bound.

Each summary takes values a batch at a time (``update``), absorbs another of its kind built from
other rows (``merge``) and answers at the end. Below its bound it keeps what it saw and its answers
are exact, the figures the whole column gives; beyond the bound it keeps a sketch and states the
error of what it answers:

- ``Moments``: count, mean and sum of squared deviations, combined with the parallel formula of
  Chan, Golub and LeVeque (1979); no bound, exact up to floating point.
- ``QuantileValues``: every value up to ``EXACT_VALUES``, then a ``QuantileSketch``. A table's
  statistics and drift reference use ``exact_limit`` instead: fewer exact values per column when
  the table is too wide for a quarter of the task's memory allowance to hold that many.
- ``QuantileSketch``: compactors as in Manku, Rajagopalan and Lindsay (1998) and KLL (Karnin, Lang
  and Liberty, 2016), with ``QUANTILE_K`` items a level, compacted with alternating (not random)
  offsets so the same data always gives the same answers. Every compaction of items of weight w
  moves any rank by at most w; the sketch adds those weights up, so ``rank_error`` is a
  deterministic bound, not a probability: at most about (2 + log2(n / batch)) / K of n values fed
  in batches, and 0.026% of the values on the 10M-row benchmark (its worst quantile was off by
  0.007%).
- ``DistinctHashes``: every distinct 64-bit hash up to ``EXACT_DISTINCT``, then the ``DISTINCT_K``
  smallest (a KMV / theta sketch: Bar-Yossef et al. 2002, Dasgupta et al. 2016), whose estimate
  has a relative standard error of 1/sqrt(K - 2), 0.78% for K = 16,384.
- ``FrequentCounts``: the count of every key up to ``EXACT_KEYS`` keys, then a weighted
  Misra-Gries summary of ``FREQUENT_CAPACITY`` counters (mergeable: Agarwal et al. 2012), where a
  key's count is low by at most ``count_error``, at most total / (capacity + 1).

Why not Apache DataSketches' KLL: its compactions draw coins from a generator seeded by the clock,
so the same dataset gives different quantiles from one run to the next (measured: p99 of 2M normal
values 2.33 and 2.22 in two runs at k = 200). Statistics and drift references are compared between
runs, so these sketches are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Values kept one by one before a column is sketched: 8 MiB a column.
EXACT_VALUES = 1 << 20
# Items a compactor level holds: a level is at most 128 KiB, and the rank error bound stays
# under 0.1% of the values up to a billion values (see the module docstring).
QUANTILE_K = 16_384
EXACT_DISTINCT = 1 << 20
DISTINCT_K = 16_384
EXACT_KEYS = 100_000
FREQUENT_CAPACITY = 10_000

# What a column's exact parts hold per value at most: the value (QuantileValues) and its hash,
# twice while new hashes wait beside the sorted ones (DistinctHashes). Measured: 22 bytes a value
# at the peak of validate_data on 1M rows x 150 numeric columns.
EXACT_BYTES_PER_VALUE = 24
# The share of the task's memory allowance the exact parts of a table's column summaries may
# take together.
EXACT_MEMORY_SHARE = 0.25

_U64 = np.uint64
_TWO_64 = float(1 << 64)


def exact_limit(columns: int) -> int:
    """The values (and distinct values) each of a table's ``columns`` summaries keeps exactly
    before it sketches: EXACT_VALUES, or fewer when that many for every column would take more
    than EXACT_MEMORY_SHARE of the task's memory allowance (a wide table); never fewer than the
    sketches themselves keep. Decided once in the task, so every part of the table, wherever an
    engine summarises it, is summarised with the same limit."""
    from mlstages.components.common.memory import rows_within

    floor = max(QUANTILE_K, DISTINCT_K)
    return min(
        EXACT_VALUES, rows_within(EXACT_MEMORY_SHARE, max(columns, 1) * EXACT_BYTES_PER_VALUE, floor=floor)
    )


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 that spreads any input evenly (so distinct
    values stay distinct and their hashes are uniform for the KMV sketch)."""
    z = np.asarray(values, dtype=_U64).copy()
    z ^= z >> _U64(30)
    z *= _U64(0xBF58476D1CE4E5B9)
    z ^= z >> _U64(27)
    z *= _U64(0x94D049BB133111EB)
    z ^= z >> _U64(31)
    return z


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted: ``np.unique`` by a sort, which for 64-bit hashes is tens of
    times faster than numpy 2's hash-based ``np.unique`` (1.5M uint64: 0.04 s against 1.65 s)."""
    if len(values) < 2:
        return values.copy()
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


# --- moments ---------------------------------------------------------------------------------------


@dataclass
class Moments:
    """Count, mean and M2 (the sum of squared deviations from the mean) of finite values."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, values: np.ndarray) -> None:
        if not len(values):
            return
        mean = float(values.mean())
        self._combine(len(values), mean, float(np.square(values - mean).sum()))

    def merge(self, other: Moments) -> None:
        self._combine(other.count, other.mean, other.m2)

    def _combine(self, count: int, mean: float, m2: float) -> None:
        if count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total

    def std(self, ddof: int) -> float | None:
        if self.count <= ddof:
            return None
        return math.sqrt(self.m2 / (self.count - ddof))


# --- quantiles -------------------------------------------------------------------------------------


class QuantileSketch:
    """Deterministic mergeable quantiles (see the module docstring); level h holds items of weight
    2**h, and ``rank_error`` bounds how far any estimated rank is from the true one."""

    def __init__(self, k: int = QUANTILE_K) -> None:
        if k < 2:
            raise ValueError(f"k={k} must be at least 2")
        self.k = k
        self.levels: list[np.ndarray] = [np.empty(0)]
        self._parity: list[int] = [0]
        self._pending: list[np.ndarray] = []
        self._pending_size = 0
        self.count = 0
        self.rank_error = 0

    def update(self, values: np.ndarray) -> None:
        if not len(values):
            return
        self._pending.append(np.asarray(values, dtype=np.float64))
        self._pending_size += len(values)
        self.count += len(values)
        if self._pending_size > self.k:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.levels[0] = np.concatenate([self.levels[0], *self._pending])
            self._pending, self._pending_size = [], 0
        level = 0
        while level < len(self.levels):
            if len(self.levels[level]) > self.k:
                self._compact(level)
            level += 1

    def _compact(self, level: int) -> None:
        items = np.sort(self.levels[level])
        # An odd item out stays, at its weight: copied, as a view would keep the whole sorted
        # level alive (measured: 300 MB of dead levels on 1M rows x 150 columns).
        kept = items[len(items) - len(items) % 2 :].copy()
        paired = items[: len(items) - len(kept)]
        # Every other item of the sorted level goes up at twice the weight; alternating the
        # starting offset keeps the result deterministic.
        promoted = paired[self._parity[level] :: 2]
        self._parity[level] ^= 1
        if level + 1 == len(self.levels):
            self.levels.append(np.empty(0))
            self._parity.append(0)
        self.levels[level] = kept
        self.levels[level + 1] = np.concatenate([self.levels[level + 1], promoted])
        self.rank_error += 1 << level

    def merge(self, other: QuantileSketch) -> None:
        other._flush()
        self._flush()
        while len(self.levels) < len(other.levels):
            self.levels.append(np.empty(0))
            self._parity.append(0)
        for level, items in enumerate(other.levels):
            self.levels[level] = np.concatenate([self.levels[level], items])
        self.count += other.count
        self.rank_error += other.rank_error
        self._flush()

    def _weighted(self) -> tuple[np.ndarray, np.ndarray]:
        """Every kept item, sorted, and the cumulative weight up to and including it."""
        self._flush()
        values = np.concatenate(self.levels)
        weights = np.concatenate(
            [np.full(len(items), 1 << level, dtype=np.int64) for level, items in enumerate(self.levels)]
        )
        order = np.argsort(values, kind="stable")
        return values[order], np.cumsum(weights[order])

    def ranks(self, points: Sequence[float] | np.ndarray, *, inclusive: bool) -> np.ndarray:
        """Estimated number of values below (or at most, ``inclusive``) each point, within
        ``rank_error``."""
        values, cumulative = self._weighted()
        where = np.searchsorted(
            values, np.asarray(points, dtype=np.float64), side="right" if inclusive else "left"
        )
        return np.where(where > 0, cumulative[np.maximum(where - 1, 0)], 0)

    def quantiles(self, levels: Sequence[float] | np.ndarray) -> np.ndarray:
        """For each level q, a value v whose true rank interval [#(< v), #(<= v)] comes within
        ``rank_error`` of q * count."""
        values, cumulative = self._weighted()
        if not len(values):
            return np.full(len(levels), np.nan)
        targets = np.asarray(levels, dtype=np.float64) * self.count
        index = np.searchsorted(cumulative, targets, side="left")
        return values[np.minimum(index, len(values) - 1)]


class QuantileValues:
    """Finite values of a column: every value, in row order, up to ``exact_limit``; beyond it a
    ``QuantileSketch``. Chunks remember the position of the batch they came from, so merged parts
    give the values in row order whatever the merge order (and the same floating-point sums)."""

    def __init__(self, exact_limit: int = EXACT_VALUES, k: int = QUANTILE_K) -> None:
        self.exact_limit = exact_limit
        self.k = k
        self.count = 0
        self._chunks: list[tuple[int, np.ndarray]] = []
        self.sketch: QuantileSketch | None = None

    @property
    def exact(self) -> bool:
        return self.sketch is None

    def update(self, values: np.ndarray, start: int) -> None:
        if not len(values):
            return
        self.count += len(values)
        if self.sketch is None:
            self._chunks.append((start, values))
            if self.count > self.exact_limit:
                self._to_sketch()
        else:
            self.sketch.update(values)

    def _to_sketch(self) -> None:
        sketch = QuantileSketch(self.k)
        for _, chunk in sorted(self._chunks, key=lambda item: item[0]):
            sketch.update(chunk)
        self._chunks = []
        self.sketch = sketch

    def merge(self, other: QuantileValues) -> None:
        self.count += other.count
        if self.sketch is None and other.sketch is None:
            self._chunks += other._chunks
            if self.count > self.exact_limit:
                self._to_sketch()
            return
        if self.sketch is None:
            self._to_sketch()
        assert self.sketch is not None
        if other.sketch is None:
            for _, chunk in sorted(other._chunks, key=lambda item: item[0]):
                self.sketch.update(chunk)
        else:
            self.sketch.merge(other.sketch)

    def values(self) -> np.ndarray:
        """Every value in row order (exact summaries only)."""
        if self.sketch is not None:
            raise RuntimeError("the values were sketched: only estimates are left")
        if not self._chunks:
            return np.empty(0)
        chunks = [c for _, c in sorted(self._chunks, key=lambda item: item[0])]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    @property
    def rank_error(self) -> int:
        return 0 if self.sketch is None else self.sketch.rank_error


# --- distinct values -------------------------------------------------------------------------------


class DistinctHashes:
    """Distinct uint64 hashes: all of them up to ``exact_limit``, then the ``k`` smallest."""

    def __init__(self, exact_limit: int = EXACT_DISTINCT, k: int = DISTINCT_K) -> None:
        if k < 3 or exact_limit < k:
            raise ValueError(f"need 3 <= k ({k}) <= exact_limit ({exact_limit})")
        self.exact_limit = exact_limit
        self.k = k
        self.exact = True
        self._main = np.empty(0, dtype=_U64)
        self._pending: list[np.ndarray] = []
        self._pending_size = 0

    def update(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        if not self.exact and len(self._main) >= self.k:
            hashes = hashes[hashes < self._main[self.k - 1]]
        self._pending.append(hashes)
        self._pending_size += len(hashes)
        if self._pending_size >= max(len(self._main), 1 << 16):
            self._compact()

    def _compact(self) -> None:
        if not self._pending:
            return
        self._main = sorted_unique(np.concatenate([self._main, *self._pending]))
        self._pending, self._pending_size = [], 0
        if self.exact and len(self._main) > self.exact_limit:
            self.exact = False
        if not self.exact:
            self._main = self._main[: self.k]

    def merge(self, other: DistinctHashes) -> None:
        other._compact()
        self._pending.append(other._main)
        self._pending_size += len(other._main)
        self.exact = self.exact and other.exact
        self._compact()

    def count(self) -> float:
        """The number of distinct hashes: exact (an int) or the KMV estimate (k - 1) / U(k)."""
        self._compact()
        if self.exact:
            return len(self._main)
        kth = float(self._main[self.k - 1]) + 1.0
        return (self.k - 1) * _TWO_64 / kth

    @property
    def relative_error(self) -> float:
        """Relative standard error of ``count`` (0 when exact)."""
        return 0.0 if self.exact else 1.0 / math.sqrt(self.k - 2)


# --- counts per key --------------------------------------------------------------------------------


class FrequentCounts:
    """Counts per key (strings): exact up to ``exact_limit`` keys, then a weighted Misra-Gries
    summary of ``capacity`` counters in which each key's count is low by at most ``count_error``.

    A few keys live in a dict; past ``_SERIES_AT`` keys in a pandas Series, where a hash group-by
    merges a batch of 100k new keys faster than a Python loop over a dict."""

    _SERIES_AT = 4_096

    def __init__(self, exact_limit: int = EXACT_KEYS, capacity: int = FREQUENT_CAPACITY) -> None:
        if capacity < 1 or exact_limit < capacity:
            raise ValueError(f"need 1 <= capacity ({capacity}) <= exact_limit ({exact_limit})")
        self.exact_limit = exact_limit
        self.capacity = capacity
        self._dict: dict[str, int] = {}
        self._series: pd.Series | None = None
        self.total = 0
        self.count_error = 0
        self.exact = True

    def __len__(self) -> int:
        return len(self._dict) if self._series is None else len(self._series)

    def update(self, keys: Sequence[str], counts: Sequence[int] | np.ndarray) -> None:
        """Add ``counts[i]`` to ``keys[i]`` (a key may repeat)."""
        counts = np.asarray(counts, dtype=np.int64)
        self.total += int(counts.sum())
        self._add(keys, counts)
        self._bound()

    def update_mapping(self, counts: Mapping[str, int]) -> None:
        self.update(list(counts), list(counts.values()))

    def _add(self, keys: Sequence[str], counts: np.ndarray) -> None:
        if self._series is None and len(self._dict) + len(keys) <= self._SERIES_AT:
            kept = self._dict
            for key, count in zip(keys, counts.tolist(), strict=True):
                kept[key] = kept.get(key, 0) + count
            return
        batch = pd.Series(counts, index=pd.Index(keys, dtype=object))
        if self._series is None:
            self._series = pd.Series(
                np.fromiter(self._dict.values(), dtype=np.int64, count=len(self._dict)),
                index=pd.Index(list(self._dict), dtype=object),
            )
            self._dict = {}
        # A hash group-by, not Series.add: add aligns by a sorted union of the keys.
        parts = [part for part in (self._series, batch) if len(part)]
        self._series = pd.concat(parts).groupby(level=0, sort=False).sum() if parts else batch

    def merge(self, other: FrequentCounts) -> None:
        keys, counts = other._arrays()
        self._add(keys, counts)
        self.total += other.total
        self.count_error += other.count_error
        self.exact = self.exact and other.exact
        self._bound()

    def _arrays(self) -> tuple[list[str], np.ndarray]:
        if self._series is None:
            return list(self._dict), np.fromiter(self._dict.values(), dtype=np.int64, count=len(self._dict))
        return self._series.index.tolist(), self._series.to_numpy().astype(np.int64)

    def _bound(self) -> None:
        if self.exact and len(self) <= self.exact_limit:
            return
        self.exact = False
        if len(self) <= self.capacity:
            return
        keys, values = self._arrays()
        # Misra-Gries with weights: subtract the (capacity + 1)-th largest count from every
        # counter; no key's count drops by more than the sum of what was subtracted.
        cut = int(np.partition(values, len(values) - self.capacity - 1)[len(values) - self.capacity - 1])
        kept = values > cut
        self._series = pd.Series(
            (values[kept] - cut).astype(np.float64),
            index=pd.Index(np.asarray(keys, dtype=object)[kept], dtype=object),
        )
        self._dict = {}
        self.count_error += cut

    def items(self) -> list[tuple[str, int]]:
        keys, counts = self._arrays()
        return list(zip(keys, counts.tolist(), strict=True))

    def keys(self) -> list[str]:
        return self._arrays()[0]

    def top(self, n: int | None = None) -> list[tuple[str, int]]:
        """The keys by count, most frequent first, ties by key; the first ``n``."""
        ordered = sorted(self.items(), key=lambda item: (-item[1], item[0]))
        return ordered if n is None else ordered[:n]


# --- a seeded uniform sample -------------------------------------------------------------------------


class SeededSample:
    """Values of a column: every one while there are at most ``size``, beyond that a uniform
    sample of ``size`` without replacement, the values whose row positions hash (with ``seed``)
    lowest. The sample depends on the rows alone, not on the batches or the order of merges."""

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"size={size} must be positive")
        self.size = size
        self._salt = mix64(np.array([seed], dtype=_U64))[0]
        self.count = 0
        self._keys: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._kept = 0
        self._threshold: np.uint64 | None = None

    @property
    def exact(self) -> bool:
        return self.count <= self.size

    def update(self, values: np.ndarray, positions: np.ndarray) -> None:
        if not len(values):
            return
        self.count += len(values)
        keys = mix64(positions.astype(_U64) ^ self._salt)
        if self._threshold is not None:
            below = keys < self._threshold
            keys, values = keys[below], values[below]
        self._keys.append(keys)
        self._values.append(values)
        self._kept += len(keys)
        if self._kept > 2 * self.size or (self._threshold is None and self._kept > self.size):
            self._shrink()

    def _shrink(self) -> None:
        keys = np.concatenate(self._keys) if self._keys else np.empty(0, dtype=_U64)
        values = np.concatenate(self._values) if self._values else np.empty(0)
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keys, values = keys[keep], values[keep]
            self._threshold = keys.max()
        self._keys, self._values, self._kept = [keys], [values], len(keys)

    def merge(self, other: SeededSample) -> None:
        if other._salt != self._salt:
            raise ValueError("samples drawn with different seeds cannot be merged")
        self.count += other.count
        self._keys += other._keys
        self._values += other._values
        self._kept += other._kept
        if other._threshold is not None and (self._threshold is None or other._threshold < self._threshold):
            self._threshold = other._threshold
        self._shrink()

    def sorted_values(self) -> np.ndarray:
        """The values kept (all of them, or the sample), sorted."""
        self._shrink()
        return np.sort(self._values[0]) if self._values else np.empty(0)
