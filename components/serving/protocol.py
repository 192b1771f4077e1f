"""Requests to rows: V1 instances and V2 tensors decoded into a DataFrame with one type rule (the
model card's logical type of each input feature); every malformed request gets a message naming
the row, the feature and the expected type."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import (
    InferInput,
    InferRequest,
)

from mlstages.components.common.datasets import (
    BOOLEAN,
    CATEGORICAL,
    DATETIME,
    NUMERIC,
    TEXT,
)
from mlstages.components.common.model_card import (
    InputFeature,
)

# Problems listed in one error message; the rest are counted.
MAX_REPORTED_PROBLEMS = 5


RETURN_PROBABILITIES = "return_probabilities"


REQUEST_ID = "request_id"


PREDICT_OUTPUT = "predict"


PROBA_OUTPUT = "predict_proba"


NUMERIC_DATATYPES = ("FP64", "FP32", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8")


EXPECTED_DATATYPES: dict[str, tuple[str, ...]] = {
    NUMERIC: NUMERIC_DATATYPES,
    BOOLEAN: ("BOOL",),
    CATEGORICAL: ("BYTES",),
    TEXT: ("BYTES",),
    DATETIME: ("BYTES",),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Problems:
    """Collects what is wrong with a request, so that one answer names several problems."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_REPORTED_PROBLEMS:
            self.items.append(message)

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = self.count - len(self.items)
        raise InvalidInput("; ".join(self.items) + (f"; and {more} more problem(s)" if more > 0 else ""))


def _number(value: Any, row: int, label: str, problems: _Problems) -> float:
    # The common cases first: this runs once per value of every request.
    if type(value) is float or type(value) is int:
        number = float(value) if type(value) is float or abs(value) < 2**53 else _big(value)
        if math.isinf(number):
            problems.add(
                f"row {row}, {label}: {_shown(value)} is infinite; send a finite number, or null for missing"
            )
        return number  # NaN (V2's parser reads it) is a missing value, like null
    if value is None:
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        problems.add(f"row {row}, {label}: expected a number or null, got the boolean {_shown(value)}")
        return math.nan
    if isinstance(value, (int, float, np.integer, np.floating)):
        return _number(float(value) if not isinstance(value, int) else int(value), row, label, problems)
    kind = "string" if isinstance(value, (str, bytes)) else type(value).__name__
    problems.add(f"row {row}, {label}: expected a number or null, got the {kind} {_shown(value)}")
    return math.nan


def _big(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _string(value: Any, row: int, label: str, problems: _Problems) -> Any:
    if type(value) is str:
        return value
    if value is None:
        return np.nan
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            problems.add(f"row {row}, {label}: the bytes are not UTF-8 text")
            return np.nan
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return np.nan
    problems.add(
        f"row {row}, {label}: expected a string or null, got {_shown(value)} ({type(value).__name__})"
    )
    return np.nan


def _boolean(value: Any, row: int, label: str, problems: _Problems) -> Any:
    if value is None:
        return pd.NA
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    problems.add(f"row {row}, {label}: expected true, false or null, got {_shown(value)}")
    return pd.NA


def _column(feature: InputFeature, values: Sequence[Any], problems: _Problems) -> Any:
    """One feature's values as the column the Pipeline was trained on (float64 for numbers,
    objects with NaN for missing strings, nullable booleans, datetimes); problems are collected."""
    label = f"feature {feature.name!r} ({feature.logical_type})"
    kind = feature.logical_type
    if kind == NUMERIC:
        return np.array([_number(v, i, label, problems) for i, v in enumerate(values)], dtype="float64")
    if kind == BOOLEAN:
        cells = [_boolean(v, i, label, problems) for i, v in enumerate(values)]
        return (
            pd.array(cells, dtype="boolean")
            if any(c is pd.NA for c in cells)
            else np.array(cells, dtype=bool)
        )
    cells = [_string(v, i, label, problems) for i, v in enumerate(values)]
    if kind != DATETIME:
        column = np.empty(len(cells), dtype=object)
        column[:] = cells
        return column
    parsed = []
    for i, cell in enumerate(cells):
        try:
            parsed.append(pd.NaT if not isinstance(cell, str) else pd.Timestamp(cell))
        except (ValueError, TypeError):
            problems.add(f"row {i}, {label}: {_shown(cell)} is not an ISO 8601 date or time")
            parsed.append(pd.NaT)
    try:
        return pd.Series(pd.to_datetime(parsed))
    except (ValueError, TypeError):
        # Values with and without a time zone, or in several zones, cannot share one column.
        problems.add(f"{label}: mix of time zones; send every value in the same zone (or none)")
        return pd.Series([pd.NaT] * len(parsed), dtype="datetime64[ns]")


def _frame(features: Sequence[InputFeature], columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    problems = _Problems()
    # Built in feature order, so no columns= reindexing (which costs more than building the frame).
    data = {f.name: _column(f, columns[f.name], problems) for f in features}
    problems.raise_if_any()
    return pd.DataFrame(data, copy=False)


def _expected_order(features: Sequence[InputFeature]) -> str:
    return ", ".join(f.name for f in features)


def rows_to_frame(
    instances: Any, features: Sequence[InputFeature], label_column: str | None = None
) -> pd.DataFrame:
    """V1 ``instances`` (objects keyed by feature name, or lists in feature order) as a DataFrame.

    Raises:
        InvalidInput: (400) naming the row and feature of every problem found (up to a few).
    """
    if not isinstance(instances, list):
        raise InvalidInput(
            f'"instances" must be a list of rows, got {type(instances).__name__}: send '
            '{"instances": [{"feature": value, ...}, ...]}'
        )
    if not instances:
        raise InvalidInput('"instances" is empty: send at least one row to predict')
    names = [f.name for f in features]
    known = set(names)
    columns: dict[str, list[Any]] = {name: [] for name in names}
    problems = _Problems()
    for i, row in enumerate(instances):
        if isinstance(row, dict):
            missing = [n for n in names if n not in row]
            unknown = [k for k in row if k not in known]
            if missing:
                problems.add(
                    f"row {i} lacks feature(s) {', '.join(map(repr, missing))} (send null for a missing value)"
                )
            for key in unknown:
                hint = " (the label column: leave it out)" if key == label_column else ""
                problems.add(
                    f"row {i} has unknown feature {key!r}{hint}; the features are: {_expected_order(features)}"
                )
            if not missing and not unknown:
                for name in names:
                    columns[name].append(row[name])
        elif isinstance(row, list):
            if len(row) != len(names):
                problems.add(
                    f"row {i} has {len(row)} value(s); expected {len(names)} in this order: "
                    f"{_expected_order(features)}"
                )
            else:
                for name, value in zip(names, row, strict=True):
                    columns[name].append(value)
        else:
            problems.add(
                f"row {i} is {type(row).__name__} {_shown(row)}; send an object keyed by feature name "
                "or a list of values in feature order"
            )
    problems.raise_if_any()
    return _frame(features, columns)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, (list, tuple)):
        return [data]
    flat: list[Any] = []
    for item in data:
        if isinstance(item, (list, tuple)):
            flat.extend(_flatten(item))
        else:
            flat.append(item)
    return flat


def _tensor_values(tensor: InferInput) -> list[Any]:
    """The tensor's values, row-major and flat, whether they came as JSON data or binary data."""
    if getattr(tensor, "_raw_data", None) is not None:
        try:
            array = tensor.as_numpy()
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"input {tensor.name!r}: the binary data does not match its shape: {exc}"
            ) from exc
        return array.reshape(-1).tolist()
    if tensor.data is None:
        raise InvalidInput(f"input {tensor.name!r} has no data")
    return _flatten(list(tensor.data))


# The range of each integer datatype, for JSON data (binary data is typed by its bytes).
_INTEGER_RANGES = {
    **{f"INT{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)},
    **{f"UINT{bits}": (0, 2**bits - 1) for bits in (8, 16, 32, 64)},
}


def _datatype_problem(datatype: str, value: Any) -> str | None:
    """Why ``value`` cannot be an element of a ``datatype`` tensor, or None if it can (null always
    can: a missing value). BYTES carries any value, as a mixed 2-D tensor needs."""
    if value is None or datatype == "BYTES":
        return None
    if datatype == "BOOL":
        return None if isinstance(value, bool) else "is not a boolean"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "is not a number"
    if datatype in _INTEGER_RANGES:
        if isinstance(value, float) and not value.is_integer():
            return "is not a whole number"
        low, high = _INTEGER_RANGES[datatype]
        if not low <= value <= high:
            return f"is outside {datatype}'s range [{low}, {high}]"
    return None


def _check_datatype(tensor: InferInput, values: Sequence[Any]) -> None:
    """Every JSON value of ``tensor`` fits its declared datatype: INT64 holding 2008.5 is refused,
    not truncated."""
    # FP tensors: the per-row conversion already names a non-number by row and feature.
    if getattr(tensor, "_raw_data", None) is not None or tensor.datatype not in (*_INTEGER_RANGES, "BOOL"):
        return
    problems = _Problems()
    for position, value in enumerate(values):
        reason = _datatype_problem(tensor.datatype, value)
        if reason is not None:
            problems.add(
                f"input {tensor.name!r} is {tensor.datatype} but its value {_shown(value)} at position "
                f"{position} {reason}: fix the value or declare the datatype that holds it"
            )
    problems.raise_if_any()


def require_integer_shapes() -> None:
    """Make KServe's V2 request model refuse a shape of ``["1"]`` or ``[1.0]`` (a 422 naming the field).

    KServe 0.21 declares ``shape: List[int]``, which pydantic's lax mode fills from strings and
    whole floats; a V2 shape is integers. Call once per process, before the server registers its
    routes (FastAPI builds its request validator then).
    """
    from kserve.protocol.rest.v2_datamodels import InferenceRequest, RequestInput
    from pydantic import StrictInt

    field = RequestInput.model_fields["shape"]
    if field.annotation == list[StrictInt]:
        return
    field.annotation = list[StrictInt]
    RequestInput.model_rebuild(force=True)
    InferenceRequest.model_rebuild(force=True)


def _check_shape(tensor: InferInput, count: int) -> list[int]:
    shape = list(tensor.shape or [])
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise InvalidInput(f"input {tensor.name!r} has shape {shape}; dimensions must be integers >= 0")
    if math.prod(shape) != count:
        raise InvalidInput(f"input {tensor.name!r} has shape {shape} but {count} value(s); they must agree")
    return shape


def infer_request_to_frame(request: InferRequest, features: Sequence[InputFeature]) -> pd.DataFrame:
    """A V2 request (one tensor per feature, or one 2-D tensor in feature order) as a DataFrame.

    Raises:
        InvalidInput: (400) naming the input, row and feature of what is wrong.
    """
    tensors = list(request.inputs or [])
    if not tensors:
        raise InvalidInput('the request has no "inputs": send one tensor per feature or one 2-D tensor')
    names = [f.name for f in features]
    by_feature = {f.name: f for f in features}
    if len(tensors) == 1:
        shape = list(tensors[0].shape or [])
        is_matrix = len(shape) == 2 and shape[1] == len(names) and len(names) > 1
        if is_matrix or tensors[0].name not in by_feature:
            return _matrix_to_frame(tensors[0], features)
    given = [t.name for t in tensors]
    duplicated = sorted({n for n in given if given.count(n) > 1})
    if duplicated:
        raise InvalidInput(f"input(s) {', '.join(map(repr, duplicated))} appear more than once")
    unknown = [n for n in given if n not in by_feature]
    missing = [n for n in names if n not in given]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        if missing:
            parts.append(f"no input for feature(s) {', '.join(map(repr, missing))}")
        raise InvalidInput(
            f"{' and '.join(parts)}: send one tensor per feature ({_expected_order(features)}), "
            "or a single 2-D tensor with the features in that order"
        )
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    for tensor in tensors:
        feature = by_feature[tensor.name]
        allowed = EXPECTED_DATATYPES[feature.logical_type]
        if tensor.datatype not in allowed:
            raise InvalidInput(
                f"input {tensor.name!r} has datatype {tensor.datatype}, but feature {tensor.name!r} is "
                f"{feature.logical_type}: send it as {' or '.join(allowed[:3])}"
            )
        values = _tensor_values(tensor)
        shape = _check_shape(tensor, len(values))
        _check_datatype(tensor, values)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInput(
                f"input {tensor.name!r} has shape {shape}; a feature's tensor has shape [n] or [n, 1]"
            )
        if rows is not None and shape[0] != rows:
            raise InvalidInput(
                f"input {tensor.name!r} has {shape[0]} row(s) but the inputs before it have {rows}; "
                "every feature's tensor needs one value per row"
            )
        rows = shape[0]
        columns[tensor.name] = values
    if not rows:
        raise InvalidInput("the inputs have no rows: send at least one row to predict")
    return _frame(features, columns)


def _matrix_to_frame(tensor: InferInput, features: Sequence[InputFeature]) -> pd.DataFrame:
    values = _tensor_values(tensor)
    shape = _check_shape(tensor, len(values))
    _check_datatype(tensor, values)
    width = len(features)
    if len(shape) != 2 or shape[1] != width:
        raise InvalidInput(
            f"input {tensor.name!r} has shape {shape}; send a 2-D tensor of shape [n, {width}] with each "
            f"row's values in this order: {_expected_order(features)} (or one tensor per feature, "
            "named after it)"
        )
    if shape[0] == 0:
        raise InvalidInput(f"input {tensor.name!r} has no rows: send at least one row to predict")
    columns = {f.name: values[j::width] for j, f in enumerate(features)}
    return _frame(features, columns)
