"""Rows that show an anomaly: a second, targeted pass over the data after the statistics.

The statistics say whether a check fails (a missing share, an outlier share, a minimum below the
schema's range); the messages also name rows and values, which only the data has. Each
``Request`` asks for the evidence of one failing check. ``scan`` reads only the columns the
requests need and stops as soon as every request has what it needs: examples (the first
MAX_ROW_EXAMPLES rows of missing values, outliers or repeated rows) usually come from the first
batch, while a count that the statistics cannot give exactly (values outside a given schema's
range or domain, text that is not a number) reads the column to the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.hashing import row_hashes
from mlstages.components.common.sketches import FrequentCounts
from mlstages.components.validate_data.config import MAX_ROW_EXAMPLES, VALUES_IN_MESSAGE

_KEY = ~np.uint64(1)


class Request:
    """Evidence one check needs; ``columns`` None means every column (whole rows)."""

    columns: tuple[str, ...] | None = ()
    complete = False  # set once nothing more is needed

    def take(self, batch: pd.DataFrame, positions: np.ndarray) -> None:
        raise NotImplementedError


@dataclass
class RowsWhere(Request):
    """The first MAX_ROW_EXAMPLES rows where ``test`` (a function of the column) is true."""

    column: str
    test: Callable[[pd.Series], np.ndarray]
    rows: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = (self.column,)

    def take(self, batch: pd.DataFrame, positions: np.ndarray) -> None:
        found = positions[np.flatnonzero(self.test(batch[self.column]))]
        self.rows += found[: MAX_ROW_EXAMPLES - len(self.rows)].tolist()
        self.complete = len(self.rows) >= MAX_ROW_EXAMPLES


@dataclass
class CountWhere(Request):
    """Every row where ``test`` is true: the count, the first rows and their values as text,
    and (``count_labels``) the count of each such value's text."""

    column: str
    test: Callable[[pd.Series], np.ndarray]
    count_labels: bool = False
    count: int = 0
    rows: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    labels: FrequentCounts = field(default_factory=FrequentCounts)

    def __post_init__(self) -> None:
        self.columns = (self.column,)

    def take(self, batch: pd.DataFrame, positions: np.ndarray) -> None:
        series = batch[self.column]
        hits = np.flatnonzero(self.test(series))
        if not len(hits):
            return
        self.count += len(hits)
        self.rows += positions[hits[: MAX_ROW_EXAMPLES - len(self.rows)]].tolist()
        if len(self.values) < VALUES_IN_MESSAGE:
            self.values += series.iloc[hits[: VALUES_IN_MESSAGE - len(self.values)]].tolist()
        if self.count_labels:
            counts = series.iloc[hits].map(str).value_counts(sort=False)
            self.labels.update(counts.index.tolist(), counts.to_numpy())


@dataclass
class RepeatedRows(Request):
    """The first MAX_ROW_EXAMPLES rows that repeat an earlier row, each with the row it repeats,
    among the rows whose hash is one of ``keys`` (the repeated ones, from the statistics)."""

    keys: np.ndarray
    first_seen: dict[int, int] = field(default_factory=dict)
    repeats: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = None
        self.complete = not len(self.keys)

    def take(self, batch: pd.DataFrame, positions: np.ndarray) -> None:
        hashes = row_hashes(batch) & _KEY
        where = np.minimum(np.searchsorted(self.keys, hashes), len(self.keys) - 1)
        for index in np.flatnonzero(self.keys[where] == hashes):
            key, position = int(hashes[index]), int(positions[index])
            first = self.first_seen.setdefault(key, position)
            if first != position:
                self.repeats.append((position, first))
                if len(self.repeats) >= MAX_ROW_EXAMPLES:
                    self.complete = True
                    return


def scan(
    batches: Callable[[Sequence[str] | None], Iterable[pd.DataFrame]], requests: Sequence[Request]
) -> None:
    """Feed the batches of the columns the ``requests`` need (``batches(None)``: every column) to
    every request until all are complete or the data ends."""
    open_requests = [r for r in requests if not r.complete]
    if not open_requests:
        return
    if any(r.columns is None for r in open_requests):
        columns: list[str] | None = None
    else:
        columns = list(dict.fromkeys(c for r in open_requests for c in r.columns or ()))
    start = 0
    for batch in batches(columns):
        positions = np.arange(start, start + len(batch), dtype=np.int64)
        start += len(batch)
        for request in open_requests:
            if not request.complete:
                request.take(batch, positions)
        if all(r.complete for r in open_requests):
            return
