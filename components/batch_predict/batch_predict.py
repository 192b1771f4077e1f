"""Batch inference: score a Parquet dataset with one model version and write the predictions as
prediction-log shards.

The output is the model server's prediction log (components/serving/log_format.py), written by the
same functions: the model's input features (or, with ``id_column``, only that column, as stored),
``prediction``, ``proba_<class>`` (classifiers with predict_proba), ``request_id``, ``row_index``,
``logged_at``, ``model_name`` and ``model_version``, as ``<prefix>/date=YYYY-MM-DD/part-*.parquet``.
So whatever reads the server's log (ingest of a ``gs://`` prefix, then monitor_drift, or
``join_labels`` when labels arrive) reads batch predictions the same way. Each batch is one
"request": its id is ``<run key>-<batch number>`` and ``row_index`` is the row's place in it.

Why it streams. A scoring job is often much larger than a training set: the dataset is read with
``ParquetFile.iter_batches`` (only the columns the model needs, ``batch_rows`` rows at a time), each
batch is predicted and written as one shard, and nothing of it is kept. Memory is a few batches,
whatever the number of rows (benchmarks/bench_batch_inference.py measures it).

Why a version must be blessed. Scoring with a model the gate refused (or never saw) would put its
answers where the champion's are expected. A version is accepted when it is, or was just before,
the registry's champion (deploy moves the pointer only for a blessed model), or when the gate's
blessing.json in the version says blessed; anything else needs ``force``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlstages.components.common import registry, storage
from mlstages.components.common.datasets import NUMERIC
from mlstages.components.common.engine import DEFAULT_ENGINE, Engine, check_engine
from mlstages.components.common.errors import InputDataError, MlstagesError, ParameterError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.common.progress import streamed
from mlstages.components.common.scoring import predict_frame
from mlstages.components.serving.log_format import (
    LOG_COLUMNS,
    PREDICTION_COLUMN,
    PROBABILITY_PREFIX,
    encode_shard,
    log_fields,
    log_schema,
    log_table,
    shard_name,
)

# 65,536 rows of a dozen features is a few MB in pandas: large enough that the per-call overhead of
# scikit-learn and Parquet is small, small enough to keep memory flat.
DEFAULT_BATCH_ROWS = 65_536
MAX_BATCH_ROWS = 4_000_000

CHAMPION, BLESSED, FORCED = "champion", "blessed", "forced"


class UnblessedModel(MlstagesError):
    """The model version was not blessed by the gate, and scoring was not forced."""


@dataclass(frozen=True)
class BatchPredictConfig:
    """What batch_predict does.

    output_uri: where the shards go: a ``gs://`` prefix or a local folder; empty: the component's
        own predictions artifact.
    id_column: with a name, each output row carries only that input column (an order or customer
        id) instead of the model's input features.
    force: score with a version the gate did not bless.
    batch_rows: rows read, predicted and written at a time (one shard per batch).
    engine: where the parts are scored: "local", "dask" or a scheduler address (``common.engine``).
    """

    output_uri: str = ""
    id_column: str = ""
    force: bool = False
    batch_rows: int = DEFAULT_BATCH_ROWS
    engine: str = DEFAULT_ENGINE

    def __post_init__(self) -> None:
        check_engine(self.engine)
        if not isinstance(self.output_uri, str):
            raise ParameterError(f"parameter output_uri={self.output_uri!r} must be a string")
        if self.output_uri.strip():
            if storage.is_gcs_uri(self.output_uri):
                storage.split_gcs_uri(self.output_uri)  # a bad bucket name is refused before the run
            else:
                storage.to_local_path(self.output_uri)  # refuses other schemes (s3://, http://)
        if not isinstance(self.id_column, str):
            raise ParameterError(f"parameter id_column={self.id_column!r} must be a column name or empty")
        if not isinstance(self.force, bool):
            raise ParameterError(f"parameter force={self.force!r} must be true or false")
        rows = self.batch_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= MAX_BATCH_ROWS:
            raise ParameterError(
                f"parameter batch_rows={rows!r} must be an integer from 1 to {MAX_BATCH_ROWS:,}"
            )


@dataclass
class BatchResult:
    """What a batch run scored and wrote."""

    rows: int
    batches: int
    shards: list[str]
    output_uri: str
    model_name: str
    model_version: str
    blessing: str  # champion, blessed or forced
    columns: list[str]
    request_prefix: str
    seconds: float
    classes: list[Any] | None = None
    prediction_counts: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat scalars for the KFP Metrics artifact."""
        return {
            "rows": self.rows,
            "shards": len(self.shards),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds > 0 else 0.0,
            "forced": 1 if self.blessing == FORCED else 0,
        }


# --- which model ----------------------------------------------------------------------------------


def require_blessed(
    model_dir: str | Path,
    model_uri: str,
    card: ModelCard,
    *,
    model_registry: str = "",
    model_name: str = "model",
    force: bool = False,
) -> str:
    """How the version is known to be good: ``champion`` (it is, or was just before, the
    registry's champion), ``blessed`` (the gate's blessing.json in it, for this model file), or
    ``forced``. Raises UnblessedModel, in one line naming the version, otherwise."""
    if registry.was_champion(model_registry, model_name, model_uri):
        return CHAMPION
    record = registry.read_blessing(model_dir)
    if record is not None and record.get("blessed") is True and record.get("sha256") == card.sha256:
        return BLESSED
    if force:
        return FORCED
    if record is None:
        why = "the blessing gate never judged it (it has no blessing.json)"
    elif record.get("sha256") != card.sha256:
        why = "its blessing.json belongs to another model file (sha256 differs)"
    else:
        why = (
            f"the blessing gate did not bless it ({str(record.get('reason') or 'no reason recorded')[:200]})"
        )
    raise UnblessedModel(
        f"model {model_uri} is not blessed: {why}. Score with the champion (leave model_uri empty), "
        "or pass force=true to score with it anyway"
    )


# --- the data -------------------------------------------------------------------------------------


def open_dataset(path: str | Path, what: str = "dataset") -> Any:
    """The dataset to stream (a folder of parts or one Parquet file), with a one-line error when
    it is not one."""
    from mlstages.components.common.dataset_files import open_parts

    return open_parts(path, what=what)


def columns_to_read(schema: Any, card: ModelCard, id_column: str = "", what: str = "dataset") -> list[str]:
    """The model's input columns (and the id column) that the dataset must have; refuses, in one
    line naming the columns, what is missing or holds text where the model takes numbers."""
    import pyarrow as pa

    names = list(schema.names)
    missing = [c for c in card.input_names if c not in names]
    if missing:
        raise InputDataError(
            f"the {what} has no column(s) {', '.join(map(repr, missing))} that the model takes as input "
            f"(model inputs: {', '.join(card.input_names)})"
        )
    if id_column and id_column not in names:
        raise InputDataError(
            f"parameter id_column: column {id_column!r} is not in the {what}; its columns are: "
            f"{', '.join(names[:20])}{', ...' if len(names) > 20 else ''}"
        )
    for feature in card.input_features:
        kind = schema.field(feature.name).type
        if feature.logical_type == NUMERIC and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InputDataError(
                f"column {feature.name!r} of the {what} holds text ({kind}) but the model takes numbers: "
                "convert it (ingest's column_types) or score data shaped like the training data"
            )
    wanted = [*card.input_names]
    if id_column and id_column not in wanted:
        wanted.append(id_column)
    return wanted


def iter_frames(parquet: Any, columns: Sequence[str], batch_rows: int) -> Iterator[pd.DataFrame]:
    """The dataset ``batch_rows`` rows at a time, as pandas frames typed as read_dataset types
    them (the file's pandas metadata), reading only ``columns``."""
    import pyarrow as pa

    metadata = parquet.schema_arrow.metadata
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=list(columns)):
        if metadata and not batch.schema.metadata:
            batch = batch.replace_schema_metadata(metadata)
        yield pa.Table.from_batches([batch]).to_pandas(split_blocks=True, self_destruct=True)


# --- scoring --------------------------------------------------------------------------------------


def has_probabilities(model: Any, card: ModelCard) -> bool:
    return card.is_classifier and callable(getattr(model, "predict_proba", None))


def _classes(model: Any, card: ModelCard) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    if classes is not None:
        return np.asarray(classes).tolist()
    return list(card.classes) if card.classes is not None else None


def batch_predict(
    parquet: Any,
    model: Any,
    card: ModelCard,
    config: BatchPredictConfig,
    *,
    output_uri: str,
    model_name: str,
    model_version: str,
    blessing: str,
    what: str = "dataset",
    clock: Callable[[], dt.datetime] | None = None,
    engine: Engine | None = None,
) -> BatchResult:
    """Score every row of ``parquet`` (``open_dataset``'s parts) with ``model`` and write
    one prediction-log shard per batch under ``output_uri`` (gs:// or a folder).

    Refused before anything is written: a missing input or id column, text where the model takes
    numbers, an output column name that clashes with the log's own, an empty dataset. When the model
    refuses a batch's values, the shards already written are deleted and the error names the rows.

    ``engine``: an open ``common.engine.Engine``; a distributed one scores the parts on its
    workers (``parts.score_parts``), which write the shards themselves.
    """
    clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
    columns = columns_to_read(parquet.schema_arrow, card, config.id_column, what)
    if parquet.num_rows == 0:
        raise InputDataError(f"the {what} has no rows: nothing to score")
    classes = _classes(model, card)
    probabilities = has_probabilities(model, card) and classes is not None
    probability_columns = [f"{PROBABILITY_PREFIX}{c}" for c in classes] if probabilities and classes else []
    if config.id_column:
        logged: dict[str, str | None] = {config.id_column: None}  # stored as it is in the data
        fields = [parquet.schema_arrow.field(config.id_column)]
    else:
        logged = dict(card.input_columns)
        fields = log_fields(card.input_columns)
    names = [*logged, PREDICTION_COLUMN, *probability_columns, *LOG_COLUMNS]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise InputDataError(
            f"column(s) {', '.join(map(repr, clashes))} of the {what} have the name of a column the "
            "predictions add: rename them, or name another id_column"
        )
    schema = log_schema(fields, classes if card.is_classifier else None, probability_columns)

    started = time.perf_counter()
    first = clock()
    request_prefix = f"batch-{first:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    job = ScoringJob(
        schema=schema,
        logged=logged,
        columns=columns,
        input_names=list(card.input_names),
        probabilities=probabilities,
        is_classifier=card.is_classifier,
        batch_rows=config.batch_rows,
        output_uri=output_uri,
        model_name=model_name,
        model_version=model_version,
        what=what,
        total_rows=parquet.num_rows,
    )
    if engine is not None and engine.distributed:
        from mlstages.components.batch_predict.parts import score_parts

        scored = score_parts(engine, job, model, parquet.path, request_prefix)
    else:
        scored = job.score_frames(
            model, iter_frames(parquet, columns, config.batch_rows), 0, f"{request_prefix}-", clock
        )
    return BatchResult(
        rows=scored.rows,
        batches=scored.batches,
        shards=scored.shards,
        output_uri=output_uri,
        model_name=model_name,
        model_version=model_version,
        blessing=blessing,
        columns=list(schema.names),
        request_prefix=request_prefix,
        seconds=time.perf_counter() - started,
        classes=classes,
        prediction_counts=scored.counts,
    )


@dataclass
class ScoredRows:
    """What scoring some rows wrote: the shards in order, the rows and batches, the predicted
    classes' counts."""

    shards: list[str] = field(default_factory=list)
    rows: int = 0
    batches: int = 0
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoringJob:
    """What scoring a batch needs besides the model and the rows: the same on the task and on a
    cluster's workers (it pickles)."""

    schema: Any
    logged: dict[str, str | None]
    columns: list[str]
    input_names: list[str]
    probabilities: bool
    is_classifier: bool
    batch_rows: int
    output_uri: str
    model_name: str
    model_version: str
    what: str
    # The dataset's rows, for the progress lines of a long pass.
    total_rows: int | None = None

    def score(
        self, model: Any, frame: pd.DataFrame, first_row: int, request_id: str, now: dt.datetime
    ) -> tuple[Any, np.ndarray]:
        """The prediction-log table of ``frame`` (rows from ``first_row`` of the dataset on), and
        its predictions; a batch the model refuses is an InputDataError naming its rows."""
        size = len(frame)
        try:
            predictions, scores = predict_frame(model, frame[self.input_names], self.probabilities)
        except (ValueError, TypeError) as exc:
            raise InputDataError(
                f"the model could not predict rows {first_row:,} to {first_row + size - 1:,} of the "
                f"{self.what}: {type(exc).__name__}: {_one_line(exc)}"
            ) from exc
        table = log_table(
            self.schema,
            self.logged,
            frame,
            predictions,
            scores,
            pa.repeat(pa.scalar(request_id, pa.string()), size),
            np.arange(size, dtype="int64"),
            pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), size),
            self.model_name,
            self.model_version,
        )
        return table, predictions

    def score_frames(
        self,
        model: Any,
        frames: Iterator[pd.DataFrame],
        first_row: int,
        request_prefix: str,
        clock: Callable[[], dt.datetime],
    ) -> ScoredRows:
        """Score ``frames`` (rows from ``first_row`` of the dataset on) and write one shard per
        frame, request ids ``<request_prefix><batch number>``. On failure the shards written are
        deleted before the error is raised."""
        scored = ScoredRows()
        # One shard is encoded and uploaded while the next batch is predicted (Parquet encoding
        # and uploads release the GIL); at most one waits, so memory stays at about two batches.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-predict-write") as writer:
            pending: Future[str] | None = None
            try:
                for frame in frames:
                    now = clock()
                    request_id = f"{request_prefix}{scored.batches:06d}"
                    table, predictions = self.score(model, frame, first_row + scored.rows, request_id, now)
                    if pending is not None:
                        scored.shards.append(pending.result())
                    pending = writer.submit(_write_shard, self.output_uri, table, now)
                    if self.is_classifier:
                        _count(scored.counts, predictions)
                    scored.rows += len(frame)
                    scored.batches += 1
                    streamed(f"scoring the {self.what}", first_row + scored.rows, self.total_rows)
                if pending is not None:
                    scored.shards.append(pending.result())
                    pending = None
            except BaseException:
                if pending is not None:
                    with contextlib.suppress(Exception):
                        scored.shards.append(pending.result())
                _remove(scored.shards)
                raise
        return scored


def _write_shard(output_uri: str, table: Any, now: dt.datetime) -> str:
    """One shard, whole or not at all (the storage module writes beside the name and renames, or
    uploads with an if-absent precondition)."""
    uri = storage.join_uri(output_uri, shard_name(now.date(), now))
    storage.write_bytes(uri, encode_shard(table), if_absent=True)
    return uri


def _count(counts: dict[str, int], predictions: np.ndarray) -> None:
    # Hashing (value_counts), not sorting strings (np.unique): a sort cost a tenth of the predict.
    for value, count in pd.Series(predictions).value_counts(sort=False).items():
        counts[str(value)] = counts.get(str(value), 0) + int(count)


def _remove(uris: Sequence[str]) -> None:
    """Best effort: a failed run leaves no shards for monitoring to mistake for a whole one."""
    for uri in uris:
        try:
            storage.delete(uri, missing_ok=True)
        except MlstagesError:
            pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def render_markdown(result: BatchResult) -> str:
    """The task's summary: what was scored, with which version, and where the shards are."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    how = {
        CHAMPION: "the registry's champion",
        BLESSED: "blessed by the gate",
        FORCED: "NOT blessed, scored because force=true",
    }[result.blessing]
    lines = [
        "# Batch predict",
        "",
        f"- rows scored: {result.rows:,} in {result.batches:,} batch(es), {len(result.shards):,} shard(s)",
        f"- model: {markdown_text(result.model_name)} version {markdown_text(result.model_version)} ({how})",
        f"- output: {markdown_text(result.output_uri)} (the prediction log's format)",
        f"- request ids: {markdown_text(result.request_prefix)}-NNNNNN, one per batch",
        f"- time: {result.seconds:.1f} s ({result.metrics()['rows_per_second']:,.0f} rows/s)",
    ]
    if result.prediction_counts:
        table = [
            {"prediction": k, "rows": v, "share": f"{v / max(result.rows, 1):.1%}"}
            for k, v in sorted(result.prediction_counts.items(), key=lambda kv: -kv[1])[:50]
        ]
        lines += ["", "## Predictions", "", markdown_table(table, ["prediction", "rows", "share"])]
    lines += ["", f"Columns: {markdown_text(', '.join(result.columns))}", ""]
    return "\n".join(lines)
