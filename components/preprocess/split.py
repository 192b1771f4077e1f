"""The split: train / test, seeded, stratified, random or by time, before anything is fitted.

There is no validation split: train chooses its model by cross-validation on the train rows, and
the gate judges it on the test rows, so a third split would only take rows from training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlstages.components.common.datasets import (
    require_columns,
)
from mlstages.components.common.errors import InputDataError, quoted
from mlstages.components.common.labels import (
    CLASSIFICATION,
    REGRESSION,
    check_label,
    resolve_task,
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
    train: pd.DataFrame
    test: pd.DataFrame
    method: str
    notes: tuple[str, ...]


def split_dataset(df: pd.DataFrame, config: PreprocessConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split raw rows into (train, test), with every column kept.

    Seeded and deterministic. Stratified for classification labels (each class must then be in
    every split: a class too small for that raises InputDataError naming it); a time split orders
    the rows by ``time_column``. The index labels of ``df`` are kept, so rows can be traced back.
    """
    _check_not_empty(df)
    y = check_label(df, config.label_column, what="dataset", task=config.task)
    split = _split(df, y, resolve_task(y, config.task), config)
    return split.train, split.test


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
    if method == "time":
        order = _time_order(df, config.time_column)
        train_pos, test_pos = order[:n_train], order[n_train:]
    else:
        stratify = y.to_numpy() if method == "stratified" else None
        if stratify is not None:
            _check_stratifiable(y, n_test)
        positions = np.arange(len(df))
        try:
            train_pos, test_pos = train_test_split(
                positions, test_size=n_test, random_state=config.seed, stratify=stratify
            )
        except ValueError as exc:  # sklearn's own checks on class counts and split sizes
            raise InputDataError(f"cannot split the {len(df)} rows with split={method!r}: {exc}") from exc
    parts = {"train": df.iloc[train_pos], "test": df.iloc[test_pos]}
    if task == CLASSIFICATION:
        notes.extend(_check_classes_present(y, parts, config.label_column, method))
    return _Split(parts["train"], parts["test"], method, tuple(notes))


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
    counts = y.value_counts()
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
    y: pd.Series, parts: dict[str, pd.DataFrame], label_column: str, method: str
) -> list[str]:
    """Errors for classes a split lacks when the split promised them; notes otherwise."""
    counts = y.value_counts()
    notes = []
    for split_name, part in parts.items():
        present = set(part[label_column].unique())
        for label, count in counts.items():
            if label in present:
                continue
            if split_name == "train" or method == "stratified":
                raise InputDataError(
                    f"class {label!r} of label column {label_column!r} ({int(count)} row(s) in all) got "
                    f"no row in the {split_name} split; add rows for it, raise the size of that split, "
                    "or remove the class"
                )
            notes.append(
                f"class {label!r} ({int(count)} row(s) in all) has no row in the {split_name} split."
            )
    return notes
