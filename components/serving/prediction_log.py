"""Prediction logging: the rows a model server scores and what it predicted, as Parquet shards.

The model server (server.py) hands every scored request to a ``PredictionLogger``: the validated
raw rows (one per instance), the predictions, the class probabilities when the request computed
them, and the request id. The logger buffers them in memory and a background thread writes them
as Parquet shards under a prefix (``gs://`` or a local folder) through the suite's storage module,
which makes each shard appear whole or not at all::

    <prefix>/date=YYYY-MM-DD/part-<UTC time>-<random>.parquet

This is the "current" data that monitoring reads: the ingest stage reads a ``gs://`` prefix of
Parquet shards as one dataset, so every shard has the same columns in the same order:

    the model's input features (in the model's input order, typed by their logical type),
    ``prediction``, ``proba_<class>`` per class (classifiers with probabilities; null for
    requests that did not ask for them), ``request_id``, ``row_index`` (the row's position in its
    request), ``logged_at`` (UTC), ``model_name``, ``model_version``.

Labels that arrive later are joined to the logged rows by request id (``join_labels``).

Why a background thread and a bounded buffer. A prediction must never wait for, or fail because
of, object storage: ``log`` only appends a reference to the request's rows under a lock (a few
microseconds), and the thread serializes and uploads. A shard (of at most ``max_rows`` rows, unless
one request has more) is written when ``max_rows`` rows are buffered, when the oldest buffered row is ``max_seconds`` old, and on ``close`` (server
shutdown). A failed write (bucket missing, permission denied, storage down) is logged and the rows
stay buffered for the next flush, ``max_seconds`` later. While storage stays down the buffer would
grow without end and take the server's memory with it, so it holds at most ``max_buffered_rows``
rows: beyond that the oldest requests are dropped, counted, and the count is logged. Dropping the
oldest rather than the newest keeps the log closest to what the model sees now, which is what drift
monitoring compares; losing a stretch of logged requests is better than losing the server.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common import storage
from mlstages.components.common.errors import MlstagesError, ParameterError
from mlstages.components.common.logical_types import LOGICAL_TYPES
from mlstages.components.serving.log_format import (
    LOG_COLUMNS,
    PREDICTION_COLUMN,
    PROBABILITY_PREFIX,
    _check_positive_int,
    encode_shard,
    log_fields,
    log_schema,
    log_table,
    shard_name,
)

logger = logging.getLogger(__name__)


DEFAULT_MAX_ROWS = 1000


DEFAULT_MAX_SECONDS = 60.0


# Rows kept while storage is unreachable, as a multiple of max_rows (100,000 by default: about
# 20-50 MB of raw rows for a model with a dozen features).
BUFFER_MULTIPLE = 100


@dataclass(frozen=True)
class _Chunk:
    """One scored request, kept by reference until it is written."""

    frame: pd.DataFrame
    predictions: np.ndarray
    probabilities: np.ndarray | None
    request_id: str
    logged_at: dt.datetime

    @property
    def rows(self) -> int:
        return len(self.frame)


class PredictionLogger:
    """Buffers scored requests and writes them as Parquet shards under ``prefix_uri``.

    Args:
        prefix_uri: the folder of shards: ``gs://bucket/path`` or a local path.
        model_name: the served model's name (a column of every row).
        model_version: what identifies the served model (see ``model_version_of``).
        input_columns: the model's raw input features, in its input order, name -> logical type
            (numeric, categorical, text, boolean, datetime).
        classes: a classifier's classes (their type types the ``prediction`` column); None for
            regression.
        probabilities: whether ``proba_<class>`` columns exist (a classifier with predict_proba).
        max_rows: write a shard once this many rows are buffered.
        max_seconds: write a shard once the oldest buffered row is this old; also the wait before
            a failed write is tried again.
        max_buffered_rows: the most rows kept while writes fail; the oldest requests beyond it are
            dropped and counted (default: 100 x max_rows).

    Raises:
        ParameterError: a parameter is unusable (named), or a feature's name is one of the log's
            own columns.
    """

    def __init__(
        self,
        prefix_uri: str,
        *,
        model_name: str,
        model_version: str,
        input_columns: Mapping[str, str],
        classes: Sequence[Any] | None = None,
        probabilities: bool = False,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_buffered_rows: int | None = None,
    ) -> None:
        self._options = {
            "prefix_uri": prefix_uri,
            "model_name": model_name,
            "model_version": model_version,
            "input_columns": dict(input_columns or {}),
            "classes": None if classes is None else list(classes),
            "probabilities": probabilities,
            "max_rows": max_rows,
            "max_seconds": max_seconds,
            "max_buffered_rows": max_buffered_rows,
        }
        if not isinstance(prefix_uri, str) or not prefix_uri.strip():
            raise ParameterError(
                "parameter prediction_log is empty: give a gs://bucket/prefix (or a local folder)"
            )
        if storage.is_gcs_uri(prefix_uri):
            storage.split_gcs_uri(prefix_uri)  # a bad bucket name is refused now, not at the first flush
        else:
            storage.to_local_path(prefix_uri)  # refuses other schemes (s3://, http://)
        if not isinstance(model_name, str) or not model_name:
            raise ParameterError(f"parameter model_name={model_name!r} must be a non-empty string")
        if not isinstance(model_version, str) or not model_version:
            raise ParameterError(f"parameter model_version={model_version!r} must be a non-empty string")
        if not input_columns:
            raise ParameterError("parameter input_columns is empty: give the model's input features")
        for name, kind in input_columns.items():
            if kind not in LOGICAL_TYPES:
                raise ParameterError(
                    f"input column {name!r} has type {kind!r}; expected one of {', '.join(LOGICAL_TYPES)}"
                )
        self.max_rows = _check_positive_int("max_rows", max_rows)
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not max_seconds > 0:
            raise ParameterError(
                f"parameter max_seconds={max_seconds!r} must be a positive number of seconds"
            )
        if not math.isfinite(max_seconds):
            raise ParameterError(f"parameter max_seconds={max_seconds!r} must be finite")
        self.max_seconds = float(max_seconds)
        self.max_buffered_rows = _check_positive_int(
            "max_buffered_rows",
            BUFFER_MULTIPLE * self.max_rows if max_buffered_rows is None else max_buffered_rows,
            self.max_rows,
        )
        if probabilities and not classes:
            raise ParameterError("parameter probabilities=True needs the classifier's classes")
        self.prefix_uri = prefix_uri.rstrip("/") if storage.is_gcs_uri(prefix_uri) else prefix_uri
        self.model_name = model_name
        self.model_version = model_version
        self.input_columns = dict(input_columns)
        self.classes = list(classes) if classes is not None else None
        self.probability_columns = (
            [f"{PROBABILITY_PREFIX}{c}" for c in self.classes] if probabilities and self.classes else []
        )
        self.columns = [
            *self.input_columns,
            PREDICTION_COLUMN,
            *self.probability_columns,
            *LOG_COLUMNS,
        ]
        clashes = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if clashes:
            raise ParameterError(
                f"the model's input feature(s) {', '.join(map(repr, clashes))} have the same name as "
                f"columns the prediction log adds ({PREDICTION_COLUMN}, {PROBABILITY_PREFIX}<class>, "
                f"{', '.join(LOG_COLUMNS)}): rename the feature(s) to log this model's predictions"
            )
        self.schema = self._schema()

        self._lock = threading.Condition()
        self._write_lock = threading.Lock()
        self._chunks: deque[_Chunk] = deque()
        self._buffered_rows = 0
        self._oldest: float | None = None  # time.monotonic() of the oldest buffered row
        self._retry_at = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._dropped_unreported = 0
        self.rows_logged = 0
        self.rows_written = 0
        self.rows_dropped = 0
        self.shards_written: list[str] = []
        self.failed_flushes = 0
        _OPEN_LOGGERS.add(self)

    # KServe starts extra uvicorn workers (--workers > 1) as spawned processes, which receive the
    # model, and so this logger, pickled: each worker gets a logger of its own with the same
    # settings and an empty buffer (locks and threads cannot cross a process boundary).
    def __getstate__(self) -> dict[str, Any]:
        return dict(self._options)

    def __setstate__(self, options: dict[str, Any]) -> None:
        prefix_uri = options.pop("prefix_uri")
        self.__init__(prefix_uri, **options)

    def _schema(self) -> Any:
        return log_schema(log_fields(self.input_columns), self.classes, self.probability_columns)

    # --- the request path ---------------------------------------------------------------------

    def log(
        self,
        frame: pd.DataFrame,
        predictions: Any,
        probabilities: Any | None,
        request_id: str,
    ) -> None:
        """Buffer one scored request: its validated rows, predictions, probabilities (or None)
        and id. Never raises: a prediction must not fail because it could not be logged."""
        try:
            chunk = _Chunk(
                frame,
                np.asarray(predictions),
                None if probabilities is None else np.asarray(probabilities, dtype="float64"),
                request_id,
                dt.datetime.now(dt.timezone.utc),
            )
            with self._lock:
                if self._closed:
                    self._count_dropped(chunk.rows)
                    return
                self._ensure_thread()
                self._chunks.append(chunk)
                self._buffered_rows += chunk.rows
                self.rows_logged += chunk.rows
                if self._oldest is None:
                    self._oldest = time.monotonic()
                self._drop_beyond_cap()
                if self._buffered_rows >= self.max_rows:
                    self._lock.notify()
        except Exception:  # logging is best effort; the prediction has already been made
            logger.exception("prediction log: could not buffer request %s", request_id)

    def _ensure_thread(self) -> None:
        # Started on first use, and again in a process forked after it started (uvicorn workers):
        # threads do not survive a fork.
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def _drop_beyond_cap(self) -> None:
        while self._buffered_rows > self.max_buffered_rows and len(self._chunks) > 1:
            oldest = self._chunks.popleft()
            self._buffered_rows -= oldest.rows
            self._count_dropped(oldest.rows)

    def _count_dropped(self, rows: int) -> None:
        self.rows_dropped += rows
        self._dropped_unreported += rows

    # --- the background thread ----------------------------------------------------------------

    def _due(self, now: float) -> bool:
        if not self._chunks or now < self._retry_at:
            return False
        return self._buffered_rows >= self.max_rows or now - (self._oldest or now) >= self.max_seconds

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self._due(time.monotonic()):
                    now = time.monotonic()
                    waits = [self.max_seconds]
                    if self._oldest is not None:
                        waits.append(self._oldest + self.max_seconds - now)
                    if self._retry_at > now:
                        waits.append(self._retry_at - now)
                    self._lock.wait(timeout=max(0.01, min(waits)))
                if self._closed:
                    return  # close() writes what is left
            self.flush()

    def flush(self) -> list[str]:
        """Write every buffered row now; return the URIs of the shards written.

        A failed write is logged, not raised: its rows go back to the front of the buffer for the
        next flush (within ``max_buffered_rows``).
        """
        with self._write_lock:
            with self._lock:
                chunks = list(self._chunks)
                self._chunks.clear()
                self._buffered_rows = 0
                self._oldest = None
                dropped, self._dropped_unreported = self._dropped_unreported, 0
            if dropped:
                logger.warning(
                    "prediction log %s: dropped %d row(s) (%d in all) because more than %d were waiting "
                    "to be written; the oldest requests go first",
                    self.prefix_uri,
                    dropped,
                    self.rows_dropped,
                    self.max_buffered_rows,
                )
            written: list[str] = []
            done: set[int] = set()
            try:
                for day, group in _shards(chunks, self.max_rows):
                    originals = list(group)
                    uri = self._write_shard(day, group)  # drops from group what cannot be encoded
                    done.update(id(c) for c in originals)
                    if uri is not None:
                        written.append(uri)
                        self.rows_written += sum(c.rows for c in group)
                        self.shards_written.append(uri)
            except Exception as exc:  # any failure: keep the rows, never take the server down
                self.failed_flushes += 1
                pending = [c for c in chunks if id(c) not in done]
                rows = sum(c.rows for c in pending)
                logger.warning(
                    "prediction log: could not write %d row(s) under %s (%s: %s); they stay buffered "
                    "and are written with the next flush in %g s",
                    rows,
                    self.prefix_uri,
                    type(exc).__name__,
                    exc,
                    self.max_seconds,
                )
                with self._lock:
                    self._chunks.extendleft(reversed(pending))
                    self._buffered_rows += rows
                    self._oldest = time.monotonic() if self._chunks else None
                    self._retry_at = time.monotonic() + self.max_seconds
                    self._drop_beyond_cap()
            return written

    def _write_shard(self, day: dt.date, chunks: list[_Chunk]) -> str | None:
        """Write one shard; None when none of its rows could be encoded (they are dropped)."""
        data = self._encode(chunks)
        if data is None:
            return None
        uri = storage.join_uri(self.prefix_uri, shard_name(day, dt.datetime.now(dt.timezone.utc)))
        storage.write_bytes(uri, data, if_absent=True)
        return uri

    def _encode(self, chunks: list[_Chunk]) -> bytes | None:
        """The shard's Parquet bytes. A request whose values do not fit the log's column types
        would fail every later flush too, so it is dropped (and named in the log), not retried."""

        try:
            table = self.to_table(chunks)
        except Exception:
            kept = []
            for chunk in chunks:
                try:
                    self.to_table([chunk])
                    kept.append(chunk)
                except Exception as exc:
                    logger.error(
                        "prediction log: dropped request %s (%d row(s)): its values do not fit the log's "
                        "columns (%s: %s)",
                        chunk.request_id,
                        chunk.rows,
                        type(exc).__name__,
                        exc,
                    )
                    with self._lock:
                        self.rows_dropped += chunk.rows
            chunks[:] = kept
            if not kept:
                return None
            table = self.to_table(kept)
        return encode_shard(table)

    def to_table(self, chunks: Sequence[_Chunk]) -> Any:
        """The rows of ``chunks`` as one Arrow table with the log's schema."""
        frame = (
            pd.concat([c.frame for c in chunks], ignore_index=True) if len(chunks) > 1 else chunks[0].frame
        )
        probabilities = None
        if self.probability_columns:
            width = len(self.probability_columns)
            probabilities = np.concatenate(
                [
                    c.probabilities.reshape(c.rows, width)
                    if c.probabilities is not None
                    else np.full((c.rows, width), np.nan)
                    for c in chunks
                ]
            )
        counts = [c.rows for c in chunks]
        return log_table(
            self.schema,
            self.input_columns,
            frame,
            np.concatenate([c.predictions.reshape(-1) for c in chunks]),
            probabilities,
            np.repeat([c.request_id for c in chunks], counts),
            np.concatenate([np.arange(c.rows, dtype="int64") for c in chunks]),
            np.repeat(
                np.array([c.logged_at.replace(tzinfo=None) for c in chunks], dtype="datetime64[us]"), counts
            ),
            self.model_name,
            self.model_version,
        )

    # --- shutdown -----------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> list[str]:
        """Stop the background thread and write what is buffered (one attempt); return the URIs
        of the shards written. Rows logged afterwards are dropped and counted. Idempotent."""
        with self._lock:
            if self._closed and not self._chunks:
                return []
            self._closed = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            self._retry_at = 0.0
        written = self.flush() if self._chunks else []
        if self._dropped_unreported:
            logger.warning("prediction log %s: %d row(s) dropped in all", self.prefix_uri, self.rows_dropped)
        _OPEN_LOGGERS.discard(self)
        return written

    def stats(self) -> dict[str, int]:
        """Counts since start: rows logged, written, dropped and buffered, shards, failed flushes."""
        with self._lock:
            return {
                "rows_logged": self.rows_logged,
                "rows_written": self.rows_written,
                "rows_dropped": self.rows_dropped,
                "rows_buffered": self._buffered_rows,
                "shards_written": len(self.shards_written),
                "failed_flushes": self.failed_flushes,
            }


def _shards(chunks: Sequence[_Chunk], max_rows: int) -> list[tuple[dt.date, list[_Chunk]]]:
    """Chunks grouped into shards, in order: one UTC date each (the date the rows were logged),
    at most ``max_rows`` rows each unless a single request has more."""
    shards: list[tuple[dt.date, list[_Chunk]]] = []
    rows = 0
    for chunk in chunks:
        day = chunk.logged_at.date()
        if not shards or shards[-1][0] != day or rows + chunk.rows > max_rows:
            shards.append((day, []))
            rows = 0
        shards[-1][1].append(chunk)
        rows += chunk.rows
    return shards


# Loggers still open when the interpreter exits write what they hold (a server stopped without
# its models being unloaded, or a worker process that exits on its own).
_OPEN_LOGGERS: weakref.WeakSet[PredictionLogger] = weakref.WeakSet()


@atexit.register
def _close_open_loggers() -> None:
    for open_logger in list(_OPEN_LOGGERS):
        try:
            open_logger.close()
        except MlstagesError:
            logger.exception("prediction log %s: the final flush failed", open_logger.prefix_uri)
