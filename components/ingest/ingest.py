"""Ingestion: read a source into one typed DataFrame, ready to be written as a Parquet dataset.

Sources are looked up by URI scheme in ``SOURCES``; each one turns a URI into local files (or reads
directly, for SQL), and the format readers turn files into a DataFrame. A new source is one
function registered with ``register_source``.
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

import numpy as np
import pandas as pd

from mlstages.components.common.dataset_files import read_lineage
from mlstages.components.common.errors import InputDataError, ParameterError, require_choice
from mlstages.components.ingest.column_values import check_shards, one_type_per_column
from mlstages.components.ingest.delimited import (
    DEFAULT_MAX_CELL_LENGTH,
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_LINE_LENGTH,
    compression_of,
    open_text,
    read_delimited,
    scan,
    sniff,
)

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


# Column names travel in feature names, artifact metadata and the task's command line; a longer
# "name" is a data row or a value, not a header.
MAX_COLUMN_NAME_LENGTH = 1000


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


SourceReader = Callable[[IngestConfig], pd.DataFrame]
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


def read_source(config: IngestConfig) -> pd.DataFrame:
    """Read the source named by ``config.source_uri`` into a DataFrame with at least one row."""
    scheme = source_scheme(config.source_uri)
    reader = SOURCES.get(scheme)
    if reader is None:
        raise ParameterError(
            f"source_uri {config.source_uri!r}: unsupported scheme {scheme!r}; "
            f"supported: {', '.join(sorted(SOURCES))}"
        )
    df = reader(config)
    df.columns = [str(c) for c in df.columns]
    df = one_type_per_column(df, display_uri(config.source_uri))
    _normalize_missing(df)
    if len(df) == 0:
        raise InputDataError(f"{display_uri(config.source_uri)} has a header but no data rows")
    return df


def _normalize_missing(df: pd.DataFrame) -> None:
    """One missing value in text columns whatever the format: CSV gives NaN where Parquet, JSON
    and SQL give None, and the content hash and statistics must not depend on that."""
    for name in df.select_dtypes(include="object").columns:
        column = df[name]
        if column.isna().any():
            df[name] = column.where(column.notna(), np.nan)


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


def read_file(path: Path, config: IngestConfig, display: str | None = None) -> pd.DataFrame:
    """Read one local file in the configured (or detected) format."""
    shown = display or str(path)
    fmt = detect_format(shown, config.source_format)
    if not path.exists():
        raise InputDataError(f"{shown}: no such file")
    if path.stat().st_size == 0:
        raise InputDataError(f"{shown} is empty (0 bytes)")
    if fmt in ("csv", "tsv"):
        return _read_delimited(path, fmt, config, shown)
    if fmt == "jsonl":
        return _read_json_lines(path, config, shown)
    return _read_parquet(path, shown)


def _read_delimited(path: Path, fmt: str, config: IngestConfig, shown: str) -> pd.DataFrame:
    sep = config.delimiter.replace("\\t", "\t") or ("\t" if fmt == "tsv" else ",")
    compression = compression_of(path, shown, fmt)
    try:
        header = scan(
            path,
            sep,
            config.encoding,
            compression,
            shown,
            max_columns=config.max_columns,
            max_cell_length=config.max_cell_length,
            max_line_length=config.max_line_length,
        )
        # Before pandas reads it: pandas renames duplicates ("x.1") and empty names ("Unnamed: 5").
        _check_column_names(header, shown)
        df = read_delimited(path, sep, config.encoding, compression)
    except UnicodeDecodeError as exc:
        raise InputDataError(_decode_error_message(path, shown, config.encoding, exc, compression)) from exc
    except pd.errors.EmptyDataError as exc:
        raise InputDataError(f"{shown} has no columns (is it empty?)") from exc
    except pd.errors.ParserError as exc:
        raise InputDataError(f"{shown} is not valid {fmt.upper()} with delimiter {sep!r}: {exc}") from exc
    if df.shape[1] == 1:
        header = str(df.columns[0])
        for candidate in (";", "\t", "|", ","):
            if candidate != sep and candidate in header:
                raise InputDataError(
                    f"{shown} parsed as a single column {header[:60]!r} with delimiter {sep!r}; "
                    f"the header contains {candidate!r}: set delimiter={candidate!r}"
                )
    return df


def _read_json_lines(path: Path, config: IngestConfig, shown: str) -> pd.DataFrame:
    compression = compression_of(path, shown, "jsonl")
    try:
        df = pd.read_json(path, lines=True, encoding=config.encoding, compression=compression)
    except UnicodeDecodeError as exc:
        raise InputDataError(_decode_error_message(path, shown, config.encoding, exc, compression)) from exc
    except ValueError as exc:
        if "too big" not in str(exc):
            raise InputDataError(
                f"{shown} is not valid JSON Lines (one JSON object per line): {exc}"
            ) from exc
        # pandas' JSON parser stops at integers past 64 bits; Python's reads them (kept as text later).
        df = _read_json_lines_exactly(path, config.encoding, compression, shown)
    # A JSON object cannot repeat a key (the parser keeps the last), but a key can be "".
    _check_column_names([str(c) for c in df.columns], shown)
    return df


def _read_json_lines_exactly(path: Path, encoding: str, compression: str | None, shown: str) -> pd.DataFrame:
    import json

    records = []
    with open_text(path, encoding, compression) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise InputDataError(f"{shown} is not valid JSON Lines: line {number}: {exc}") from exc
    return pd.DataFrame.from_records(records)


def _read_parquet(path: Path, shown: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    kind = sniff(path)
    if kind and kind != "parquet":
        what = (
            "an HTML page (a sign-in or error page served instead of the data?)"
            if kind == "html"
            else f"{kind}-compressed"
        )
        raise InputDataError(f"{shown} is {what}, not a Parquet file: check the URI, or set source_format")
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputDataError(f"{shown} is not a readable Parquet file: {exc}") from exc
    # Checked before reading: pandas fails on duplicate Parquet names with a pyarrow FieldRef message.
    _check_column_names(names, shown)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputDataError(f"{shown} is not a readable Parquet file: {exc}") from exc
    # A file the suite assembled (retraining data) says what it was made of: lineage goes on.
    carried = read_lineage(path).get("sources")
    if carried:
        df.attrs["sources"] = carried
    return df


def _check_column_names(names: list[str], shown: str) -> None:
    """Raise InputDataError naming every empty or repeated column name (1-based positions)."""
    problems = []
    empty = [i + 1 for i, n in enumerate(names) if n is None or not str(n).strip()]
    if empty:
        problems.append(f"empty name at column position(s) {', '.join(map(str, empty))}")
    positions: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if n is not None and str(n).strip():
            positions.setdefault(str(n), []).append(i + 1)
    for name, where in positions.items():
        if len(where) > 1:
            problems.append(f"name {name!r} repeated at column positions {', '.join(map(str, where))}")
    long = [i + 1 for i, n in enumerate(names) if n is not None and len(str(n)) > MAX_COLUMN_NAME_LENGTH]
    if long:
        problems.append(
            f"name longer than {MAX_COLUMN_NAME_LENGTH} characters at column position(s) "
            f"{', '.join(map(str, long[:10]))} (is the first line a header?)"
        )
    if problems:
        raise InputDataError(
            f"{shown}: {'; '.join(problems)}; rename them in the source so every column name is unique, "
            "non-empty and short"
        )


def _decode_error_message(
    path: Path, shown: str, encoding: str, exc: UnicodeDecodeError, compression: str | None = None
) -> str:
    # UnicodeDecodeError positions are relative to the chunk pandas decoded, so find the first
    # bad byte in the file ourselves to name the line (in a plain file; a compressed one's bytes
    # are not its lines).
    line, offset = (None, None) if compression else _first_undecodable(path, encoding)
    where = f" at line {line} (byte offset {offset})" if line else ""
    return (
        f"{shown} is not valid {encoding} text{where}: {exc.reason}; "
        "set the encoding parameter (for example latin-1) or fix the file"
    )


def _first_undecodable(path: Path, encoding: str) -> tuple[int | None, int | None]:
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                return number, offset + exc.start
            offset += len(raw)
    return None, None


# --- sources -----------------------------------------------------------------------------------


def _read_local(config: IngestConfig) -> pd.DataFrame:
    uri = config.source_uri
    path = Path(urllib.parse.urlsplit(uri).path if uri.startswith("file://") else uri)
    if path.is_dir():
        # Shards may sit in partition folders (date=2026-11-22/part-….parquet), as the model
        # server's prediction log writes them. Hidden files and folders are not data, nor are
        # those starting with "_": a dataset folder's manifest (_dataset.json), Spark's _SUCCESS.
        shards = sorted(p for p in path.rglob("*") if p.is_file() and not _not_data(str(p.relative_to(path))))
        return _read_many(shards, config, uri)
    return read_file(path, config, display=uri)


def _not_data(relative: str) -> bool:
    """A file under a data folder or prefix that is not data: hidden, or named with a leading "_"."""
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def _read_many(paths: list[Path], config: IngestConfig, shown: str) -> pd.DataFrame:
    """Read several shards of one dataset; they must share their columns."""
    if not paths:
        raise InputDataError(f"{shown} holds no files to read")
    frames = [read_file(p, config) for p in paths]
    check_shards(frames, [p.name for p in paths], shown)
    first = list(frames[0].columns)
    for path, frame in zip(paths[1:], frames[1:], strict=True):
        if list(frame.columns) != first:
            raise InputDataError(
                f"shard {path.name} of {shown} has columns {list(frame.columns)}, "
                f"but {paths[0].name} has {first}"
            )
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


@contextmanager
def _scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mlstages-ingest-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _read_http(config: IngestConfig) -> pd.DataFrame:
    import requests

    uri = config.source_uri
    name = os.path.basename(urllib.parse.urlsplit(uri).path) or "download"
    with _scratch_dir() as scratch:
        target = scratch / name
        try:
            with requests.get(uri, stream=True, timeout=HTTP_TIMEOUT_SECONDS) as response:
                if response.status_code >= 400:
                    raise InputDataError(f"{display_uri(uri)}: HTTP {response.status_code} {response.reason}")
                with open(target, "wb") as handle:
                    handle.writelines(response.iter_content(chunk_size=1 << 20))
        except requests.RequestException as exc:
            raise InputDataError(f"{display_uri(uri)}: could not download: {exc}") from exc
        return read_file(target, config, display=display_uri(uri))


def _read_gcs(config: IngestConfig) -> pd.DataFrame:
    from mlstages.components.common import storage

    uri = config.source_uri
    with _scratch_dir() as scratch:
        if uri.endswith("/") or not storage.exists(uri):
            prefix = uri.rstrip("/") + "/"
            objects = [
                u
                for u in storage.list_uris(uri)
                if not u.endswith("/") and not _not_data(u.removeprefix(prefix))
            ]
            if not objects:
                raise InputDataError(f"{uri}: no object and no objects under this prefix")
            paths = []
            for index, object_uri in enumerate(objects):
                local = scratch / f"{index:06d}-{os.path.basename(object_uri)}"
                storage.download_file(object_uri, local)
                paths.append(local)
            return _read_many(paths, config, uri)
        local = scratch / os.path.basename(uri)
        storage.download_file(uri, local)
        return read_file(local, config, display=uri)


def _read_sql(config: IngestConfig) -> pd.DataFrame:
    shown = display_uri(config.source_uri)
    try:
        import sqlalchemy
    except ImportError as exc:
        raise ParameterError(
            f"source_uri {shown} is a database, and reading one needs SQLAlchemy: "
            "pip install 'mlstages[sql]' (the ingest image has it)"
        ) from exc
    if not config.sql_query.strip():
        raise ParameterError(f"source_uri {shown} is a database: set sql_query to the query to run")
    try:
        engine = sqlalchemy.create_engine(config.source_uri)
    except Exception as exc:  # unknown dialect or missing driver
        raise ParameterError(f"source_uri {shown}: cannot connect: {exc}") from exc
    try:
        with engine.connect() as connection:
            # Chunks keep the driver's buffers small on large results.
            chunks = list(pd.read_sql_query(sqlalchemy.text(config.sql_query), connection, chunksize=100_000))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise InputDataError(
            f"{shown}: the query failed: {exc.__class__.__name__}: {exc.orig or exc}"
        ) from exc
    finally:
        engine.dispose()
    if sum(len(chunk) for chunk in chunks) == 0:
        raise InputDataError(f"{shown}: the query returned no rows")
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


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
        "",
        f"Content hash (sha256): `{metadata['content_hash']}`",
    ]
    if metadata.get("snapshot"):
        lines += ["", f"Snapshot: `{markdown_text(metadata['snapshot'])}`"]
    lines += ["", markdown_table(rows, ["column", "type"]), ""]
    return "\n".join(lines)
