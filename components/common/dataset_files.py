"""Datasets on disk: a folder of Parquet part files, written and read a batch at a time.

Every Dataset artifact the suite writes is a folder::

    <artifact path>/
        part-00000.parquet      at most ``part_rows`` rows each, row groups of ROW_GROUP_ROWS rows
                                (fewer for a wide table: ``row_group_rows``)
        part-00001.parquet
        _dataset.json           rows per part, columns, dtypes, content hash

so that no stage has to hold a whole table: ``iter_batches`` streams it by row group,
``dataset_positions.sample_rows`` reads a seeded sample, ``dataset_rows`` counts it from the
Parquet footers. A plain Parquet file (a user's, or an artifact of an older version) reads the same way, and
``pd.read_parquet(folder)`` reads the folder whole (files starting with ``_`` or ``.`` are not
data to pyarrow).

A folder appears whole or not at all: it is written beside its final name and renamed into place
when ``DatasetWriter.close`` has written the last part.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import LINEAGE_KEY, column_types
from mlstages.components.common.errors import InputDataError
from mlstages.components.common.memory import release_unused
from mlstages.components.common.progress import streamed

# A part of 1M rows is about 140 MB of Parquet at 25 columns: small enough to move between pods,
# few enough parts to list quickly at 50M rows.
DEFAULT_PART_ROWS = 1_000_000
# Row groups are the unit a reader holds in memory: 128k rows x 25 columns is about 30 MB. A wide
# table's are cut to about ROW_GROUP_BYTES (Arrow's size of the rows): pyarrow's batch reader holds
# nearly three times a row group while it reads one (431 MB for the 150 MB groups of a 151-column
# split, measured), whatever the batch size asked for.
ROW_GROUP_ROWS = 131_072
ROW_GROUP_BYTES = 32 << 20
DEFAULT_BATCH_ROWS = 131_072
# A stage holds a batch a few times over (Arrow's buffers, the DataFrame, its own copies), so a
# batch is cut to about this many bytes: 1M rows x 150 float columns read 131,072 rows at a time
# took validate_data's peak from 1.7 to 2.3 GB against 32,768. Smaller batches cost nothing: the
# drift reference of a 240k x 151 split at a 1 GiB allowance peaked at 1,072 MiB in 5.7 s with
# 44,000-row batches (64 MiB), 803 MiB in 3.8 s with 10,000; on the 1M x 25 benchmark table
# (487 bytes a row), 34,000-row batches against 131,072: 393 against 492 MiB, 2.4 against 2.9 s,
# and validate_data 5.6 s either way, 661 against 728 MiB.
BATCH_BYTES = 16 << 20
MANIFEST_FILE = "_dataset.json"
PART_PATTERN = "part-{:05d}.parquet"


def _hash_rows(df: pd.DataFrame) -> bytes:
    if not len(df):
        return b""
    hashed = pd.util.hash_pandas_object(df, index=False, categorize=False)
    return np.ascontiguousarray(hashed.to_numpy()).tobytes()


class DatasetWriter:
    """Write a dataset folder from DataFrames given one batch at a time.

    The first batch fixes the columns and their types; a later batch is converted to them (a
    column whose values no longer fit is an InputDataError naming it). ``close`` returns the
    dataset's metadata, as ``datasets.dataset_metadata`` gives for the whole table: the content
    hash is the same as that of the concatenated batches. Used as a context manager, a failure
    leaves nothing at ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        source: str | None = None,
        lineage: Mapping[str, Any] | None = None,
        part_rows: int = DEFAULT_PART_ROWS,
        schema: Any = None,
    ) -> None:
        if part_rows < 1:
            raise ValueError(f"part_rows={part_rows} must be at least 1")
        self.path = Path(path)
        self.source = source
        self.lineage = dict(lineage) if lineage else None
        self.part_rows = part_rows
        # A writer that knows every column's arrow type beforehand: the first batch alone would
        # give a text column whose first rows are all missing the null type, which no later
        # batch's strings fit.
        self._given_schema = schema
        self.rows = 0
        self.part_counts: list[int] = []
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._schema: Any = None
        self._dtypes: dict[str, str] | None = None
        self._types: dict[str, str] | None = None
        self._digest = hashlib.sha256()
        self._part: Any = None  # the open pyarrow ParquetWriter
        self._part_rows_written = 0
        self._closed = False
        shutil.rmtree(self._partial, ignore_errors=True)
        self._partial.mkdir(parents=True)

    # --- writing ---------------------------------------------------------------------------------

    def write(self, df: pd.DataFrame) -> None:
        """Append the rows of ``df`` (its index is not kept)."""
        if self._schema is None:
            self._start(df)
        elif list(map(str, df.columns)) != list(self._dtypes or {}):
            raise InputDataError(
                f"a batch of {self.path.name} has columns {list(map(str, df.columns))}, the first had "
                f"{list(self._dtypes or {})}"
            )
        elif self.rows == 0 and len(df):
            self._types = column_types(df)  # the first batches were empty: the first rows decide
        self._digest.update(_hash_rows(df))
        start = 0
        while start < len(df):
            if self._part is None:
                self._open_part()
            take = min(len(df) - start, self.part_rows - self._part_rows_written)
            self._write_table(df.iloc[start : start + take])
            self._part_rows_written += take
            self.rows += take
            start += take
            if self._part_rows_written >= self.part_rows:
                self._close_part()
        streamed(f"writing {self.path.name}", self.rows)

    def _write_table(self, chunk: pd.DataFrame) -> None:
        import pyarrow as pa

        try:
            table = pa.Table.from_pandas(chunk, schema=self._schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise InputDataError(self._mismatch(chunk, exc)) from exc
        self._part.write_table(table, row_group_size=row_group_rows(table))

    def _start(self, df: pd.DataFrame) -> None:
        import pyarrow as pa

        schema = self._given_schema
        if schema is None:
            schema = pa.Schema.from_pandas(df, preserve_index=False)
        if self.lineage:
            kept = dict(schema.metadata or {})
            kept[LINEAGE_KEY] = json.dumps(self.lineage, sort_keys=True, default=str).encode()
            schema = schema.with_metadata(kept)
        self._schema = schema
        self._dtypes = {str(c): str(t) for c, t in df.dtypes.items()}
        self._types = column_types(df)
        for name, dtype in self._dtypes.items():
            self._digest.update(f"{name}\x00{dtype}\x00".encode())

    def _mismatch(self, chunk: pd.DataFrame, exc: Exception) -> str:
        for name in chunk.columns:
            expected = (self._dtypes or {}).get(str(name))
            if str(chunk[name].dtype) != expected:
                return (
                    f"column {str(name)!r} changes type within the data: {expected} in the first rows, "
                    f"{chunk[name].dtype} from row {self.rows} on ({exc}); give the column one type "
                    "throughout (column_types can declare it)"
                )
        return f"rows from {self.rows} on do not fit the columns of the first rows: {exc}"

    def _open_part(self) -> None:
        import pyarrow.parquet as pq

        target = self._partial / PART_PATTERN.format(len(self.part_counts))
        self._part = pq.ParquetWriter(target, self._schema)
        self._part_rows_written = 0

    def _close_part(self) -> None:
        self._part.close()
        self._part = None
        self.part_counts.append(self._part_rows_written)
        self._part_rows_written = 0

    # --- finishing -------------------------------------------------------------------------------

    def close(
        self, lineage: Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Write the last part and the manifest, move the folder into place, return the metadata.

        ``lineage`` (or a function of the metadata that gives it, for lineage that names the
        rows' own content hash, known only now) goes into the manifest, where ``read_lineage``
        finds it before the parts' own."""
        if self._closed:
            raise RuntimeError(f"{self.path} is already closed")
        if self._schema is None:
            raise InputDataError(f"no batch was written to {self.path.name}: a dataset needs its columns")
        if self._part is None and not self.part_counts:
            self._open_part()  # no rows: one empty part keeps the columns and their types
        if self._part is not None:
            self._close_part()
        metadata: dict[str, Any] = {
            "rows": self.rows,
            "columns": len(self._dtypes or {}),
            "column_types": dict(self._types or {}),
            "dtypes": dict(self._dtypes or {}),
            "content_hash": self._digest.hexdigest(),
            "parts": len(self.part_counts),
        }
        if self.source is not None:
            metadata["source"] = self.source
        manifest = {**metadata, "part_rows": self.part_counts, "format": "mlstages.dataset/1"}
        if lineage is not None:
            manifest["lineage"] = dict(lineage(dict(metadata)) if callable(lineage) else lineage)
        (self._partial / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if self.path.is_dir():
            shutil.rmtree(self.path)
        elif self.path.exists():
            self.path.unlink()
        os.replace(self._partial, self.path)
        self._closed = True
        return metadata

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._part is not None:
            try:
                self._part.close()
            except Exception:  # the partial folder goes anyway
                pass
            self._part = None
        shutil.rmtree(self._partial, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def write_dataset(
    df: pd.DataFrame,
    path: str | os.PathLike,
    source: str | None = None,
    lineage: Mapping[str, Any] | None = None,
    *,
    part_rows: int = DEFAULT_PART_ROWS,
) -> dict[str, Any]:
    """Write ``df`` as a dataset folder at ``path`` and return its metadata; ``lineage`` (where the
    rows came from, JSON) is kept in every part for ``read_lineage``."""
    writer = DatasetWriter(path, source=source, lineage=lineage, part_rows=part_rows)
    try:
        writer.write(df)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def row_group_rows(table: Any) -> int:
    """The rows of a row group of ``table`` (an Arrow table): ROW_GROUP_ROWS, fewer for a table
    wider than ROW_GROUP_BYTES takes at that many rows, at least 4,096."""
    if not table.num_rows:
        return ROW_GROUP_ROWS
    return _rows_in(ROW_GROUP_BYTES, table.nbytes / table.num_rows, ROW_GROUP_ROWS)


def write_parquet_file(
    df: pd.DataFrame, path: str | os.PathLike, *, lineage: Mapping[str, Any] | None = None
) -> Path:
    """Write ``df`` as ONE Parquet file (lineage in its schema metadata), for data that leaves the
    pipeline as a file, such as the retraining windows kept in the registry; atomic like a folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if lineage:
            kept = dict(table.schema.metadata or {})
            kept[LINEAGE_KEY] = json.dumps(dict(lineage), sort_keys=True, default=str).encode()
            table = table.replace_schema_metadata(kept)
        pq.write_table(table, partial, row_group_size=row_group_rows(table))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def write_batches(
    batches: Iterator[pd.DataFrame] | Sequence[pd.DataFrame],
    path: str | os.PathLike,
    source: str | None = None,
    lineage: Mapping[str, Any] | None = None,
    *,
    part_rows: int = DEFAULT_PART_ROWS,
) -> dict[str, Any]:
    """Write the DataFrames of ``batches`` in turn as one dataset folder; return its metadata."""
    writer = DatasetWriter(path, source=source, lineage=lineage, part_rows=part_rows)
    try:
        for batch in batches:
            writer.write(batch)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


# --- reading -------------------------------------------------------------------------------------


def part_files(path: str | os.PathLike, *, what: str = "dataset") -> list[Path]:
    """The Parquet files of a dataset: the file itself, or a folder's data files in name order."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputDataError(f"{what} {path}: no such file or folder")
    files = sorted(
        p
        for p in root.rglob("*.parquet")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise InputDataError(f"{what} {path} is a folder with no Parquet part file in it")
    return files


# Column chunks are read through a 1 MiB buffer instead of whole: reading a whole row group's
# chunks cost a third more memory (measured on 1M penguins rows in row groups of a million: 55 MB
# above baseline against 85 MB), for no loss of speed.
READ_BUFFER_BYTES = 1 << 20


def open_part(file: Path, what: str) -> Any:
    """A part (or a plain Parquet file) opened for reading; a file pyarrow cannot read is named."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        message = " ".join(str(exc).split())
        raise InputDataError(f"{what} {file} is not a readable Parquet file: {message}") from exc


class DatasetParts:
    """A dataset's part files opened for streaming, seen as one table: ``schema_arrow`` (the first
    part's), ``num_rows`` and ``iter_batches`` (pyarrow record batches, part after part)."""

    def __init__(self, path: str | os.PathLike, *, what: str = "dataset") -> None:
        self.path = Path(path)
        self.what = what
        self.files = part_files(path, what=what)
        self._first = open_part(self.files[0], what)
        self.schema_arrow = self._first.schema_arrow

    @property
    def num_rows(self) -> int:
        return self._first.metadata.num_rows + sum(
            open_part(f, self.what).metadata.num_rows for f in self.files[1:]
        )

    def iter_batches(self, *, batch_size: int, columns: Sequence[str] | None = None) -> Iterator[Any]:
        import pyarrow as pa

        for number, file in enumerate(self.files):
            parquet = self._first if number == 0 else open_part(file, self.what)
            try:
                yield from parquet.iter_batches(
                    batch_size=batch_size, columns=list(columns) if columns is not None else None
                )
            except (OSError, pa.ArrowException) as exc:
                raise InputDataError(f"{self.what} {file} cannot be read: {exc}") from exc


def open_parts(path: str | os.PathLike, *, what: str = "dataset") -> DatasetParts:
    """The dataset at ``path`` (a folder of parts or one Parquet file), opened for streaming."""
    return DatasetParts(path, what=what)


def to_frame(table: Any) -> pd.DataFrame:
    """An Arrow table read from a part as the DataFrame every reader gives."""
    return table.to_pandas()


def dataset_rows(path: str | os.PathLike, *, what: str = "dataset") -> int:
    """The number of rows, from the Parquet footers (nothing else is read)."""
    return sum(open_part(f, what).metadata.num_rows for f in part_files(path, what=what))


def dataset_columns(path: str | os.PathLike, *, what: str = "dataset") -> list[str]:
    """The column names, from the first part's schema."""
    schema = open_part(part_files(path, what=what)[0], what).schema_arrow
    return [name for name in schema.names if name not in _index_columns(schema)]


def _index_columns(schema: Any) -> set[str]:
    raw = (schema.metadata or {}).get(b"pandas")
    if not raw:
        return set()
    return {c for c in json.loads(raw).get("index_columns", []) if isinstance(c, str)}


def iter_batches(
    path: str | os.PathLike,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    columns: Sequence[str] | None = None,
    what: str = "dataset",
) -> Iterator[pd.DataFrame]:
    """The rows of a dataset as DataFrames of at most ``batch_rows`` rows, in order, each with the
    dtypes ``read_dataset`` gives and a RangeIndex continuing from the previous batch."""
    files = part_files(path, what=what)
    total = sum(open_part(f, what).metadata.num_rows for f in files)
    offset = 0
    for file in files:
        for frame in iter_part_batches(
            file, offset, batch_rows=batch_rows, columns=columns, what=what, total_rows=total
        ):
            offset += len(frame)
            yield frame


def part_starts(path: str | os.PathLike, *, what: str = "dataset") -> list[tuple[str, int]]:
    """Each part file with the position of its first row in the dataset, from the footers: the
    shards an engine hands out (``engine.Engine.map``), each read with ``iter_part_batches``."""
    starts, offset = [], 0
    for file in part_files(path, what=what):
        starts.append((str(file), offset))
        offset += open_part(file, what).metadata.num_rows
    return starts


def iter_part_batches(
    file: str | os.PathLike,
    start: int,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    columns: Sequence[str] | None = None,
    what: str = "dataset",
    total_rows: int | None = None,
) -> Iterator[pd.DataFrame]:
    """One part's rows as ``iter_batches`` gives them, the index counting from ``start``. A pass
    over many rows reports how far it is (``progress.streamed``; ``total_rows``: the dataset's)."""
    import pyarrow as pa

    file = Path(file)
    parquet = open_part(file, what)
    schema = parquet.schema_arrow
    wanted = list(columns) if columns is not None else None
    offset = start
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted, use_pandas_metadata=True):
            table = pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata)
            frame = to_frame(table)
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            offset += len(frame)
            yield frame
            streamed(f"reading the {what}", offset, total_rows)
    except (OSError, pa.ArrowException) as exc:
        raise InputDataError(f"{what} {file} cannot be read: {exc}") from exc
    finally:
        # The part's batches are freed, but their allocators keep the memory from what the task
        # does next (fitting, through malloc) until it is released.
        release_unused()


def read_dataset(
    path: str | os.PathLike, *, what: str = "dataset", columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a whole dataset (a folder of parts or one Parquet file) into memory."""
    files = part_files(path, what=what)
    try:
        if len(files) == 1:
            return pd.read_parquet(files[0], columns=list(columns) if columns is not None else None)
        return pd.concat(
            [pd.read_parquet(f, columns=list(columns) if columns is not None else None) for f in files],
            ignore_index=True,
        )
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputDataError(f"{what} {path} is not a readable Parquet dataset: {exc}") from exc


def read_lineage(path: str | os.PathLike) -> dict[str, Any]:
    """The lineage a dataset keeps in its manifest or else in its Parquet schema metadata; empty
    for data without one."""
    import pyarrow.parquet as pq

    kept = read_manifest(path).get("lineage") if Path(path).is_dir() else None
    if isinstance(kept, dict):
        return kept
    try:
        metadata = pq.read_schema(part_files(path)[0]).metadata or {}
    except Exception:  # pyarrow raises several unrelated types for a bad file; read_dataset names it
        return {}
    raw = metadata.get(LINEAGE_KEY)
    return json.loads(raw) if raw else {}


def read_dataset_head(
    path: str | os.PathLike, rows: int, *, columns: Sequence[str] | None = None, what: str = "dataset"
) -> pd.DataFrame:
    """The first ``rows`` rows of the first part (0: the empty frame with the columns' dtypes)."""
    parquet = open_part(part_files(path, what=what)[0], what)
    wanted = list(columns) if columns is not None else None
    if rows and parquet.metadata.num_row_groups:
        table = parquet.read_row_group(0, columns=wanted, use_pandas_metadata=True).slice(0, rows)
    else:
        table = parquet.schema_arrow.empty_table()
        table = table.select(wanted) if wanted is not None else table
    return to_frame(table).reset_index(drop=True)


def batch_rows_for(row_bytes: float) -> int:
    """The rows of a batch of rows of ``row_bytes`` bytes (``bytes_per_row``): DEFAULT_BATCH_ROWS,
    fewer for a wide table (BATCH_BYTES), at least 4,096."""
    return _rows_in(BATCH_BYTES, row_bytes, DEFAULT_BATCH_ROWS)


def _rows_in(budget: int, row_bytes: float, most: int) -> int:
    """The rows of ``row_bytes`` bytes that ``budget`` bytes hold: at most ``most``, at least 4,096."""
    return int(min(most, max(4_096, budget // max(row_bytes, 1.0))))


def bytes_per_row(path: str | os.PathLike, *, probe_rows: int = 10_000, what: str = "dataset") -> float:
    """The in-memory (pandas) size of a row, measured on the first ``probe_rows`` rows."""
    head = read_dataset_head(path, probe_rows, what=what)
    if not len(head):
        return 1.0
    return max(1.0, float(head.memory_usage(deep=True, index=False).sum()) / len(head))


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest a dataset folder keeps (rows, columns, dtypes, content hash); empty for a plain
    Parquet file or a folder written by something else."""
    manifest = Path(path) / MANIFEST_FILE
    try:
        return json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}


def streamed_source_lineage(path: str | os.PathLike, uri: str, *, what: str = "dataset") -> dict[str, Any]:
    """``datasets.source_lineage`` of the dataset at ``path``, without holding it: from its
    manifest, or computed a batch at a time."""
    manifest = read_manifest(path)
    if {"rows", "columns", "content_hash"} <= set(manifest):
        return {
            "uri": uri,
            "rows": manifest["rows"],
            "columns": manifest["columns"],
            "content_hash": manifest["content_hash"],
        }
    digest = hashlib.sha256()
    rows = 0
    columns = 0
    for number, batch in enumerate(iter_batches(path, what=what)):
        if number == 0:
            columns = batch.shape[1]
            for name in batch.columns:
                digest.update(f"{name}\x00{batch[name].dtype}\x00".encode())
        digest.update(_hash_rows(batch))
        rows += len(batch)
    return {"uri": uri, "rows": rows, "columns": columns, "content_hash": digest.hexdigest()}
