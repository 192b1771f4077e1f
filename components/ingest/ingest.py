"""Ingestion: read a source a chunk at a time into a dataset folder, whatever its size.

Sources are looked up by URI scheme in ``SOURCES``; each one turns a URI into shards (local
files, downloaded one at a time when they are remote, or a database query), and each format's
shard (``csv_source``, ``json_lines``, ``parquet_source``, ``sql_source``) reads its rows a chunk
at a time; ``stream`` puts the shards together, typed as a read of the whole source into one
DataFrame types them, and writes them. A new source is one function registered with
``register_source``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlstages.components.common.dataset_files import DEFAULT_PART_ROWS, part_files
from mlstages.components.common.errors import InputDataError, ParameterError, require_choice
from mlstages.components.ingest.csv_source import CsvShard
from mlstages.components.ingest.delimited import (
    DEFAULT_MAX_CELL_LENGTH,
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_LINE_LENGTH,
)
from mlstages.components.ingest.json_lines import JsonLinesShard
from mlstages.components.ingest.parquet_source import ParquetShard
from mlstages.components.ingest.shards import Shard, ShardPlan
from mlstages.components.ingest.sql_source import SqlShard
from mlstages.components.ingest.stream import DatasetSink, FrameSink, batch_rows_setting, stream_shards

FORMATS = ("auto", "csv", "tsv", "parquet", "jsonl")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".xz", ".zip")
HTTP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class IngestConfig:
    """How to read a source.

    source_uri: a local path, ``file://``, ``http(s)://``, ``gs://bucket/object-or-prefix`` or an
        SQLAlchemy database URL (``sqlite:///path.db``, ``postgresql+psycopg://...``).
    source_format: csv, tsv, parquet, jsonl, or auto (from the file extension).
    delimiter: the CSV field separator; empty means ``,`` for csv and a tab for tsv.
    encoding: the text encoding of CSV / JSON Lines files.
    sql_query: the query to run when source_uri is a database URL.
    max_columns: a CSV/TSV header with more columns is refused before pandas parses it (its header
        parsing grows with the square of the columns: 100,000 took 52 s).
    max_cell_length: a CSV/TSV value longer than this many characters is refused.
    max_line_length: a CSV/TSV line longer than this many characters is refused before it is read
        whole.
    """

    source_uri: str
    source_format: str = "auto"
    delimiter: str = ""
    encoding: str = "utf-8"
    sql_query: str = ""
    max_columns: int = DEFAULT_MAX_COLUMNS
    max_cell_length: int = DEFAULT_MAX_CELL_LENGTH
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH

    def __post_init__(self) -> None:
        if not self.source_uri.strip():
            raise ParameterError("parameter source_uri is empty: give a path or URI to read")
        require_choice("source_format", self.source_format, FORMATS)
        if len(self.delimiter) > 1 and self.delimiter != "\\t":
            raise ParameterError(f"parameter delimiter={self.delimiter!r} must be one character")
        for name in ("max_columns", "max_cell_length", "max_line_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"parameter {name}={value!r} must be a whole number of at least 1")


# A source turns the configured URI into shards; remote files go to the scratch folder it is given.
SourceReader = Callable[[IngestConfig, Path, int], list[Shard]]
SOURCES: dict[str, SourceReader] = {}
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle")


def register_source(scheme: str, reader: SourceReader) -> None:
    """Make ``reader`` handle URIs whose scheme is ``scheme``."""
    SOURCES[scheme] = reader


def source_scheme(uri: str) -> str:
    """The scheme that picks the source reader: file, http, https, gs, or a database dialect."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", uri)
    if not match:
        return "file"
    scheme = match.group(1).lower()
    # SQLAlchemy URLs carry the driver after a plus sign: postgresql+psycopg://
    return scheme.split("+", 1)[0]


@contextmanager
def open_source(config: IngestConfig, batch_rows: int) -> Iterator[list[Shard]]:
    """The shards of the source named by ``config.source_uri``, with a scratch folder for the
    remote ones that lasts as long as they are read."""
    scheme = source_scheme(config.source_uri)
    reader = SOURCES.get(scheme)
    if reader is None:
        raise ParameterError(
            f"source_uri {config.source_uri!r}: unsupported scheme {scheme!r}; "
            f"supported: {', '.join(sorted(SOURCES))}"
        )
    with _scratch_dir() as scratch:
        shards = reader(config, scratch, batch_rows)
        try:
            yield shards
        finally:
            for shard in shards:
                shard.close()


def read_source(config: IngestConfig, *, batch_rows: int | None = None) -> pd.DataFrame:
    """Read the whole source into one DataFrame with at least one row (what the dataset holds:
    tests and tools; the component streams with ``ingest_dataset``)."""
    sink = FrameSink()
    rows = batch_rows or batch_rows_setting()
    with open_source(config, rows) as shards:
        streamed = stream_shards(shards, sink, display_uri(config.source_uri), batch_rows=rows)
    frame = sink.frame()
    if streamed.carried:
        frame.attrs["sources"] = streamed.carried
    return frame


def ingest_dataset(
    config: IngestConfig,
    path: str | os.PathLike,
    *,
    snapshot: str = "",
    batch_rows: int | None = None,
    part_rows: int = DEFAULT_PART_ROWS,
) -> dict[str, Any]:
    """Stream the source into a dataset folder at ``path`` (nothing is left there on an error)
    and return its metadata: rows, parts, bytes, columns and their types, the content hash, the
    source; the folder's lineage names the source with the same rows and hash."""
    shown = display_uri(config.source_uri)
    sink = DatasetSink(path, source=shown, part_rows=part_rows)
    rows = batch_rows or batch_rows_setting()
    with open_source(config, rows) as shards:
        streamed = stream_shards(shards, sink, shown, batch_rows=rows)

    def lineage(metadata: dict[str, Any]) -> dict[str, Any]:
        source: dict[str, Any] = {
            "uri": shown,
            "rows": metadata["rows"],
            "columns": metadata["columns"],
            "content_hash": metadata["content_hash"],
        }
        if snapshot:
            source["snapshot"] = snapshot
        if streamed.carried:
            source["parts"] = streamed.carried  # assembled retraining data: what it holds
        return {"sources": [source]}

    try:
        metadata = sink.close(lineage)
    except BaseException:
        sink.abort()
        raise
    metadata["bytes"] = sum(part.stat().st_size for part in part_files(path))
    metadata["passes"] = streamed.passes
    if snapshot:
        metadata["snapshot"] = snapshot
    return metadata


def display_uri(uri: str) -> str:
    """The URI with any password removed, for messages and metadata."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri


# --- formats -----------------------------------------------------------------------------------


def detect_format(name: str, declared: str = "auto") -> str:
    """The format of a file from its name, unless one is declared."""
    if declared != "auto":
        return declared
    stem = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        stem = stem.removesuffix(suffix)
    ext = os.path.splitext(stem)[1]
    if ext not in _EXTENSIONS:
        raise ParameterError(
            f"cannot tell the format of {name!r} from its extension; set source_format to one of "
            f"{', '.join(f for f in FORMATS if f != 'auto')}"
        )
    return _EXTENSIONS[ext]


def file_shard(path: Path, config: IngestConfig, batch_rows: int, display: str | None = None) -> Shard:
    """One local file in the configured (or detected) format; it is checked when it is opened."""
    shown = display or str(path)
    fmt = detect_format(shown, config.source_format)

    def make() -> Shard:
        if not path.exists():
            raise InputDataError(f"{shown}: no such file")
        if path.stat().st_size == 0:
            raise InputDataError(f"{shown} is empty (0 bytes)")
        if fmt in ("csv", "tsv"):
            return CsvShard(
                path,
                shown,
                fmt,
                delimiter=config.delimiter,
                encoding=config.encoding,
                batch_rows=batch_rows,
                max_columns=config.max_columns,
                max_cell_length=config.max_cell_length,
                max_line_length=config.max_line_length,
            )
        if fmt == "jsonl":
            return JsonLinesShard(path, shown, encoding=config.encoding, batch_rows=batch_rows)
        return ParquetShard(path, shown, batch_rows=batch_rows)

    return LazyShard(path.name, shown, make)


class LazyShard(Shard):
    """A shard made when it is opened: a file is checked (or downloaded) only when its turn
    comes, so the first file's errors come first and a prefix of many objects is not all on
    local disk before the first is read."""

    def __init__(
        self, name: str, shown: str, make: Callable[[], Shard], *, cleanup: Path | None = None
    ) -> None:
        super().__init__(name, shown)
        self.make = make
        self.cleanup = cleanup
        self.inner: Shard | None = None

    def open(self) -> None:
        self.inner = self.make()
        self.inner.open()
        self.carried = self.inner.carried

    def _shard(self) -> Shard:
        assert self.inner is not None, "open comes first"
        return self.inner

    def first_pass(self) -> Iterator[pd.DataFrame]:
        return self._shard().first_pass()

    def plan(self) -> ShardPlan:
        return self._shard().plan()

    def convert(self, chunk: pd.DataFrame, plan: ShardPlan) -> pd.DataFrame | None:
        return self._shard().convert(chunk, plan)

    def final_pass(self, plan: ShardPlan) -> Iterator[pd.DataFrame]:
        return self._shard().final_pass(plan)

    def first_value(self, column: str, plan: ShardPlan) -> Any:
        return self._shard().first_value(column, plan)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
        if self.cleanup is not None:
            self.cleanup.unlink(missing_ok=True)


# --- sources -----------------------------------------------------------------------------------


def _read_local(config: IngestConfig, scratch: Path, batch_rows: int) -> list[Shard]:
    uri = config.source_uri
    path = Path(urllib.parse.urlsplit(uri).path if uri.startswith("file://") else uri)
    if path.is_dir():
        # Shards may sit in partition folders (date=2026-11-22/part-….parquet), as the model
        # server's prediction log writes them. Hidden files and folders are not data, nor are
        # those starting with "_": a dataset folder's manifest (_dataset.json), Spark's _SUCCESS.
        shards = folder_files(path)
        if not shards:
            raise InputDataError(f"{uri} holds no files to read")
        return [file_shard(p, config, batch_rows) for p in shards]
    return [file_shard(path, config, batch_rows, display=uri)]


def folder_files(path: Path) -> list[Path]:
    """The data files under a local folder ingest reads as one table, in name order."""
    return sorted(p for p in path.rglob("*") if p.is_file() and not _not_data(str(p.relative_to(path))))


def _not_data(relative: str) -> bool:
    """A file under a data folder or prefix that is not data: hidden, or named with a leading "_"."""
    return any(part.startswith((".", "_")) for part in relative.split("/"))


@contextmanager
def _scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mlstages-ingest-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _read_http(config: IngestConfig, scratch: Path, batch_rows: int) -> list[Shard]:
    uri = config.source_uri
    shown = display_uri(uri)
    target = scratch / (os.path.basename(urllib.parse.urlsplit(uri).path) or "download")

    def make() -> Shard:
        import requests

        try:
            with requests.get(uri, stream=True, timeout=HTTP_TIMEOUT_SECONDS) as response:
                if response.status_code >= 400:
                    raise InputDataError(f"{shown}: HTTP {response.status_code} {response.reason}")
                with open(target, "wb") as handle:
                    handle.writelines(response.iter_content(chunk_size=1 << 20))
        except requests.RequestException as exc:
            raise InputDataError(f"{shown}: could not download: {exc}") from exc
        return file_shard(target, config, batch_rows, display=shown)

    return [LazyShard(target.name, shown, make, cleanup=target)]


def _read_gcs(config: IngestConfig, scratch: Path, batch_rows: int) -> list[Shard]:
    from mlstages.components.common import storage

    uri = config.source_uri

    def remote(object_uri: str, local: Path, display: str | None) -> Shard:
        def make() -> Shard:
            storage.download_file(object_uri, local)
            return file_shard(local, config, batch_rows, display=display)

        return LazyShard(local.name, display or str(local), make, cleanup=local)

    if uri.endswith("/") or not storage.exists(uri):
        prefix = uri.rstrip("/") + "/"
        objects = [
            u for u in storage.list_uris(uri) if not u.endswith("/") and not _not_data(u.removeprefix(prefix))
        ]
        if not objects:
            raise InputDataError(f"{uri}: no object and no objects under this prefix")
        # Each object is downloaded when its turn comes and deleted once the stream is done.
        return [
            remote(u, scratch / f"{index:06d}-{os.path.basename(u)}", None) for index, u in enumerate(objects)
        ]
    return [remote(uri, scratch / os.path.basename(uri), uri)]


def _read_sql(config: IngestConfig, scratch: Path, batch_rows: int) -> list[Shard]:
    return [
        SqlShard(config.source_uri, config.sql_query, display_uri(config.source_uri), batch_rows=batch_rows)
    ]


register_source("file", _read_local)
register_source("http", _read_http)
register_source("https", _read_http)
register_source("gs", _read_gcs)
for _dialect in SQL_SCHEMES:
    register_source(_dialect, _read_sql)


def ingest_summary(metadata: dict) -> str:
    """The Markdown summary shown in the Kubeflow UI for an ingested dataset."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    rows = [{"column": name, "type": kind} for name, kind in metadata["column_types"].items()]
    lines = [
        "# Ingest",
        "",
        f"Read **{metadata['rows']:,}** rows and **{metadata['columns']}** columns from "
        f"`{markdown_text(metadata.get('source', ''))}`.",
    ]
    if "parts" in metadata:
        parts = metadata["parts"]
        size = f", {_size(metadata['bytes'])}" if "bytes" in metadata else ""
        lines += ["", f"Written as **{parts}** Parquet part file{'s' if parts != 1 else ''}{size}."]
    if metadata.get("passes", 1) > 1:
        lines += [
            "",
            "The source was read twice: a column's type changed after the first rows (integers "
            "with missing values further down, numbers beside text, codes with leading zeros), and "
            "the rows already written were written again with the final types.",
        ]
    lines += ["", f"Content hash (sha256): `{metadata['content_hash']}`"]
    if metadata.get("snapshot"):
        lines += ["", f"Snapshot: `{markdown_text(metadata['snapshot'])}`"]
    lines += ["", markdown_table(rows, ["column", "type"]), ""]
    return "\n".join(lines)


def _size(count: int) -> str:
    """A byte count as people read it (1,234,567 -> 1.2 MB)."""
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{count:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
