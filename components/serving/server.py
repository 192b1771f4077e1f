"""The serving runtime: our KServe model server for the suite's exported models.

``SklearnPipelineModel`` is a ``kserve.Model`` that serves one model directory (``model.joblib``, the
whole fitted scikit-learn Pipeline that takes raw rows, and ``metadata.json``) through
``kserve.ModelServer``: the V1 protocol (``/v1/models/NAME:predict``), the Open Inference Protocol
V2 (``/v2/models/NAME/infer``), and KServe's health, readiness and model-listing routes. The same
code runs in three places: the cluster (the ``mlstages-sklearn`` ServingRuntime starts
``python -m mlstages.components.serving``), infra validation before deployment, and local runs
(``serve`` in the foreground, ``serve_in_background`` as a subprocess).

Loading (``load_model_dir``) refuses what would serve wrong answers: a ``model.joblib`` whose sha256
differs from the one in ``metadata.json``, and a model trained with a different scikit-learn than
the one running (training/serving skew). ``gs://`` models are read through the suite's storage
module (digests checked there too) into a scratch folder that is removed once the model is loaded.

Requests. The input features and their logical types come from ``metadata.json``:

- V1: ``{"instances": [...]}``, each instance an object keyed by feature name or a list of values
  in ``input_features`` order; ``{"parameters": {"return_probabilities": true}}`` adds class
  probabilities (classifiers). Response: ``{"predictions": [...]}`` (class labels as in training,
  floats for regression), plus ``"probabilities"`` (one list per row) and ``"classes"`` (their
  order) when asked. ``"parameters": {"request_id": "..."}`` names the request in the prediction
  log; with logging on, the response carries ``"request_id"`` (that one, or a generated one).
- V2: one input tensor per feature (``name`` = feature, shape ``[n]`` or ``[n, 1]``; FP64, FP32 or
  an INT type for numeric features, BOOL for boolean ones, BYTES for categorical, text and datetime
  ones), or a single 2-D tensor of shape ``[n, number of features]`` holding each row's values in
  feature order. Response outputs: ``predict`` and, when requested (``outputs`` or the
  ``return_probabilities`` parameter), ``predict_proba`` (shape ``[n, classes]``; its
  ``classes`` parameter is the JSON list of classes in column order). The response ``id`` is the
  request's ``id`` (generated when absent), which is also the request id in the prediction log.

Values: numbers (JSON numbers, not strings) for numeric features, true/false for boolean ones,
strings for categorical and text ones, ISO 8601 strings for datetime ones. A missing value is
``null``: the exported Pipeline imputes missing values, so null is accepted in every feature and
predicted like a missing value in training. V2's JSON parser also reads ``NaN`` as a missing
number; V1's does not (``NaN`` is not JSON) and answers 400. Infinity is refused everywhere.

Every malformed request gets a 4xx with a message naming what is wrong (row, feature, expected
type or count): an empty batch, a missing or unknown feature, the wrong number of values, a value
of the wrong type, invalid JSON, and a body over ``max_body_bytes`` (413, refused before it is
read). A ValueError or TypeError from the model itself on validated rows is also the request's
doing (an unseen category the encoder refuses, say) and answers 400; only a fault of the server
answers 500.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kserve
import numpy as np
import orjson
import pandas as pd
import requests
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    to_http_parameters,
)
from kserve.utils.numpy_codec import from_np_dtype

from mlstages.components.common import storage
from mlstages.components.common.artifacts import METADATA_FILE, file_sha256
from mlstages.components.common.datasets import (
    BOOLEAN,
    CATEGORICAL,
    DATETIME,
    LOGICAL_TYPES,
    NUMERIC,
    TEXT,
)
from mlstages.components.common.errors import DigestMismatch, MlstagesError, ParameterError, StorageNotFound
from mlstages.components.common.registry import check_model_name
from mlstages.components.serving.prediction_log import (
    DEFAULT_MAX_ROWS,
    DEFAULT_MAX_SECONDS,
    PredictionLogger,
    check_request_id,
    model_version_of,
)

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
DEFAULT_HTTP_PORT = 8080
# A 100-row request of raw rows is about 20 KB; 4 MiB holds tens of thousands of rows and keeps a
# single request from occupying the server (and its memory) for long.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
# Where gs:// models are downloaded before loading (a scratch folder inside it, removed after the
# load); the system's temporary folder when unset.
CACHE_DIR_ENV = "MLSTAGES_MODEL_CACHE"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
# Starts on a fresh port when the one found free was taken before the server bound it.
PORT_ATTEMPTS = 3
LOG_TAIL_CHARS = 4000
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
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class ModelLoadError(MlstagesError):
    """The model directory cannot be served: files missing or unreadable, or not a model."""


class LibraryVersionMismatch(ModelLoadError):
    """The model was saved with a different scikit-learn than the one running here."""


class ServerStartError(MlstagesError):
    """The model server did not start or did not become ready."""


# --- the model directory -------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFeature:
    """One raw input column of the model: its name and logical type (numeric, categorical, ...)."""

    name: str
    logical_type: str


def input_features(metadata: Mapping[str, Any], where: str = METADATA_FILE) -> tuple[InputFeature, ...]:
    """The model's input features in order, from its metadata (``input_features``, with each
    feature's type there or in ``input_columns``)."""
    entries = metadata.get("input_features")
    if not isinstance(entries, list) or not entries:
        raise ModelLoadError(
            f"{where} records no input_features (the ordered list of the model's raw input columns): "
            "export the model with the mlstages train stage"
        )
    types = metadata.get("input_columns") or {}
    features = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, Mapping) else entry
        if not isinstance(name, str) or not name:
            raise ModelLoadError(f"{where}: input_features has an entry without a name: {entry!r}")
        kind = entry.get("type") if isinstance(entry, Mapping) else None
        kind = kind or types.get(name)
        if kind not in LOGICAL_TYPES:
            raise ModelLoadError(
                f"{where}: input feature {name!r} has type {kind!r}; expected one of {', '.join(LOGICAL_TYPES)}"
            )
        features.append(InputFeature(name, kind))
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ModelLoadError(f"{where}: input_features names a column twice: {names}")
    return tuple(features)


def load_model_dir(model_uri: str, *, cache_dir: str | os.PathLike | None = None) -> tuple[Any, dict]:
    """Load ``model.joblib`` and ``metadata.json`` from a model directory; return (model, metadata).

    ``model_uri`` is a local path, a ``file://`` URI or a ``gs://bucket/prefix`` folder. A gs://
    model is downloaded through the suite's storage module into a scratch folder under
    ``cache_dir`` (default: $MLSTAGES_MODEL_CACHE, else the system's temporary folder), which is
    removed once the model is in memory.

    Raises:
        ModelLoadError: the directory, ``model.joblib`` or ``metadata.json`` is missing, the
            metadata lacks what serving needs, or the file does not unpickle into a model.
        DigestMismatch: ``model.joblib``'s sha256 differs from the one in ``metadata.json``.
        LibraryVersionMismatch: the running scikit-learn is not the one the model was saved with.
    """
    if not isinstance(model_uri, str) or not model_uri.strip():
        raise ParameterError("parameter model_uri is empty: give the model directory (gs://..., or a path)")
    if not storage.is_gcs_uri(model_uri):
        return _load_local(storage.to_local_path(model_uri), model_uri)
    root = cache_dir or os.environ.get(CACHE_DIR_ENV) or None
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="mlstages-model-", dir=root))
    try:
        metadata_uri = storage.join_uri(model_uri, METADATA_FILE)
        model_file_uri = storage.join_uri(model_uri, MODEL_FILE)
        try:
            storage.download_file(metadata_uri, scratch / METADATA_FILE)
            metadata = _read_metadata(scratch / METADATA_FILE, model_uri)
            # The digest recorded in metadata.json is checked while the bytes arrive.
            storage.download_file(model_file_uri, scratch / MODEL_FILE, sha256=metadata["sha256"])
        except StorageNotFound as exc:
            raise ModelLoadError(
                f"{model_uri} is not a model directory: {exc}. It must hold {MODEL_FILE} and "
                f"{METADATA_FILE} (the train stage's model output or a registry version)"
            ) from exc
        except DigestMismatch as exc:
            raise DigestMismatch(
                f"{model_file_uri}: refusing to serve it: {exc}. The model was changed or truncated "
                "after it was exported; export or publish it again"
            ) from exc
        return _load_local(scratch, model_uri)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read_metadata(path: Path, model_uri: str) -> dict[str, Any]:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(
            f"{model_uri} has no {METADATA_FILE}: serve a model directory exported by the mlstages "
            f"train stage ({MODEL_FILE} + {METADATA_FILE})"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_uri}: {METADATA_FILE} is not readable JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{model_uri}: {METADATA_FILE} is not a JSON object")
    if not metadata.get("sha256"):
        raise ModelLoadError(
            f"{model_uri}: {METADATA_FILE} records no sha256 of {MODEL_FILE}, so the file cannot be "
            "verified; export the model with the mlstages train stage"
        )
    return metadata


def _load_local(directory: Path, model_uri: str) -> tuple[Any, dict]:
    import joblib
    import sklearn

    if not directory.is_dir():
        raise ModelLoadError(f"{model_uri}: no such model directory")
    metadata = _read_metadata(directory / METADATA_FILE, model_uri)
    path = directory / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{model_uri} has no {MODEL_FILE}: serve the directory that holds the exported Pipeline "
            f"({MODEL_FILE} + {METADATA_FILE})"
        )
    actual = file_sha256(path)
    if actual != metadata["sha256"]:
        raise DigestMismatch(
            f"{storage.join_uri(model_uri, MODEL_FILE)} has sha256 {actual}, but {METADATA_FILE} records "
            f"{metadata['sha256']}: refusing to serve it. The model was changed or truncated after it "
            "was exported; export or publish it again"
        )
    recorded = (metadata.get("versions") or {}).get("scikit-learn")
    if recorded != sklearn.__version__:
        raise LibraryVersionMismatch(
            f"{model_uri} was saved with scikit-learn {recorded or '(not recorded)'}, but this server runs "
            f"scikit-learn {sklearn.__version__}: a pickled model is only guaranteed to predict the same "
            "with the version that saved it. Serve it with the image built from the same mlstages "
            "release as the one that trained it, or retrain it with this one"
        )
    features = input_features(metadata, f"{model_uri}/{METADATA_FILE}")
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling runs arbitrary reconstruction code; report any failure
        raise ModelLoadError(
            f"{storage.join_uri(model_uri, MODEL_FILE)} does not load: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(
            f"{storage.join_uri(model_uri, MODEL_FILE)} holds a {type(model).__name__}, which has no "
            "predict method: it is not a model"
        )
    declared = getattr(model, "feature_names_in_", None)
    if declared is not None and [str(c) for c in declared] != [f.name for f in features]:
        raise ModelLoadError(
            f"{model_uri}: {METADATA_FILE} lists input features {[f.name for f in features]}, but the "
            f"model was fitted on {[str(c) for c in declared]}: the two files do not belong together"
        )
    return model, metadata


# --- requests to rows ----------------------------------------------------------------------------


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


# --- requests from rows (clients: infra validation, deploy's smoke test, the benchmark) ---------------


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _feature_names(features: Sequence[InputFeature] | Sequence[str]) -> list[str]:
    return [f.name if isinstance(f, InputFeature) else str(f) for f in features]


def v1_request(
    frame: pd.DataFrame,
    features: Sequence[InputFeature] | Sequence[str],
    *,
    return_probabilities: bool = False,
) -> dict[str, Any]:
    """The V1 request body for ``frame``'s rows: one object per row, keyed by feature name."""
    names = _feature_names(features)
    instances = [
        {name: _json_value(value) for name, value in zip(names, row, strict=True)}
        for row in frame[names].itertuples(index=False, name=None)
    ]
    body: dict[str, Any] = {"instances": instances}
    if return_probabilities:
        body["parameters"] = {RETURN_PROBABILITIES: True}
    return body


def v2_request(
    frame: pd.DataFrame, features: Sequence[InputFeature], *, return_probabilities: bool = False
) -> dict[str, Any]:
    """The V2 (Open Inference Protocol) request body for ``frame``'s rows: one tensor per feature."""
    inputs = []
    for feature in features:
        data = [_json_value(v) for v in frame[feature.name].tolist()]
        datatype = {NUMERIC: "FP64", BOOLEAN: "BOOL"}.get(feature.logical_type, "BYTES")
        inputs.append({"name": feature.name, "shape": [len(data)], "datatype": datatype, "data": data})
    body: dict[str, Any] = {"id": uuid.uuid4().hex, "inputs": inputs}
    if return_probabilities:
        body["outputs"] = [{"name": PREDICT_OUTPUT}, {"name": PROBA_OUTPUT}]
    return body


# --- the KServe model ------------------------------------------------------------------------------


def _as_output_array(values: Any) -> np.ndarray:
    """Predictions as an array KServe can encode: strings as objects, everything else as it is."""
    array = np.asarray(values)
    if array.dtype.kind in "USO":
        return array.astype(object)
    return array


def _flag(parameters: Mapping[str, Any], where: str) -> bool:
    value = parameters.get(RETURN_PROBABILITIES, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where} {RETURN_PROBABILITIES} must be true or false, got {_shown(value)}")
    return value


class SklearnPipelineModel(kserve.Model):
    """A model directory exported by the train stage, served through KServe (V1 and V2).

    ``load()`` reads and verifies the model (see ``load_model_dir``) and marks it ready; until
    then the readiness routes answer not ready.

    With ``prediction_log`` (a ``gs://`` prefix or a local folder), every scored request is also
    handed to a ``PredictionLogger`` (prediction_log.py), which writes the rows, predictions and
    request ids there as Parquet shards off the request path; the request id is returned to the
    client (V1: ``"request_id"`` in the response, taken from ``parameters.request_id`` when given;
    V2: the response ``id``, the request's ``id`` when given). ``stop()`` writes what is buffered.
    """

    def __init__(
        self,
        name: str,
        model_uri: str,
        *,
        cache_dir: str | os.PathLike | None = None,
        prediction_log: str | None = None,
        prediction_log_max_rows: int = DEFAULT_MAX_ROWS,
        prediction_log_max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        super().__init__(check_model_name(name))
        self.model_uri = model_uri
        self.cache_dir = cache_dir
        self.prediction_log = prediction_log or None
        self.prediction_log_max_rows = prediction_log_max_rows
        self.prediction_log_max_seconds = prediction_log_max_seconds
        self.prediction_logger: PredictionLogger | None = None
        self.model: Any = None
        self.metadata: dict[str, Any] = {}
        self.features: tuple[InputFeature, ...] = ()
        self.classes: list[Any] | None = None

    def load(self) -> bool:
        self.model, self.metadata = load_model_dir(self.model_uri, cache_dir=self.cache_dir)
        self.features = input_features(self.metadata)
        classes = getattr(self.model, "classes_", None)
        self.classes = _as_output_array(classes).tolist() if classes is not None else None
        if self.prediction_log and self.prediction_logger is None:
            self.prediction_logger = PredictionLogger(
                self.prediction_log,
                model_name=self.name,
                model_version=model_version_of(self.model_uri, self.metadata),
                input_columns={f.name: f.logical_type for f in self.features},
                classes=self.classes,
                probabilities=self.has_probabilities,
                max_rows=self.prediction_log_max_rows,
                max_seconds=self.prediction_log_max_seconds,
            )
            logger.info("model %s: logging predictions under %s", self.name, self.prediction_log)
        self.ready = True
        logger.info(
            "model %s loaded from %s: %s, %d input features, scikit-learn %s",
            self.name,
            self.model_uri,
            self.metadata.get("task", "unknown task"),
            len(self.features),
            self.metadata["versions"]["scikit-learn"],
        )
        return self.ready

    def stop(self) -> None:
        """Unloading (server shutdown): write the buffered prediction log."""
        if self.prediction_logger is not None:
            self.prediction_logger.close()
        super().stop()

    def _log(self, frame: pd.DataFrame, predictions: Any, probabilities: Any, request_id: str) -> None:
        if self.prediction_logger is not None:
            self.prediction_logger.log(frame, predictions, probabilities, request_id)

    @property
    def has_probabilities(self) -> bool:
        return self.classes is not None and callable(getattr(self.model, "predict_proba", None))

    # The V2 model-metadata route (/v2/models/NAME) describes these.
    def get_input_types(self) -> list[dict]:
        return [
            {"name": f.name, "datatype": EXPECTED_DATATYPES[f.logical_type][0], "shape": [-1]}
            for f in self.features
        ]

    def get_output_types(self) -> list[dict]:
        outputs = [{"name": PREDICT_OUTPUT, "datatype": self._predict_datatype(), "shape": [-1]}]
        if self.has_probabilities:
            outputs.append({"name": PROBA_OUTPUT, "datatype": "FP64", "shape": [-1, len(self.classes or [])]})
        return outputs

    def _predict_datatype(self) -> str:
        if self.classes is None:
            return "FP64"
        sample = _as_output_array(self.classes)
        return {"O": "BYTES", "b": "BOOL", "i": "INT64", "u": "INT64"}.get(sample.dtype.kind, "FP64")

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict | InferResponse:
        if isinstance(payload, InferRequest):
            return self._predict_v2(payload)
        if isinstance(payload, (bytes, bytearray, str)):
            # KServe hands over the raw body when the Content-Type is not exactly one of its JSON
            # types ("application/json; charset=utf-8", say); V1 is JSON whatever the header says.
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(
                    f'the request body is not JSON ({exc}): send {{"instances": [...]}} with '
                    "Content-Type: application/json"
                ) from exc
        if isinstance(payload, dict):
            return self._predict_v1(payload)
        raise InvalidInput(
            'the request body must be a JSON object: {"instances": [...]} for V1 (with '
            "Content-Type: application/json), or a V2 inference request at /v2/models/NAME/infer"
        )

    def _predict_v1(self, payload: dict) -> dict:
        unknown = sorted(set(payload) - {"instances", "parameters"})
        if "instances" not in payload:
            hint = f" (got {', '.join(map(repr, unknown))})" if unknown else ""
            raise InvalidInput(f'the request has no "instances"{hint}: send {{"instances": [row, ...]}}')
        if unknown:
            raise InvalidInput(
                f'unknown request field(s) {", ".join(map(repr, unknown))}: send "instances" and optionally "parameters"'
            )
        parameters = payload.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput('"parameters" must be an object, e.g. {"return_probabilities": true}')
        extra = sorted(set(parameters) - {RETURN_PROBABILITIES, REQUEST_ID})
        if extra:
            raise InvalidInput(
                f"unknown parameter(s) {', '.join(map(repr, extra))}; known: {RETURN_PROBABILITIES}, "
                f"{REQUEST_ID}"
            )
        with_probabilities = _flag(parameters, "parameter")
        request_id = parameters.get(REQUEST_ID)
        if request_id is not None:
            try:
                check_request_id(request_id, f"parameter {REQUEST_ID}")
            except ParameterError as exc:
                raise InvalidInput(str(exc)) from exc
        frame = rows_to_frame(payload["instances"], self.features, self.metadata.get("label_column"))
        predictions, probabilities = self._run(frame, with_probabilities)
        response: dict[str, Any] = {"predictions": predictions.tolist()}
        if probabilities is not None:
            response["probabilities"] = probabilities.tolist()
            response["classes"] = self.classes
        if self.prediction_logger is not None:
            request_id = request_id or uuid.uuid4().hex
            self._log(frame, predictions, probabilities, request_id)
            response[REQUEST_ID] = request_id
        return response

    def _predict_v2(self, request: InferRequest) -> InferResponse:
        parameters = to_http_parameters(request.parameters) if request.parameters else {}
        with_probabilities = _flag(parameters, "parameter")
        requested = [o.name for o in request.request_outputs or []]
        known = [PREDICT_OUTPUT, PROBA_OUTPUT]
        wrong = [n for n in requested if n not in known]
        if wrong:
            raise InvalidInput(
                f"unknown output(s) {', '.join(map(repr, wrong))}; this model has: {', '.join(known)}"
            )
        with_probabilities = with_probabilities or PROBA_OUTPUT in requested
        frame = infer_request_to_frame(request, self.features)
        predictions, probabilities = self._run(frame, with_probabilities)
        outputs = [
            InferOutput(
                name=PREDICT_OUTPUT,
                shape=list(predictions.shape),
                datatype=from_np_dtype(predictions.dtype),
                data=predictions,
            )
        ]
        if probabilities is not None:
            outputs.append(
                InferOutput(
                    name=PROBA_OUTPUT,
                    shape=list(probabilities.shape),
                    datatype="FP64",
                    data=probabilities,
                    parameters={"classes": json.dumps(self.classes)},
                )
            )
        response_id = request.id or uuid.uuid4().hex
        self._log(frame, predictions, probabilities, response_id)
        return InferResponse(
            response_id=response_id,
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def _run(self, frame: pd.DataFrame, with_probabilities: bool) -> tuple[np.ndarray, np.ndarray | None]:
        from sklearn.exceptions import NotFittedError

        if with_probabilities and not self.has_probabilities:
            raise InvalidInput(
                f"model {self.name!r} ({self.metadata.get('task', 'no classes')}) gives no class "
                f"probabilities: leave out {RETURN_PROBABILITIES} / {PROBA_OUTPUT}"
            )
        try:
            predictions = _as_output_array(self.model.predict(frame))
            probabilities = (
                np.asarray(self.model.predict_proba(frame), dtype="float64") if with_probabilities else None
            )
        except NotFittedError as exc:
            raise InferenceError(f"model {self.name!r} cannot predict: it is not fitted ({exc})") from exc
        except (ValueError, TypeError) as exc:
            # The rows passed every check above, so the model refused their values (an unseen
            # category with handle_unknown='error', say): the request's doing, not the server's.
            raise InvalidInput(
                f"the model could not predict these rows: {type(exc).__name__}: {exc}"
            ) from exc
        return predictions, probabilities


# --- the HTTP server -------------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is read or parsed.

    uvicorn and Starlette set no body limit of their own. A declared Content-Length over the limit
    is refused at once; a chunked body is counted as it arrives.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        received = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send, received)

    async def _refuse(self, send: Any, size: int) -> None:
        body = json.dumps(
            {
                "error": f"the request body ({size:,} bytes or more) exceeds this server's limit of "
                f"{self.max_bytes:,} bytes: send fewer rows per request"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _install_body_limit(max_bytes: int) -> None:
    """Add BodySizeLimit to KServe's FastAPI application (once per process, before it starts)."""
    from kserve.model_server import app

    if getattr(app.state, "mlstages_body_limit", None) is None:
        app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
        app.state.mlstages_body_limit = max_bytes
    elif app.state.mlstages_body_limit != max_bytes:
        raise ParameterError(
            f"max_body_bytes={max_bytes}: this process already serves with a limit of "
            f"{app.state.mlstages_body_limit}; start another process for another limit"
        )


class _ModelServer(kserve.ModelServer):
    """kserve.ModelServer on a chosen interface.

    KServe's REST server always binds 0.0.0.0. ModelServer.start() builds the uvicorn servers and
    then calls setup_event_loop() before anything is bound, so this is where the host is set.
    """

    def __init__(self, *, host: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host

    def setup_event_loop(self) -> None:
        for rest in (self._rest_server, getattr(self._rest_multiprocess_server, "_rest_server", None)):
            if rest is not None:
                rest.config.host = self.host
        super().setup_event_loop()


def _check_port(name: str, port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ParameterError(f"parameter {name}={port!r} must be a TCP port number (1-65535)")
    return port


def serve(
    model_uri: str,
    name: str,
    *,
    host: str = "127.0.0.1",
    http_port: int = DEFAULT_HTTP_PORT,
    grpc_port: int | None = None,
    workers: int = 1,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    cache_dir: str | os.PathLike | None = None,
    prediction_log: str | None = None,
    prediction_log_max_rows: int = DEFAULT_MAX_ROWS,
    prediction_log_max_seconds: float = DEFAULT_MAX_SECONDS,
) -> None:
    """Load the model and serve it with kserve.ModelServer until the process is stopped.

    The model is loaded first: a model that does not load raises before anything is bound.
    ``grpc_port`` enables KServe's V2 gRPC server, which always listens on every interface, so it
    is refused unless ``host`` is a wildcard (0.0.0.0 or ::), as in a cluster.
    ``prediction_log`` (a ``gs://`` prefix or a local folder; off when None) logs every scored
    request there as Parquet shards of at most ``prediction_log_max_rows`` rows, written at least
    every ``prediction_log_max_seconds`` and on shutdown (see prediction_log.py).
    """
    check_model_name(name)
    _check_port("http_port", http_port)
    if grpc_port is not None:
        _check_port("grpc_port", grpc_port)
        if host not in _WILDCARD_HOSTS:
            raise ParameterError(
                f"parameter grpc_port={grpc_port} with host={host!r}: KServe's gRPC server listens on "
                "every interface ([::]), so it is only enabled with host 0.0.0.0; leave grpc_port unset "
                "to serve REST only"
            )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"parameter workers={workers!r} must be an integer >= 1")
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1024:
        raise ParameterError(f"parameter max_body_bytes={max_body_bytes!r} must be an integer >= 1024")
    model = SklearnPipelineModel(
        name,
        model_uri,
        cache_dir=cache_dir,
        prediction_log=prediction_log,
        prediction_log_max_rows=prediction_log_max_rows,
        prediction_log_max_seconds=prediction_log_max_seconds,
    )
    model.load()
    _install_body_limit(max_body_bytes)
    # KServe 0.21 answers with FastAPI's ORJSONResponse, which FastAPI now marks deprecated; the
    # warning says nothing to an operator and would otherwise fill the log.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    server = _ModelServer(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port or 0,
        enable_grpc=grpc_port is not None,
        workers=workers,
        # One log line per request is a measurable share of a sub-millisecond request; KServe's
        # Prometheus histograms (/metrics) keep the latencies.
        enable_latency_logging=False,
    )
    server.start([model])


# --- a server in a subprocess ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerHandle:
    """A running model server started by serve_in_background."""

    name: str
    model_uri: str
    base_url: str
    pid: int
    log_path: Path

    @property
    def v1_predict_url(self) -> str:
        return f"{self.base_url}/v1/models/{self.name}:predict"

    @property
    def v1_model_url(self) -> str:
        return f"{self.base_url}/v1/models/{self.name}"

    @property
    def v2_infer_url(self) -> str:
        return f"{self.base_url}/v2/models/{self.name}/infer"

    @property
    def v2_model_url(self) -> str:
        return f"{self.base_url}/v2/models/{self.name}"

    @property
    def v2_ready_url(self) -> str:
        return f"{self.base_url}/v2/health/ready"

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the server's log (stdout and stderr)."""
        return _tail(self.log_path, chars)


def _tail(path: Path, chars: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return text[-chars:]


def local_session() -> requests.Session:
    """A requests session for the local server: no proxy from the environment, ever."""
    session = requests.Session()
    session.trust_env = False
    return session


def _connect_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextmanager
def serve_in_background(
    model_uri: str,
    name: str,
    *,
    host: str = "127.0.0.1",
    start_timeout_seconds: float = START_TIMEOUT_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_dir: str | os.PathLike | None = None,
    prediction_log: str | None = None,
    prediction_log_max_rows: int = DEFAULT_MAX_ROWS,
    prediction_log_max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Iterator[ServerHandle]:
    """Run ``python -m mlstages.components.serving`` on a free port until the block ends.

    Yields once ``/v2/health/ready`` answers ready. On exit the server is stopped (SIGTERM, then
    SIGKILL after a few seconds), with every process it started. The log is removed with it unless
    ``log_dir`` is given. ``prediction_log`` and its two limits are passed on to ``serve``; the
    buffered prediction log is written when the server stops.

    Raises:
        ServerStartError: the server exited or was not ready within ``start_timeout_seconds``;
            the message ends with the tail of its log (a model that does not load says why there).
    """
    check_model_name(name)
    if not start_timeout_seconds > 0:
        raise ParameterError(f"parameter start_timeout_seconds={start_timeout_seconds!r} must be positive")
    own_dir = log_dir is None
    folder = Path(tempfile.mkdtemp(prefix="mlstages-serving-")) if own_dir else Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        options = []
        if prediction_log:
            options = [
                f"--prediction_log={prediction_log}",
                f"--prediction_log_max_rows={prediction_log_max_rows}",
                f"--prediction_log_max_seconds={prediction_log_max_seconds}",
            ]
        process, handle = _start(
            model_uri, name, host, start_timeout_seconds, max_body_bytes, folder, options
        )
        try:
            yield handle
        finally:
            _stop(process)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)


def _start(
    model_uri: str,
    name: str,
    host: str,
    timeout: float,
    max_body_bytes: int,
    folder: Path,
    options: Sequence[str] = (),
) -> tuple[subprocess.Popen, ServerHandle]:
    """Start the server on a free port and wait until it is ready. A port found free can be taken
    by another process before the server binds it; then it starts again on another port."""
    from mlstages.components.common.emulator import free_port

    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        log_path = folder / f"{name}-{port}.log"
        command = [
            sys.executable,
            "-m",
            "mlstages.components.serving",
            f"--model_uri={model_uri}",
            f"--model_name={name}",
            f"--host={host}",
            f"--http_port={port}",
            f"--max_body_bytes={max_body_bytes}",
            *options,
        ]
        with open(log_path, "wb") as log:
            # Its own session (process group), so that stopping it stops every worker it forked.
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        handle = ServerHandle(name, model_uri, f"http://{_connect_host(host)}:{port}", process.pid, log_path)
        try:
            _wait_until_ready(process, handle, port, timeout)
            return process, handle
        except BaseException as exc:
            _stop(process)
            lost_port = (
                isinstance(exc, ServerStartError) and "address already in use" in handle.log_tail().lower()
            )
            if not lost_port or attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def _listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself listens on ``port``: a ready answer from that port could
    otherwise come from another server that took the port first."""
    import psutil

    try:
        process = psutil.Process(pid)
        connections = process.net_connections if hasattr(process, "net_connections") else process.connections
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections(kind="tcp"))
    except psutil.Error:
        return False


def _wait_until_ready(process: subprocess.Popen, handle: ServerHandle, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with local_session() as session:
        while True:
            code = process.poll()
            if code is not None:
                raise ServerStartError(
                    f"the model server for {handle.model_uri} exited with code {code} before it was "
                    f"ready. The end of its log ({handle.log_path.name}):\n{handle.log_tail()}"
                )
            with suppress(requests.RequestException, ValueError):
                answer = session.get(handle.v2_ready_url, timeout=1.0)
                if (
                    answer.status_code == 200
                    and answer.json().get("ready") is True
                    and _listens_on(process.pid, port)
                ):
                    return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"the model server for {handle.model_uri} was not ready after {timeout:g} s. "
                    f"The end of its log ({handle.log_path.name}):\n{handle.log_tail()}"
                )
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left after a grace period."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    # WNOWAIT leaves the exited server unreaped, so its pid (the group's id) cannot be reused by
    # an unrelated process before the group is killed below.
    while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # Workers forked by the server share its process group; none may outlive it.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
