"""Refitting a gradient booster on the training matrix without copying it.

scikit-learn's HistGradientBoosting, with early stopping on (its default above 10,000 rows), splits
its input with ``train_test_split``, which copies every row: the fit held twice the matrix. At 1M
rows x 25 columns train peaked at 2.0 GiB for a 0.7 GiB matrix, half of it that copy
(benchmarks/results/scale.md). The booster also takes its validation rows as ``X_val``: with them
at the end of the matrix, both parts are views of it. ``fit_on_matrix`` swaps the rows the
booster's own split would hold out there (the same ``train_test_split``, seed and stratification;
a small temporary per block of rows), fits, and swaps them back, so the matrix's order, which the
search and the trial branches share, is what it was. The model is the booster's own fit: the same
trees, the same predictions (tests/unit/test_train_holdout_fit.py).

Any other estimator is fitted as it is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# HistGradientBoosting's own threshold for early_stopping='auto' (scikit-learn 1.x).
_AUTO_EARLY_STOPPING_ROWS = 10_000

# Rows swapped at a time: the temporary is this many rows of the matrix.
_SWAP_BLOCK_ROWS = 16_384


def fit_on_matrix(estimator: Any, features: Any, y: np.ndarray, seed: int) -> Any:
    """``estimator.fit(features, y)``; for a HistGradientBoosting that would split off validation
    rows, the same fit with those rows given as ``X_val``, without a copy of ``features`` (a
    float64 array, changed only while it fits)."""
    held_out = _validation_rows(estimator, features, len(y))
    if not held_out:
        return estimator.fit(features, y)
    rows = len(y)
    validation = _validation_positions(estimator, y, held_out, seed)
    if validation is None:
        return estimator.fit(features, y)
    tail = np.arange(rows - held_out, rows)
    incoming = np.setdiff1d(validation, tail, assume_unique=True)
    outgoing = np.setdiff1d(tail, validation, assume_unique=True)
    arranged = y.copy()
    arranged[incoming], arranged[outgoing] = y[outgoing], y[incoming]
    _swap_rows(features, incoming, outgoing)
    try:
        return estimator.fit(
            features[: rows - held_out],
            arranged[: rows - held_out],
            X_val=features[rows - held_out :],
            y_val=arranged[rows - held_out :],
        )
    finally:
        _swap_rows(features, incoming, outgoing)  # a swap undoes itself


def _validation_rows(estimator: Any, features: Any, rows: int) -> int:
    """How many rows a HistGradientBoosting would hold out for early stopping, 0 when it would
    not (or when ``features`` is not an array whose slices are views)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if not isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        return 0
    if (
        not isinstance(features, np.ndarray)
        or features.dtype != np.float64
        or not features.flags.c_contiguous
    ):
        return 0
    fraction = estimator.validation_fraction
    if fraction is None or estimator.early_stopping is False:
        return 0
    held_out = int(fraction) if isinstance(fraction, int | np.integer) else math.ceil(float(fraction) * rows)
    if not 0 < held_out < rows:
        return 0
    # 'auto' decides on the rows it is given: left with 10,000 or fewer it would refuse X_val.
    if estimator.early_stopping == "auto" and rows - held_out <= _AUTO_EARLY_STOPPING_ROWS:
        return 0
    return held_out


def _validation_positions(estimator: Any, y: np.ndarray, held_out: int, seed: int) -> np.ndarray | None:
    """The rows the booster itself would hold out: ``train_test_split`` of the row positions with
    its own test size, stratification (classifiers) and seed (the first draw of its
    ``random_state``, as its ``fit`` makes it), so that the refit is the default booster's, on the
    same rows. None where its own split would fail (a one-row class): it then fits as it is."""
    from sklearn.base import is_classifier
    from sklearn.model_selection import train_test_split

    random_state = estimator.random_state
    if isinstance(random_state, int | np.integer):
        split_seed = np.random.RandomState(random_state).randint(np.iinfo(np.uint32).max, dtype="u8")
    else:
        split_seed = seed
    try:
        _, validation = train_test_split(
            np.arange(len(y)),
            test_size=estimator.validation_fraction,
            stratify=y if is_classifier(estimator) else None,
            random_state=split_seed,
        )
    except ValueError:
        return None
    if len(validation) != held_out:
        return None
    return np.sort(validation)


def _swap_rows(features: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    for start in range(0, len(first), _SWAP_BLOCK_ROWS):
        a, b = first[start : start + _SWAP_BLOCK_ROWS], second[start : start + _SWAP_BLOCK_ROWS]
        block = features[a]
        features[a] = features[b]
        features[b] = block
