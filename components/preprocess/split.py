"""The split: train / test, seeded, stratified, random or by time, before anything is fitted.

There is no validation split: train chooses its model by cross-validation on the train rows, and
the gate judges it on the test rows, so a third split would only take rows from training.

Random and stratified splits hash each row's position in the dataset with the seed (as TFX's
ExampleGen hashes a record), so which split a row goes to depends on the row and the seed only:
not on how the data is sharded or batched, nor on the engine that reads it, and it can be decided
for 50M rows from the label column alone. The test split takes the rows with the smallest hashes:
``ceil(test_size * rows)`` of them overall (random), or per class, each class's share of that
number rounded by largest remainder with at least one row of each class in each split
(stratified): class shares then differ between the splits by less than one row per class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import (
    require_columns,
)
from mlstages.components.common.errors import InputDataError, quoted
from mlstages.components.common.labels import (
    CLASSIFICATION,
    REGRESSION,
    check_label,
    distinct_values,
    resolve_task,
    value_counts,
)
from mlstages.components.preprocess.config import SPLIT_NAMES, PreprocessConfig


def split_sizes(n_rows: int, config: PreprocessConfig) -> tuple[int, int]:
    """Rows for (train, test): ``ceil(test_size * n_rows)`` for test, the rest for train."""
    # round() first: 0.1 * 30 is 3.0000000000000004 in floating point, which must not ceil to 4.
    n_test = math.ceil(round(config.test_size * n_rows, 9))
    n_train = n_rows - n_test
    if n_train < 1:
        raise InputDataError(
            f"{n_rows} row(s) are too few to split: test_size={config.test_size} takes {n_test}, "
            f"leaving {n_train} to train on; provide more rows or lower test_size"
        )
    return n_train, n_test


@dataclass(frozen=True)
class _Split:
    """train and test: positional indices of the rows of each split in the frame that was split
    (ascending, or in time order for a time split); int32 where they fit, so that 50M rows cost
    200 MB rather than 400."""

    train: np.ndarray
    test: np.ndarray
    method: str
    notes: tuple[str, ...]
    # A classification label's class codes (class_codes) and its sorted classes.
    codes: np.ndarray | None = None
    classes: tuple = ()

    def class_counts(self, index: np.ndarray) -> dict[str, int]:
        """Rows per class among the rows at ``index``, most frequent first, as
        ``labels.class_counts`` gives them (ties in class order)."""
        counts = np.bincount(self.codes[index], minlength=len(self.classes))
        order = sorted(np.flatnonzero(counts), key=lambda code: -counts[code])
        return {str(self.classes[code]): int(counts[code]) for code in order}


def split_dataset(df: pd.DataFrame, config: PreprocessConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split raw rows into (train, test), with every column kept.

    Seeded and deterministic (a row's split depends on its position and the seed: module
    docstring). Stratified for classification labels (each class must then be in
    every split: a class too small for that raises InputDataError naming it); a time split orders
    the rows by ``time_column``. The index labels of ``df`` are kept, so rows can be traced back.
    """
    _check_not_empty(df)
    y = check_label(df, config.label_column, what="dataset", task=config.task)
    split = _split(df, y, resolve_task(y, config.task), config)
    return df.iloc[split.train], df.iloc[split.test]


def _check_not_empty(df: pd.DataFrame) -> None:
    if len(df) == 0:
        raise InputDataError(f"the dataset has no rows (columns: {', '.join(map(str, df.columns))})")


def _split(df: pd.DataFrame, y: pd.Series, task: str, config: PreprocessConfig) -> _Split:
    n_train, n_test = split_sizes(len(df), config)
    notes: list[str] = []
    method = config.split
    if method == "stratified" and task == REGRESSION:
        method = "random"
        notes.append(
            "split='stratified' applies to classification labels; the regression label was split at random."
        )
    codes, classes = class_codes(y) if task == CLASSIFICATION else (None, [])
    if method == "time":
        order = _time_order(df, config.time_column).astype(positions_dtype(len(df)), copy=False)
        train_idx, test_idx = order[:n_train], order[n_train:]  # each in time order
    else:
        positions = row_positions(df)
        if method == "stratified":
            _check_stratifiable(y, n_test)
            test_pos = stratified_test_positions(positions, codes, n_test, config.seed)
        else:
            test_pos = smallest_hash_positions(positions, config.seed, n_test)
        in_test = np.zeros(len(positions), dtype=bool)
        if len(positions) < 2 or bool(np.all(positions[1:] > positions[:-1])):
            in_test[np.searchsorted(positions, test_pos)] = True  # no sort of 50M labels
        else:
            in_test = np.isin(positions, test_pos, assume_unique=True)
        del positions, test_pos
        train_idx, test_idx = _indices(~in_test), _indices(in_test)
    if codes is not None:
        parts = {"train": train_idx, "test": test_idx}
        notes.extend(_check_classes_present(codes, classes, parts, config.label_column, method))
    return _Split(train_idx, test_idx, method, tuple(notes), codes, tuple(classes))


def positions_dtype(rows: int) -> type[np.signedinteger]:
    """The narrowest integer type that holds every position of ``rows`` rows."""
    return np.int32 if rows < np.iinfo(np.int32).max else np.int64


def class_codes(y: pd.Series) -> tuple[np.ndarray, list]:
    """Each row's class as the position of its label among the sorted classes, in the narrowest
    type, and the sorted classes. Coded a chunk at a time: pandas' own codes are int64, 400 MB
    beside a 50M-row label."""
    classes = pd.Index(pd.factorize(distinct_values(y).to_numpy(), sort=True)[1])
    dtype = np.min_scalar_type(max(len(classes) - 1, 0))
    codes = np.empty(len(y), dtype=dtype)
    for start in range(0, len(y), _HASH_CHUNK_ROWS):
        chunk = y.iloc[start : start + _HASH_CHUNK_ROWS]
        codes[start : start + len(chunk)] = classes.get_indexer(chunk)
    return codes, classes.tolist()


def _indices(mask: np.ndarray) -> np.ndarray:
    """np.flatnonzero(mask) as int32 where it fits, without its int64 array of every index."""
    dtype = positions_dtype(len(mask))
    parts = [
        (np.flatnonzero(mask[start : start + _HASH_CHUNK_ROWS]) + start).astype(dtype)
        for start in range(0, len(mask), _HASH_CHUNK_ROWS)
    ]
    return np.concatenate(parts) if parts else np.arange(0, dtype=dtype)


def row_positions(df: pd.DataFrame) -> np.ndarray:
    """Each row's position in the dataset: the index when it is one (a RangeIndex, or the labels
    that drop_unlabelled left), else 0..n-1; int32 where the positions fit."""
    index = df.index
    if isinstance(index, pd.RangeIndex) and index.step == 1 and index.start >= 0:
        return np.arange(index.start, index.stop, dtype=positions_dtype(index.stop))
    if index_is_positions(index):
        return index.to_numpy(dtype=positions_dtype(int(index.max()) + 1 if len(index) else 0))
    return np.arange(len(df), dtype=positions_dtype(len(df)))


def index_is_positions(index: pd.Index) -> bool:
    """Whether an index's labels can stand for row positions: unique integers from 0 up."""
    return (
        pd.api.types.is_integer_dtype(index.dtype)
        and index.is_unique
        and (len(index) == 0 or index.min() >= 0)
    )


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def split_hashes(positions: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit hash of each row position and the seed (splitmix64's finaliser): uniform, and the
    same for a row whatever else is in the dataset."""
    with np.errstate(over="ignore"):
        x = positions.astype(np.uint64) + np.uint64(seed % (1 << 64)) * _GOLDEN + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


# The top bits of a hash that the first pass counts rows by.
_BUCKET_BITS = 16
# Positions hashed at a time: their hashes are the only per-row array the selection holds.
_HASH_CHUNK_ROWS = 1 << 22


def smallest_hash_positions(positions: np.ndarray, seed: int, count: int) -> np.ndarray:
    """The ``count`` positions with the smallest hashes (``split_hashes``), ascending.

    Two passes over the positions, a chunk at a time, rather than every row's hash at once and an
    argpartition of them (at 50M rows, 800 MB beside the label column): the first counts the
    hashes by their top bits, which gives the bucket the cut falls in; the second keeps the
    positions below that bucket and the smallest ``count`` of the rest from inside it (about
    rows / 65,536 of them). The hash is a bijection of distinct positions, so there are no ties:
    the rows chosen are exactly the ``count`` smallest.
    """
    rows = len(positions)
    if count >= rows:
        return np.sort(positions)
    if count <= 0:
        return positions[:0].copy()
    shift = np.uint64(64 - _BUCKET_BITS)
    counts = np.zeros(1 << _BUCKET_BITS, dtype=np.int64)
    for start in range(0, rows, _HASH_CHUNK_ROWS):
        buckets = split_hashes(positions[start : start + _HASH_CHUNK_ROWS], seed) >> shift
        counts += np.bincount(buckets.astype(np.intp), minlength=len(counts))
    cumulative = np.cumsum(counts)
    edge = int(np.searchsorted(cumulative, count))  # the first bucket reaching count rows
    wanted_from_edge = count - (int(cumulative[edge - 1]) if edge else 0)
    below: list[np.ndarray] = []
    edge_positions: list[np.ndarray] = []
    edge_hashes: list[np.ndarray] = []
    for start in range(0, rows, _HASH_CHUNK_ROWS):
        chunk = positions[start : start + _HASH_CHUNK_ROWS]
        hashes = split_hashes(chunk, seed)
        buckets = hashes >> shift
        below.append(chunk[buckets < edge])
        at_edge = buckets == edge
        edge_positions.append(chunk[at_edge])
        edge_hashes.append(hashes[at_edge])
    in_edge, hashes_in_edge = np.concatenate(edge_positions), np.concatenate(edge_hashes)
    if wanted_from_edge < len(in_edge):
        in_edge = in_edge[np.argpartition(hashes_in_edge, wanted_from_edge - 1)[:wanted_from_edge]]
    return np.sort(np.concatenate([*below, in_edge]))


def stratified_test_positions(positions: np.ndarray, codes: np.ndarray, n_test: int, seed: int) -> np.ndarray:
    """The test rows of a stratified split: per class, the rows with the smallest hashes, as many
    as the class's share of ``n_test`` (largest remainder, at least one row in each split)."""
    counts = np.bincount(codes)
    classes = np.flatnonzero(counts)
    quotas = test_quotas(counts[classes], n_test)
    chosen = [
        smallest_hash_positions(positions[codes == code], seed, int(quota))
        for code, quota in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(chosen)) if chosen else positions[:0].copy()


def test_quotas(counts: np.ndarray, n_test: int) -> np.ndarray:
    """Test rows per class: proportional to ``counts``, summing to ``n_test``, by largest
    remainder; every class with two rows or more keeps at least one row in each split."""
    total = int(counts.sum())
    exact = counts * (n_test / total)
    quotas = np.floor(exact).astype(np.int64)
    remainder = n_test - int(quotas.sum())
    # Largest fractional part first; ties to the larger class, then the first.
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - quotas[i]), -counts[i], i))
    for i in order[:remainder]:
        quotas[i] += 1
    # At least one row of each class in each split: a class rounded to none takes a row from
    # the class with the largest quota, one rounded to all gives one back.
    for i in np.flatnonzero((counts >= 2) & (quotas == 0)):
        quotas[i] = 1
        donor = int(np.argmax(np.where(quotas > 1, quotas, -1)))
        if quotas[donor] > 1:
            quotas[donor] -= 1
    full = (counts >= 2) & (quotas >= counts)
    quotas[full] = counts[full] - 1
    return quotas


def _time_order(df: pd.DataFrame, time_column: str) -> np.ndarray:
    require_columns(df, [time_column], what="dataset", parameter="time_column")
    values = df[time_column]
    missing = values.isna().to_numpy()
    if missing.any():
        raise InputDataError(
            f"time_column {time_column!r} has {int(missing.sum())} missing value(s), first at row "
            f"{int(missing.nonzero()[0][0])} (0-based); a time split needs a time for every row"
        )
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)):
        parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
        bad = parsed.isna().to_numpy()
        if bad.any():
            position = int(bad.nonzero()[0][0])
            raise InputDataError(
                f"time_column {time_column!r} has values that are neither numbers nor dates, e.g. "
                f"{values.iloc[position]!r} at row {position} (0-based)"
            )
        values = parsed
    # A stable sort keeps rows with the same time in their original order.
    return np.argsort(values.to_numpy(), kind="stable")


def _check_stratifiable(y: pd.Series, n_test: int) -> None:
    counts = value_counts(y)
    too_small = counts[counts < len(SPLIT_NAMES)]
    if len(too_small):
        label, count = too_small.index[0], int(too_small.iloc[0])
        raise InputDataError(
            f"class {quoted(label)} of label column {y.name!r} has only {count} row(s); a stratified split "
            f"needs at least {len(SPLIT_NAMES)} per class (one per split). Add rows for it, remove or "
            "merge the class, or use split='random'"
        )
    if n_test < len(counts):
        raise InputDataError(
            f"label column {y.name!r} has {len(counts)} classes, but the test split gets only "
            f"{n_test} row(s), too few to hold each class once; raise test_size or provide more rows"
        )


def _check_classes_present(
    codes: np.ndarray, classes: list, parts: dict[str, np.ndarray], label_column: str, method: str
) -> list[str]:
    """Errors for classes a split lacks when the split promised them; notes otherwise."""
    counts = np.bincount(codes, minlength=len(classes))
    notes = []
    for split_name, index in parts.items():
        present = np.bincount(codes[index], minlength=len(classes)) > 0
        for code in np.flatnonzero(~present):
            label, count = classes[code], int(counts[code])
            if split_name == "train" or method == "stratified":
                raise InputDataError(
                    f"class {label!r} of label column {label_column!r} ({count} row(s) in all) got "
                    f"no row in the {split_name} split; add rows for it, raise the size of that split, "
                    "or remove the class"
                )
            notes.append(f"class {label!r} ({count} row(s) in all) has no row in the {split_name} split.")
    return notes
