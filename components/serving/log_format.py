"""The prediction log's format, shared by the model server and batch scoring: its columns and
types, request ids, the model version it records, and labels joined back to logged rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlstages.components.common.model_card import ModelCard
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import BOOLEAN, CATEGORICAL, DATETIME, NUMERIC, TEXT
from mlstages.components.common.errors import InputDataError, ParameterError

PREDICTION_LOG_ENV = "MLSTAGES_PREDICTION_LOG"


PREDICTION_COLUMN = "prediction"


PROBABILITY_PREFIX = "proba_"


REQUEST_ID_COLUMN = "request_id"


ROW_INDEX_COLUMN = "row_index"


LOGGED_AT_COLUMN = "logged_at"


MODEL_NAME_COLUMN = "model_name"


MODEL_VERSION_COLUMN = "model_version"


LOG_COLUMNS = (REQUEST_ID_COLUMN, ROW_INDEX_COLUMN, LOGGED_AT_COLUMN, MODEL_NAME_COLUMN, MODEL_VERSION_COLUMN)


MAX_REQUEST_ID_CHARS = 200


_REGISTRY_VERSION = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"parameter {name}={value!r} must be an integer >= {minimum}")
    return value


def check_request_id(value: Any, where: str = "request_id") -> str:
    """``value`` if it is a usable request id (a non-empty string of at most 200 characters)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_REQUEST_ID_CHARS:
        raise ParameterError(
            f"{where} must be a non-empty string of at most {MAX_REQUEST_ID_CHARS} characters, got {value!r}"[
                :300
            ]
        )
    return value


def model_version_of(model_uri: str, card: ModelCard) -> str:
    """What identifies the served model in the log: the card's ``version`` when recorded, the
    registry version when the model was served from the registry (``.../<name>/<UTC time>-<sha8>``),
    else ``sha256-`` and the first 12 hex digits of the model file's sha256."""
    recorded = card.extra.get("version")
    if isinstance(recorded, str) and recorded:
        return recorded
    last = str(model_uri).rstrip("/").rsplit("/", 1)[-1]
    if _REGISTRY_VERSION.match(last):
        return last
    return f"sha256-{card.sha256[:12] or 'unknown'}"


def _arrow_type(logical_type: str) -> Any:
    import pyarrow as pa

    return {
        NUMERIC: pa.float64(),
        BOOLEAN: pa.bool_(),
        CATEGORICAL: pa.string(),
        TEXT: pa.string(),
        DATETIME: pa.timestamp("us"),
    }[logical_type]


def _prediction_type(classes: Sequence[Any] | None) -> Any:
    import pyarrow as pa

    if classes is None:
        return pa.float64()  # regression
    kind = np.asarray(list(classes)).dtype.kind
    return {"b": pa.bool_(), "i": pa.int64(), "u": pa.int64(), "f": pa.float64()}.get(kind, pa.string())


def log_fields(input_columns: Mapping[str, str]) -> list[Any]:
    """The Arrow fields of the model's input columns (name -> logical type), in order."""
    import pyarrow as pa

    return [pa.field(n, _arrow_type(t)) for n, t in input_columns.items()]


def log_schema(
    input_fields: Sequence[Any], classes: Sequence[Any] | None, probability_columns: Sequence[str]
) -> Any:
    """The prediction log's Arrow schema: ``input_fields`` (``log_fields``, or a batch's id column
    as it is stored), ``prediction``, ``proba_<class>`` and the log's own columns. The model
    server's log and batch scoring both write it, so monitoring reads them the same way."""
    import pyarrow as pa

    fields = list(input_fields)
    fields.append(pa.field(PREDICTION_COLUMN, _prediction_type(classes)))
    fields.extend(pa.field(c, pa.float64()) for c in probability_columns)
    fields.extend(
        [
            pa.field(REQUEST_ID_COLUMN, pa.string()),
            pa.field(ROW_INDEX_COLUMN, pa.int64()),
            pa.field(LOGGED_AT_COLUMN, pa.timestamp("us", tz="UTC")),
            pa.field(MODEL_NAME_COLUMN, pa.string()),
            pa.field(MODEL_VERSION_COLUMN, pa.string()),
        ]
    )
    return pa.schema(fields)


def _log_input(column: pd.Series, kind: str | None) -> pd.Series:
    if kind == DATETIME and isinstance(column.dtype, pd.DatetimeTZDtype):
        # One column type across shards: instants in UTC, without a zone.
        return column.dt.tz_convert("UTC").dt.tz_localize(None)
    if kind == BOOLEAN:
        # The pandas type recorded in the shard must not depend on whether it has a missing value
        # (numpy bool without, nullable boolean with).
        return column.astype("boolean")
    return column


def log_table(
    schema: Any,
    input_columns: Mapping[str, str | None],
    frame: pd.DataFrame,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    request_ids: np.ndarray,
    row_index: np.ndarray,
    logged_at: np.ndarray,
    model_name: str,
    model_version: str,
) -> Any:
    """Scored rows as one Arrow table with the log's ``schema`` (``log_schema``).

    ``input_columns``: the columns of ``frame`` to log, name -> logical type (None: as stored);
    ``probabilities``: rows x classes (NaN where not computed), None without probability
    columns; ``request_ids``, ``row_index`` and ``logged_at`` (datetime64[us], UTC): one per row,
    as numpy arrays or Arrow arrays.
    """
    import pyarrow as pa

    data: dict[str, Any] = {name: _log_input(frame[name], kind) for name, kind in input_columns.items()}
    data[PREDICTION_COLUMN] = np.asarray(predictions).reshape(-1)
    # The probability columns sit between the prediction and the request id.
    first = len(input_columns) + 1
    for j, name in enumerate(schema.names[first : schema.get_field_index(REQUEST_ID_COLUMN)]):
        data[name] = probabilities[:, j]
    inputs = pa.Table.from_pandas(
        pd.DataFrame(data, copy=False), schema=pa.schema(list(schema)[: len(data)]), preserve_index=False
    )
    rows = inputs.num_rows
    columns = [
        _arrow(request_ids, pa.string()),
        _arrow(row_index, pa.int64()),
        _arrow(logged_at, pa.timestamp("us", tz="UTC")),
        pa.repeat(pa.scalar(model_name, pa.string()), rows),
        pa.repeat(pa.scalar(model_version, pa.string()), rows),
    ]
    # The pandas metadata of the inputs keeps their pandas types on read (a nullable boolean stays
    # one whether or not this shard has a missing value).
    return pa.Table.from_arrays(
        [*inputs.columns, *columns], schema=schema.with_metadata(inputs.schema.metadata)
    )


def _arrow(values: Any, kind: Any) -> Any:
    import pyarrow as pa

    if isinstance(values, pa.Array):  # built by the caller (a batch's one request id, repeated)
        return values.cast(kind) if values.type != kind else values
    if kind == pa.timestamp("us", tz="UTC"):
        values = np.asarray(values, dtype="datetime64[us]")
    return pa.array(values, kind)


def encode_shard(table: Any) -> bytes:
    """A shard's Parquet bytes. Dictionary encoding only for the text columns: it shrinks repeated
    categories, labels and ids, while on floats (mostly distinct) it is tried and abandoned at
    about three times the cost of writing them plain."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, use_dictionary=text)
    return sink.getvalue().to_pybytes()


def shard_name(day: Any, now: Any) -> str:
    """A shard's path under the log's prefix: ``date=YYYY-MM-DD/part-<UTC time>-<random>.parquet``
    (the date the rows were scored; a random part so that writers never collide)."""
    import uuid

    return f"date={day:%Y-%m-%d}/part-{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}.parquet"


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, on: str = REQUEST_ID_COLUMN) -> pd.DataFrame:
    """The logged predictions with the labels that arrived later, joined by request id.

    ``labels`` holds the ``on`` column and the label column(s); with a ``row_index`` column too,
    each label belongs to one row of its request, otherwise to a request of a single row. Every
    logged row is kept (a left join): rows whose label has not arrived have missing labels.

    Args:
        predictions: logged rows, as the ingest stage reads the shards.
        labels: the labels, keyed by ``on`` (and ``row_index`` when given).
        on: the request id column of both.

    Returns:
        The predictions in their order, with the label columns added at the end.

    Raises:
        InputDataError: a key column is missing, a key appears twice among the labels, a label
            column has the name of a logged column, or labels without row_index would match
            requests of several rows.
    """
    for name, frame in (("predictions", predictions), ("labels", labels)):
        if on not in frame.columns:
            raise InputDataError(
                f"{name} have no column {on!r} to join on (columns: {', '.join(map(str, frame.columns))})"
            )
    keys = [on, ROW_INDEX_COLUMN] if ROW_INDEX_COLUMN in labels.columns else [on]
    if ROW_INDEX_COLUMN in keys and ROW_INDEX_COLUMN not in predictions.columns:
        raise InputDataError(f"labels have a {ROW_INDEX_COLUMN!r} column but the predictions do not")
    label_columns = [c for c in labels.columns if c not in keys]
    if not label_columns:
        raise InputDataError(f"labels have no column besides {', '.join(keys)}: add the label column")
    clashing = [c for c in label_columns if c in predictions.columns]
    if clashing:
        raise InputDataError(
            f"label column(s) {', '.join(map(repr, clashing))} are already columns of the predictions: "
            "rename them in the labels"
        )
    missing_keys = labels[keys].isna().any(axis=1)
    if missing_keys.any():
        row = int(np.flatnonzero(missing_keys.to_numpy())[0])
        raise InputDataError(f"labels row {row} has no {' / '.join(keys)}: every label needs its key")
    duplicated = labels.duplicated(subset=keys, keep=False)
    if duplicated.any():
        first = labels.loc[duplicated, keys].iloc[0].tolist()
        raise InputDataError(
            f"labels have {int(duplicated.sum())} rows with the same {' + '.join(keys)} "
            f"(first: {first}): give one label per {'row' if len(keys) == 2 else 'request'}"
        )
    if len(keys) == 1:
        rows_per_request = predictions[on].value_counts()
        several = rows_per_request[rows_per_request > 1].index.intersection(labels[on])
        if len(several):
            raise InputDataError(
                f"request {several[0]!r} has {int(rows_per_request[several[0]])} logged rows but the labels "
                f"have no {ROW_INDEX_COLUMN!r} column: give each label its row_index within the request"
            )
    right = labels[keys + label_columns]
    if ROW_INDEX_COLUMN in keys:
        right = right.astype({ROW_INDEX_COLUMN: "int64"})
    joined = predictions.merge(right, how="left", on=keys, validate="many_to_one", sort=False)
    return joined.reset_index(drop=True)
