"""The training rows as train needs them: the label and ONE feature matrix, built a batch at a time.

The raw rows are never held whole: each batch is transformed by the fitted feature pipeline and
written into a preallocated float64 matrix, then dropped. Before this, train held the raw rows, the
pipeline's DataFrame output with its intermediate blocks, and an array copy of it for the
estimator: 2.9 GB for 765k training rows of 25 columns (benchmarks/results/scale.md), six times
the matrix itself. The matrix stays float64: the default gradient boosting, refit on every
training row as the quality floor, converts its input to float64 before binning it, so a float32
matrix would lower the peak by nothing and cost a copy at that fit (and at the search's boosting
fits); random forests, which take float32, copy a float64 matrix at half its size.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.dataset_positions import sample_positions
from mlstages.components.common.errors import InputDataError
from mlstages.components.common.labels import check_label
from mlstages.components.train.config import REGRESSION, TrainConfig

# The final pipeline's predictions are checked on at most this many training rows: enough to catch
# a broken model, cheap on a million rows.
PREDICTION_CHECK_ROWS = 10_000

# Rows on which the feature pipeline's array output is compared with its DataFrame output.
_ARRAY_CHECK_ROWS = 100

# Rows of a DataFrame transformed at a time: the pipeline's intermediate blocks stay small.
FRAME_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class TrainingMatrix:
    """The training rows, transformed.

    features: (rows, features) float64, C-ordered: what every candidate is scored and the winner
        refit on.
    y: the label, one value per row.
    feature_names: the feature pipeline's output names (as strings).
    array_pipeline: a copy of the feature pipeline set to output arrays (and checked to give the
        same numbers), or None when it cannot: the estimator is then fitted on a DataFrame.
    check_rows: a seeded sample of at most PREDICTION_CHECK_ROWS raw rows (the input columns), to
        check the exported model's predictions on and to type its inputs.
    input_columns: the raw columns the served model takes, in order.
    """

    features: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    array_pipeline: Any | None
    check_rows: pd.DataFrame
    input_columns: list[str]

    @property
    def rows(self) -> int:
        return len(self.y)

    def frame(self) -> pd.DataFrame:
        """The features as a DataFrame over the same memory (no copy)."""
        return pd.DataFrame(self.features, columns=self.feature_names, copy=False)

    def fit_input(self) -> Any:
        """What the final estimator is fitted on: the array when the served pipeline outputs arrays,
        else the DataFrame it outputs."""
        return self.features if self.array_pipeline is not None else self.frame()


def resolve_input_columns(
    available: Sequence[str], feature_pipeline: Any, label_column: str, given: Sequence[str] | None
) -> list[str]:
    """The raw columns the served model takes: ``given``, else those the feature pipeline was
    fitted on (``feature_names_in_``), else every available column but the label."""
    if given is not None:
        columns = [str(c) for c in given]
    elif hasattr(feature_pipeline, "feature_names_in_"):
        columns = [str(c) for c in feature_pipeline.feature_names_in_]
    else:
        columns = [str(c) for c in available if c != label_column]
    if label_column in columns:
        raise InputDataError(
            f"the feature pipeline takes the label column {label_column!r} as an input: refit it on "
            "the feature columns only, or the served model would need the label to predict"
        )
    missing = [c for c in columns if c not in set(map(str, available))]
    if missing:
        raise InputDataError(
            f"the training data lacks the feature pipeline's input column(s) {', '.join(map(repr, missing))}"
        )
    if not columns:
        raise InputDataError("the training data has no feature columns besides the label")
    return columns


def frame_batches(df: pd.DataFrame, batch_rows: int = FRAME_BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """A DataFrame held by the caller, a slice at a time."""
    for start in range(0, len(df), batch_rows):
        yield df.iloc[start : start + batch_rows]


def build_matrix(
    batches: Iterable[pd.DataFrame],
    rows: int,
    input_columns: Sequence[str],
    feature_pipeline: Any,
    config: TrainConfig,
) -> TrainingMatrix:
    """Transform ``rows`` raw rows, arriving in ``batches`` that hold the input columns and the
    label, into one feature matrix and the checked label."""
    if rows == 0:
        raise InputDataError("the training data has no rows")
    columns = list(input_columns)
    label_column = config.label_column
    check_positions = sample_positions(rows, PREDICTION_CHECK_ROWS, config.seed)
    labels: list[pd.Series] = []
    checks: list[pd.DataFrame] = []
    features: np.ndarray | None = None
    names: list[str] = []
    array_pipeline = None
    offset = 0
    for batch in batches:
        if not len(batch):
            continue
        if features is None:
            check_label(batch, label_column, what="training split")  # present, before any transform
            names, array_pipeline = _output_layout(feature_pipeline, batch[columns].iloc[:_ARRAY_CHECK_ROWS])
            features = np.empty((rows, len(names)), dtype=np.float64)
        end = offset + len(batch)
        if end > rows:
            raise InputDataError(f"the training data holds more than the {rows:,} rows expected")
        raw = batch[columns]
        features[offset:end] = _transform_batch(array_pipeline or feature_pipeline, raw, names, offset)
        labels.append(batch[label_column].reset_index(drop=True))
        lo, hi = np.searchsorted(check_positions, [offset, end])
        if hi > lo:
            checks.append(raw.iloc[check_positions[lo:hi] - offset])
        offset = end
    if features is None or offset != rows:
        raise InputDataError(f"the training data holds {offset:,} rows, not the {rows:,} expected")
    label = pd.concat(labels, ignore_index=True) if len(labels) > 1 else labels[0]
    y = label_values(pd.DataFrame({label_column: label}), label_column, config.task)
    check_rows = pd.concat(checks) if len(checks) > 1 else checks[0]
    return TrainingMatrix(features, y, names, array_pipeline, check_rows.reset_index(drop=True), columns)


def label_values(df: pd.DataFrame, label_column: str, task: str) -> np.ndarray:
    """The label as an array, after checking it can be learned for ``task``."""
    # Present, no missing values, numeric for regression, two classes or more for classification.
    label = check_label(df, label_column, what="training split", task=task)
    if task == REGRESSION:
        values = label.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputDataError(
                f"label column {label_column!r} of the training split has an infinite value at row {row} "
                "(0-based): drop or fix that row"
            )
        return values
    if pd.api.types.is_float_dtype(label) and not np.all(np.mod(label.to_numpy(dtype=float), 1) == 0):
        raise InputDataError(
            f"label column {label_column!r} holds fractional numbers, but task='classification' needs "
            "class labels: use task='regression' or bin the label"
        )
    if isinstance(label.dtype, pd.CategoricalDtype):
        return label.to_numpy(dtype=object)
    return label.to_numpy()


def transform_part(
    pipeline: Any,
    batches: Iterator[pd.DataFrame],
    rows: int,
    columns: Sequence[str],
    names: Sequence[str],
    config: TrainConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """One dataset part's rows as ``build_matrix`` makes the task's: each batch transformed by
    ``pipeline`` (the served feature pipeline: array output where it has it) and checked the same
    way, with the checked label. A Dask worker runs it for the full-data refit (full_refit.py), so
    the cluster's rows are the task's rows, transformed alike."""
    features = np.empty((rows, len(names)), dtype=np.float64)
    labels: list[pd.Series] = []
    offset = 0
    for batch in batches:
        if not len(batch):
            continue
        end = offset + len(batch)
        if end > rows:
            raise InputDataError(f"the training data part holds more than the {rows:,} rows expected")
        check_label(batch, config.label_column, what="training split")
        features[offset:end] = _transform_batch(pipeline, batch[list(columns)], list(names), offset)
        labels.append(batch[config.label_column].reset_index(drop=True))
        offset = end
    if offset != rows or not labels:
        raise InputDataError(f"the training data part holds {offset:,} rows, not the {rows:,} expected")
    label = pd.concat(labels, ignore_index=True) if len(labels) > 1 else labels[0]
    return features, label_values(
        pd.DataFrame({config.label_column: label}), config.label_column, config.task
    )


def _output_layout(feature_pipeline: Any, first_rows: pd.DataFrame) -> tuple[list[str], Any | None]:
    """The feature names (from the pipeline's DataFrame output on the first rows) and the array
    output copy of the pipeline, if it gives the same numbers there."""
    frame = _checked_frame(_run(feature_pipeline, first_rows), None, 0)
    names = [str(c) for c in frame.columns]
    return names, _array_output(feature_pipeline, first_rows, frame)


def _run(pipeline: Any, raw: pd.DataFrame) -> Any:
    try:
        output = pipeline.transform(raw)
    except Exception as exc:  # any estimator can be the feature pipeline; name the stage that failed
        raise InputDataError(f"the feature pipeline could not transform the training data: {exc}") from exc
    return output.toarray() if hasattr(output, "toarray") else output


def _transform_batch(pipeline: Any, raw: pd.DataFrame, names: list[str], offset: int) -> np.ndarray:
    output = _run(pipeline, raw)
    if isinstance(output, np.ndarray) and output.dtype.kind in "fiub":
        if output.shape[1] != len(names):
            raise InputDataError(
                f"the feature pipeline output {output.shape[1]} features for training rows from {offset:,} "
                f"but {len(names)} for the first rows: it must output the same features for every row"
            )
        if not np.isfinite(output).all():
            bad = np.flatnonzero(~np.isfinite(output).all(axis=0))
            _raise_not_finite([names[i] for i in bad])
        return output
    return _checked_frame(output, names, offset).to_numpy(dtype=np.float64)


def _checked_frame(output: Any, names: list[str] | None, offset: int) -> pd.DataFrame:
    """The feature pipeline's output as a DataFrame, checked to be numeric and finite: estimators
    cannot fit anything else."""
    frame = output if isinstance(output, pd.DataFrame) else pd.DataFrame(output)
    if names is None:
        frame.columns = [str(c) for c in frame.columns]
    elif len(frame.columns) != len(names):
        raise InputDataError(
            f"the feature pipeline output {len(frame.columns)} features for training rows from {offset:,} "
            f"but {len(names)} for the first rows: it must output the same features for every row"
        )
    else:
        frame.columns = names
    not_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if not_numeric:
        raise InputDataError(
            f"the feature pipeline output non-numeric feature(s) {', '.join(map(repr, not_numeric[:10]))}: "
            "encode them in preprocess"
        )
    bad = [c for c in frame.columns if not np.isfinite(frame[c].to_numpy(dtype=float)).all()]
    if bad:
        _raise_not_finite(bad)
    return frame


def _raise_not_finite(names: Sequence[str]) -> None:
    raise InputDataError(
        f"the feature pipeline output missing or infinite values in feature(s) "
        f"{', '.join(map(repr, list(names)[:10]))}: impute them in preprocess"
    )


def _array_output(feature_pipeline: Any, raw: pd.DataFrame, features: pd.DataFrame) -> Any | None:
    """A copy of the feature pipeline set to output arrays (scikit-learn's
    ``set_output(transform="default")``), or None when it has no such setting, or the copy warns
    (say, a step fitted on a DataFrame now given an array) or gives other numbers than the
    DataFrame it gave (both checked on the first rows)."""
    if not callable(getattr(feature_pipeline, "set_output", None)):
        return None
    try:
        copied = copy.deepcopy(feature_pipeline).set_output(transform="default")
    except (AttributeError, TypeError, ValueError):  # a step without set_output
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            output = copied.transform(raw)
        except Exception:  # any step that cannot work on arrays: keep the DataFrame pipeline
            return None
    if caught or not isinstance(output, np.ndarray) or output.shape != (len(raw), features.shape[1]):
        return None
    expected = features.to_numpy(dtype=float)
    return copied if np.array_equal(output.astype(float), expected) else None
