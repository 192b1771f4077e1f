"""The training reference: what monitoring compares new data with, kept beside the model.

``reference.json`` sits in the model directory next to ``model.joblib`` and holds, for every model
input column and for the label, enough to run every drift test of ``monitor_drift`` without the
training data:

- numeric columns: the count of values and of missing ones, summary statistics over ALL values
  (mean, population std, min, max, quantiles), a stratified sample of at most ``max_sample`` values
  (for the Kolmogorov-Smirnov test and the Wasserstein distance, which need values), quantile bin
  edges with the count of every training value in each bin (for PSI and Jensen-Shannon), and, when
  there are at most ``MAX_DISCRETE_VALUES`` distinct values, the count of each value;
- categorical and boolean columns: the count of every category (the ``MAX_CATEGORIES`` most frequent
  ones, the rest summed as "(other)") and of missing values;
- datetime and text columns: only their missing counts (monitoring does not test them);
- the training row count, the label's distribution, and optionally the model's test-set metrics.

Why a sample of 5,000 by default: below 1,000 reference values every value is kept, so the
small-sample tests (KS, chi-squared, Z) run on exactly the training data. Above that the default
numeric test is the Wasserstein distance, normed by the training standard deviation (computed over
all values), with a threshold of 0.1. The sample is stratified: the sorted values are cut into
``max_sample`` equal-count strata and one value is drawn (seeded) from each, so its quantile
function follows the training data's to within one stratum. For a standard normal column of 1M
values the Wasserstein distance between such a 5,000-value sample and all the values is about
0.0006 (an independent random sample of 5,000 gives about 0.012), under 1% of the threshold, while
30 numeric columns still fit in about 3 MB of JSON. Missing values, NaN and +-inf are not part of
any distribution; they are counted as missing.

Every category and value key is a string (JSON object keys): ``category_key`` makes 1, 1.0 and
"1" the same key, and True "True", both here and when monitoring reads the current data.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import (
    BOOLEAN,
    CATEGORICAL,
    DATETIME,
    NUMERIC,
    TEXT,
)
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.logical_types import LOGICAL_TYPES

REFERENCE_FILE = "reference.json"
# Written by evaluate into the registry version it evaluated; its metrics are attached on load.
EVALUATION_FILE = "evaluation.json"
REFERENCE_FORMAT = "mlstages.reference/1"
DEFAULT_MAX_SAMPLE = 5000
# Deciles: the customary binning of the population stability index.
DEFAULT_BINS = 10
DEFAULT_SEED = 42
# A numeric column with at most this many distinct values also keeps the count of each value, so
# its binned tests compare values rather than quantile bins (as Evidently does below 20 values).
MAX_DISCRETE_VALUES = 20
# Categories beyond the most frequent MAX_CATEGORIES are summed into OTHER.
MAX_CATEGORIES = 1000
OTHER = "(other)"
MISSING = "(missing)"
QUANTILE_LEVELS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

# How each logical type is compared.
NUMERIC_KIND = "numeric"
CATEGORICAL_KIND = "categorical"
UNTESTED_KIND = "untested"
KIND_OF_TYPE = {
    NUMERIC: NUMERIC_KIND,
    CATEGORICAL: CATEGORICAL_KIND,
    BOOLEAN: CATEGORICAL_KIND,
    DATETIME: UNTESTED_KIND,
    TEXT: UNTESTED_KIND,
}
_EXAMPLES = 3


# --- reading columns (shared with monitor_drift, so both sides read values the same way) ---------


def category_key(value: Any) -> str:
    """The string key of a category or discrete value: 1, 1.0, np.int64(1) and "1" are all "1"."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def category_counts(series: pd.Series) -> tuple[dict[str, int], int]:
    """Rows per category key (most frequent first, ties by key) and the count of missing values."""
    counts: dict[str, int] = {}
    missing = 0
    # One pass: value_counts with the missing values, rather than a second isna() pass.
    for value, count in series.value_counts(dropna=False, sort=False).items():
        if not count:
            continue  # an unused category of a categorical dtype
        if pd.isna(value):
            missing += int(count)
            continue
        key = category_key(value)
        counts[key] = counts.get(key, 0) + int(count)
    ordered = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return ordered, missing


def float_values(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """The column as float64 (missing values as NaN) and examples of values that are not numbers.

    Booleans become 0/1; strings that spell numbers are converted. When the second element is
    non-empty the column is not numeric and the array must not be used.
    """
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype="float64", na_value=np.nan), []
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    if bad.any():
        examples = [repr(v) for v in pd.unique(series[bad])[:_EXAMPLES]]
        return np.empty(0), examples
    return converted.to_numpy(dtype="float64", na_value=np.nan), []


def finite_values(values: np.ndarray) -> np.ndarray:
    """The finite values of a float array (NaN and +-inf count as missing)."""
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]


def stratified_sample(sorted_values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One value drawn from each of ``size`` equal-count strata of ``sorted_values`` (all of them
    when there are no more than ``size``); sorted."""
    n = len(sorted_values)
    if n <= size:
        return sorted_values.copy()
    starts = (np.arange(size, dtype=np.int64) * n) // size
    ends = (np.arange(1, size + 1, dtype=np.int64) * n) // size
    picks = starts + (rng.random(size) * (ends - starts)).astype(np.int64)
    return sorted_values[picks]


def quantile_edges(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of (at most) ``bins`` equal-count bins; bin k holds edges[k-1] <= x < edges[k],
    the first and last bins are open-ended. Ties can merge bins."""
    if len(sorted_values) == 0:
        return np.empty(0)
    edges = np.unique(np.quantile(sorted_values, np.arange(1, bins) / bins))
    # An edge at the minimum would leave the first bin empty on the training data.
    return edges[edges > sorted_values[0]]


def bin_counts_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``sorted_values`` in the bins of ``quantile_edges`` (len(edges) + 1 bins)."""
    cuts = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], cuts, [len(sorted_values)])))


def value_counts_sorted(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how often each occurs (no second sort)."""
    if len(sorted_values) == 0:
        return sorted_values, np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.concatenate((starts, [len(sorted_values)])))
    return sorted_values[starts], counts


# --- building ------------------------------------------------------------------------------------


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _check_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, float | None], str | None]:
    """Flat metrics from a flat dict or from an evaluation JSON ({"task", "metrics": {...}})."""
    task = None
    if isinstance(metrics.get("metrics"), Mapping):
        task = metrics.get("task")
        metrics = metrics["metrics"]
    flat: dict[str, float | None] = {}
    for name, value in metrics.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ParameterError(
                f"parameter metrics: {name!r} is {value!r}; metrics must be numbers (or null when undefined)"
            )
        flat[str(name)] = None if value is None or not math.isfinite(value) else float(value)
    return flat, task


def build_reference(
    train_df: pd.DataFrame,
    label_column: str | None,
    input_columns: Mapping[str, str],
    *,
    max_sample: int = DEFAULT_MAX_SAMPLE,
    bins: int = DEFAULT_BINS,
    seed: int = DEFAULT_SEED,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The reference statistics of the training data (a JSON-serializable dict).

    Args:
        train_df: The training rows the model was fitted on (raw columns and the label).
        label_column: The label; None or "" for none.
        input_columns: Model input column -> logical type (numeric, categorical, boolean,
            datetime, text), in the model's input order: the model metadata's ``input_columns``.
        max_sample: Most numeric values kept per column for the KS and Wasserstein tests.
        bins: Quantile bins per numeric column for PSI and Jensen-Shannon.
        seed: Seeds the stratified samples.
        metrics: Optional test-set metrics of the model: a flat {name: value} dict or the
            evaluate stage's evaluation JSON (whose "task" is kept too).

    Returns:
        The reference; ``save_reference`` writes it beside the model.
    """
    from mlstages.components.common.reference_columns import ReferenceAccumulator

    label_column = _check_arguments(
        list(train_df.columns), len(train_df), label_column, input_columns, max_sample, bins
    )
    accumulator = ReferenceAccumulator(input_columns, label_column)
    accumulator.update(train_df, start=0)
    return _reference(accumulator, max_sample=max_sample, bins=bins, seed=seed, metrics=metrics)


def build_reference_from_dataset(
    path: str | os.PathLike,
    label_column: str | None,
    input_columns: Mapping[str, str],
    *,
    max_sample: int = DEFAULT_MAX_SAMPLE,
    bins: int = DEFAULT_BINS,
    seed: int = DEFAULT_SEED,
    metrics: Mapping[str, Any] | None = None,
    batch_rows: int | None = None,
    what: str = "training data",
) -> dict[str, Any]:
    """``build_reference`` of the dataset at ``path`` (a folder of Parquet parts or one file), read a
    batch at a time: the same reference while each column has at most ``sketches.exact_limit``
    values (or categories): EXACT_VALUES, fewer for a table too wide for the task's memory
    allowance; sketched beyond (see ``reference_columns``). ``batch_rows``: rows read at a time
    (default: ``dataset_files.batch_rows_for`` the table's width)."""
    from mlstages.components.common.dataset_files import (
        batch_rows_for,
        bytes_per_row,
        dataset_columns,
        dataset_rows,
        iter_batches,
    )
    from mlstages.components.common.reference_columns import ReferenceAccumulator
    from mlstages.components.common.sketches import exact_limit

    columns = dataset_columns(path, what=what)
    label_column = _check_arguments(
        columns, dataset_rows(path, what=what), label_column, input_columns, max_sample, bins
    )
    wanted = [str(c) for c in input_columns] + ([label_column] if label_column else [])
    accumulator = ReferenceAccumulator(input_columns, label_column, exact_limit(len(wanted)))
    # Batches of about BATCH_BYTES, as validate_data's (131,072 rows of 151 float columns took the
    # reference of a 240k-row split to 1,388 MiB under a 1 GiB allowance).
    batch_rows = batch_rows or batch_rows_for(bytes_per_row(path, what=what))
    for batch in iter_batches(path, batch_rows=batch_rows, columns=wanted, what=what):
        accumulator.update(batch, start=int(batch.index[0]))
    return _reference(accumulator, max_sample=max_sample, bins=bins, seed=seed, metrics=metrics)


def _check_arguments(
    columns: list[Any],
    rows: int,
    label_column: str | None,
    input_columns: Mapping[str, str],
    max_sample: int,
    bins: int,
) -> str | None:
    """Refuse bad parameters and data naming what is wrong; the label column, None for none."""
    if isinstance(max_sample, bool) or not isinstance(max_sample, int) or max_sample < 1:
        raise ParameterError(f"parameter max_sample={max_sample!r} must be a positive integer")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ParameterError(f"parameter bins={bins!r} must be an integer of at least 2")
    if not isinstance(input_columns, Mapping) or not input_columns:
        raise ParameterError(
            "parameter input_columns must map each model input column to its logical type, "
            f"got {input_columns!r}"
        )
    if rows == 0:
        raise InputDataError("the training data has no rows: there is nothing to take a reference of")
    bad_types = {c: t for c, t in input_columns.items() if t not in LOGICAL_TYPES}
    if bad_types:
        raise ParameterError(
            f"parameter input_columns: {', '.join(f'{c!r}: {t!r}' for c, t in bad_types.items())} "
            f"not a logical type; use one of {', '.join(LOGICAL_TYPES)}"
        )
    absent = [c for c in input_columns if c not in columns]
    if absent:
        raise InputDataError(
            f"input_columns: column(s) {', '.join(map(repr, absent))} not in the training data; "
            f"it has: {', '.join(map(str, columns))}"
        )
    label_column = label_column or None
    if label_column is not None:
        if label_column in input_columns:
            raise ParameterError(f"parameter label_column={label_column!r} is also one of input_columns")
        if label_column not in columns:
            raise InputDataError(
                f"label_column {label_column!r} is not a column of the training data; "
                f"its columns are: {', '.join(map(str, columns))}"
            )
    return label_column


def _reference(
    accumulator: Any, *, max_sample: int, bins: int, seed: int, metrics: Mapping[str, Any] | None
) -> dict[str, Any]:
    columns, label = accumulator.entries(max_sample=max_sample, bins=bins, seed=seed)
    flat_metrics, task = _check_metrics(metrics) if metrics is not None else (None, None)

    from mlstages.components import __version__

    return {
        "format": REFERENCE_FORMAT,
        "rows": accumulator.rows,
        "features": list(columns),
        "columns": columns,
        "label_column": accumulator.label_column,
        "label": label,
        "metrics": flat_metrics,
        "task": task,
        "params": {"max_sample": max_sample, "bins": bins, "seed": seed},
        "mlstages": __version__,
    }


def attach_metrics(reference: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``reference`` with the model's test-set metrics (flat dict or evaluation JSON)."""
    flat, task = _check_metrics(metrics)
    updated = dict(reference)
    updated["metrics"] = flat
    if task is not None:
        updated["task"] = task
    return updated


# --- saving and loading --------------------------------------------------------------------------


def save_reference(reference: Mapping[str, Any], directory: str | os.PathLike) -> Path:
    """Write ``<directory>/reference.json`` (whole or not at all) and return its path."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    path = target / REFERENCE_FILE
    partial = target / f".{REFERENCE_FILE}.partial"
    try:
        partial.write_text(json.dumps(reference, separators=(",", ":"), allow_nan=False), encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def reference_location(directory_or_uri: str | os.PathLike) -> str:
    """Where the reference file is: the argument itself when it names a .json file, else
    ``reference.json`` inside the directory (a model directory or a reference artifact)."""
    text = os.fspath(directory_or_uri)
    if text.endswith(".json"):
        return text
    if text.startswith("gs://"):
        return f"{text.rstrip('/')}/{REFERENCE_FILE}"
    path = Path(text.removeprefix("file://"))
    return str(path if path.is_file() else path / REFERENCE_FILE)


def read_evaluation_file(uri: str) -> dict[str, Any] | None:
    """The evaluation JSON evaluate wrote at ``uri`` (a path or gs:// URI), checked to hold its
    metrics; None when there is no such file."""
    from mlstages.components.common import storage

    if not storage.exists(uri):
        return None
    try:
        evaluation = json.loads(storage.read_bytes(uri))
    except ValueError as exc:
        raise InputDataError(f"{uri} is not valid JSON: {exc}") from exc
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("metrics"), dict):
        raise InputDataError(f'{uri} is not an evaluation written by evaluate: it has no "metrics" mapping')
    return evaluation


def evaluation_location(reference_file: str) -> str:
    """Where the evaluation JSON of a published model version sits: beside its reference.json."""
    if reference_file.startswith("gs://"):
        return f"{reference_file.rsplit('/', 1)[0]}/{EVALUATION_FILE}"
    return str(Path(reference_file.removeprefix("file://")).parent / EVALUATION_FILE)


def load_reference(directory_or_uri: str | os.PathLike) -> dict[str, Any]:
    """Read a reference written by ``save_reference`` from a local directory or file, or gs://.

    When an ``evaluation.json`` sits beside it (evaluate writes one into the registry version it
    evaluated), the model's test-set metrics from it are attached, so monitoring can compare the
    model's performance on labelled windows with its performance at training time.
    """
    from mlstages.components.common import storage
    from mlstages.components.common.errors import StorageNotFound

    location = reference_location(directory_or_uri)
    try:
        data = storage.read_bytes(location)
    except (StorageNotFound, FileNotFoundError) as exc:
        raise InputDataError(
            f"{location}: no such file. The reference statistics are written by train as "
            f"{REFERENCE_FILE} in the model directory; pass that directory or the reference artifact"
        ) from exc
    try:
        reference = json.loads(data)
    except ValueError as exc:
        raise InputDataError(f"{location} is not valid JSON: {exc}") from exc
    if not isinstance(reference, dict) or reference.get("format") != REFERENCE_FORMAT:
        found = reference.get("format") if isinstance(reference, dict) else type(reference).__name__
        raise InputDataError(
            f"{location} is not an mlstages reference (format {found!r}, expected {REFERENCE_FORMAT!r})"
        )
    missing = [k for k in ("rows", "features", "columns") if k not in reference]
    if missing or any(f not in reference["columns"] for f in reference["features"]):
        raise InputDataError(f"{location} is incomplete: it lacks {', '.join(missing) or 'column entries'}")
    evaluation_file = evaluation_location(location)
    evaluation = read_evaluation_file(evaluation_file)
    if evaluation is not None:
        try:
            reference = attach_metrics(reference, evaluation)
        except ParameterError as exc:
            raise InputDataError(f"{evaluation_file}: {exc}") from exc
    return reference
