"""Statistics of a dataset a batch at a time: ``StatisticsAccumulator``.

``update`` takes the batches of ``dataset_files.iter_batches`` (or any DataFrames with the same
columns), ``merge`` combines accumulators built from different rows (parts read in parallel, say),
and ``result`` gives the document ``compute_statistics`` gives for the whole table: exactly the
same figures while each summary is under its bound (see ``column_statistics``), estimates with
their error bounds beyond. The exact parts do not depend on the batch sizes or on the order of
merges: every batch carries the position of its first row.

Duplicate rows are counted from 64-bit row hashes (``common.hashing``): exactly while the distinct
rows fit the memory set aside for them (``row_hash_limit``, a quarter of the task's allowance:
about 27M rows at 4 GiB), beyond that from the rows whose hash falls below a threshold that halves
each time the set fills (a uniform sample of the distinct rows, as a theta sketch), with the
standard error stated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError
from mlstages.components.common.hashing import row_hashes
from mlstages.components.common.memory import rows_within
from mlstages.components.common.sketches import mix64
from mlstages.components.validate_data.column_statistics import (
    ColumnFacts,
    ColumnStatistics,
    Limits,
    column_statistics,
)
from mlstages.components.validate_data.config import OUTLIER_RULE

_U64 = np.uint64
_FLAG = _U64(1)
_KEY = ~_U64(1)
# Compacting the row-hash set sorts it with as many new hashes (up to twice its size) and marks
# runs with boolean masks: about 40 bytes a kept row at the peak.
_ROW_HASH_BYTES = 40
_ROW_HASH_SHARE = 0.25


def row_hash_limit() -> int:
    """How many distinct row hashes the duplicate count keeps before it samples."""
    return rows_within(_ROW_HASH_SHARE, _ROW_HASH_BYTES, floor=1 << 16)


class RowDuplicates:
    """Distinct row hashes, each with a flag saying whether it was seen more than once.

    The low bit of a kept hash is the flag; the other 63 bits are the key. ``threshold`` None
    keeps every key (exact); otherwise only keys below it, a uniform sample of the distinct rows
    with probability threshold / 2**64.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit} must be positive")
        self.limit = limit
        self.rows = 0
        self.threshold: int | None = None
        self._main = np.empty(0, dtype=_U64)
        self._pending: list[np.ndarray] = []
        self._pending_size = 0

    @property
    def exact(self) -> bool:
        return self.threshold is None

    def update(self, hashes: np.ndarray) -> None:
        self.rows += len(hashes)
        keys = hashes & _KEY
        if self.threshold is not None:
            keys = keys[keys < _U64(self.threshold)]
        self._pending.append(keys)
        self._pending_size += len(keys)
        if self._pending_size >= max(len(self._main), 1 << 20):
            self._compact()

    def merge(self, other: RowDuplicates) -> None:
        other._compact()
        self.rows += other.rows
        if other.threshold is not None and (self.threshold is None or other.threshold < self.threshold):
            self.threshold = other.threshold
        self._pending.append(other._main)
        self._pending_size += len(other._main)
        self._compact()

    def _compact(self) -> None:
        if not self._pending:
            return
        merged = np.concatenate([self._main, *self._pending])
        # Drop the parts before the work below: at tens of millions of rows each is hundreds of MB.
        self._main, self._pending, self._pending_size = np.empty(0, dtype=_U64), [], 0
        if self.threshold is not None:
            merged = merged[(merged & _KEY) < _U64(self.threshold)]
        merged.sort()
        if len(merged):
            # Boolean masks rather than index arrays keep the peak near 20 bytes a hash.
            first = np.empty(len(merged), dtype=bool)
            first[0] = True
            differ = np.bitwise_xor(merged[1:], merged[:-1])
            np.greater(differ, _FLAG, out=first[1:])  # the keys differ, not only the flag bits
            del differ
            last = np.empty(len(merged), dtype=bool)
            last[:-1] = first[1:]
            last[-1] = True
            alone = first & last
            del last
            kept = merged[first]
            del merged
            # A run repeats when it is longer than one, or its one member already carried the flag
            # (a flagged hash sorts after an unflagged one with the same key).
            repeated = ~alone[first] | ((kept & _FLAG) == _FLAG)
            kept &= _KEY
            kept |= repeated.astype(_U64)
            merged = kept
        self._main = merged
        while len(self._main) > self.limit:
            self.threshold = (1 << 64 if self.threshold is None else self.threshold) // 2
            self._main = self._main[(self._main & _KEY) < _U64(self.threshold)]

    def duplicates(self) -> tuple[int, dict[str, Any] | None]:
        """Rows that repeat an earlier row, and (when sampled) how the estimate was made."""
        self._compact()
        if self.threshold is None:
            return self.rows - len(self._main), None
        share = self.threshold / 2.0**64
        kept = len(self._main)
        estimate = max(0, round(self.rows - kept / share))
        return estimate, {
            "method": f"exact count on the distinct rows whose 63-bit hash falls in a {share:.3g} share "
            "of the hash space (a uniform sample of the distinct rows)",
            "standard_error": math.sqrt(kept * (1 - share)) / share,
        }

    def repeated_keys(self) -> np.ndarray:
        """The sorted keys of the rows seen more than once (among the sampled ones when sampled)."""
        self._compact()
        return self._main[(self._main & _FLAG) == _FLAG] & _KEY


class RowSample:
    """A seeded uniform sample of at most ``size`` rows taken while the rows stream past: the rows
    whose positions hash (with ``seed``) lowest, so the same rows whatever the batches. Every row
    while there are at most ``size``; ``rows()`` gives them in dataset order."""

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"size={size} must be positive")
        self.size = size
        self._salt = mix64(np.array([seed], dtype=_U64))[0]
        self._frames: list[pd.DataFrame] = []
        self._keys: list[np.ndarray] = []
        self._kept = 0
        self._threshold: np.uint64 | None = None

    def update(self, batch: pd.DataFrame, start: int) -> None:
        positions = np.arange(start, start + len(batch), dtype=np.int64)
        keys = mix64(positions.astype(_U64) ^ self._salt)
        if self._threshold is not None:
            keep = keys < self._threshold
            batch, keys, positions = batch[keep], keys[keep], positions[keep]
        if not len(batch):
            return
        self._frames.append(batch.set_axis(positions, axis=0))
        self._keys.append(keys)
        self._kept += len(keys)
        if self._kept > 2 * self.size or (self._threshold is None and self._kept > self.size):
            self._shrink()

    def merge(self, other: RowSample) -> None:
        """Add the sample of other rows (another part's) taken with the same size and seed: the
        result is the sample of all of them, as the keys depend only on the row positions."""
        if (other.size, other._salt) != (self.size, self._salt):
            raise ValueError("only samples of the same size and seed merge")
        if other._threshold is not None and (self._threshold is None or other._threshold < self._threshold):
            # Each side's kept rows hold its ``size`` lowest keys, so the union's lowest are below
            # both thresholds.
            self._threshold = other._threshold
        self._frames += other._frames
        self._keys += other._keys
        self._kept += other._kept
        if self._kept > self.size:
            self._shrink()

    def _shrink(self) -> None:
        frame = pd.concat(self._frames) if len(self._frames) > 1 else self._frames[0]
        keys = np.concatenate(self._keys)
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            frame, keys = frame.iloc[keep], keys[keep]
            self._threshold = keys.max()
        self._frames, self._keys, self._kept = [frame], [keys], len(keys)

    def rows(self) -> pd.DataFrame | None:
        """The sampled rows in dataset order, their index the row positions; None before any row."""
        if not self._frames:
            return None
        self._shrink()
        return self._frames[0].sort_index()


def with_text_column_names(df: pd.DataFrame) -> pd.DataFrame:
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


class StatisticsAccumulator:
    """Dataset statistics built a batch at a time (see the module docstring)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.rows = 0
        self.columns: dict[str, ColumnStatistics] | None = None
        self.duplicates = RowDuplicates(self.limits.row_hashes or row_hash_limit())

    def update(self, batch: pd.DataFrame, start: int | None = None) -> None:
        """Add the rows of ``batch``; ``start`` is the position of its first row in the dataset
        (by default, right after the rows this accumulator has seen)."""
        batch = with_text_column_names(batch)
        start = self.rows if start is None else start
        if self.columns is None:
            self.columns = {name: column_statistics(name, batch[name], self.limits) for name in batch.columns}
        elif list(batch.columns) != list(self.columns):
            raise InputDataError(
                f"rows from {start} on have columns {_shown(batch.columns)}, the first rows had "
                f"{_shown(self.columns)}; every part of a dataset needs the same columns"
            )
        for name, column in self.columns.items():
            column.accept(batch[name].dtype)
            column.update(batch[name], start)
        self.rows += len(batch)
        if len(batch):
            self.duplicates.update(row_hashes(batch))

    def merge(self, other: StatisticsAccumulator) -> None:
        """Add the rows another accumulator has seen."""
        if other.columns is None:
            return
        if self.columns is None:
            self.columns = {}
            for name, column in other.columns.items():
                self.columns[name] = column_statistics(name, pd.Series([], dtype=column.dtype), self.limits)
        if list(other.columns) != list(self.columns):
            raise InputDataError(
                f"cannot merge statistics of columns {_shown(other.columns)} into statistics of "
                f"{_shown(self.columns)}: the parts of a dataset need the same columns"
            )
        for name, column in self.columns.items():
            column.merge(other.columns[name])
        self.rows += other.rows
        self.duplicates.merge(other.duplicates)

    def result(self) -> dict[str, Any]:
        """The statistics document (see ``statistics.compute_statistics``)."""
        columns = self.columns or {}
        rows = self.rows
        duplicates, estimate = self.duplicates.duplicates() if rows else (0, None)
        dataset: dict[str, Any] = {
            "rows": rows,
            "columns": len(columns),
            "duplicate_rows": duplicates,
            "duplicate_share": duplicates / rows if rows else None,
        }
        if estimate is not None:
            dataset["estimates"] = {"duplicate_rows": estimate}
        described = {name: column.result() for name, column in columns.items()}
        return {
            "dataset": dataset,
            "outlier_rule": OUTLIER_RULE,
            "columns": described,
            "exact": estimate is None and not any("estimates" in c for c in described.values()),
        }

    def facts(self) -> dict[str, ColumnFacts]:
        """Per column, what the schema and the checks need beyond the document."""
        return {name: column.facts() for name, column in (self.columns or {}).items()}


def accumulate(batches: Iterable[pd.DataFrame], limits: Limits | None = None) -> StatisticsAccumulator:
    """An accumulator fed every batch of ``batches`` in turn."""
    accumulator = StatisticsAccumulator(limits)
    for batch in batches:
        accumulator.update(batch)
    return accumulator


def _shown(columns: Iterable[Any]) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:20]) + (f", ... ({len(names)} columns)" if len(names) > 20 else "")
