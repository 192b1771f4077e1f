"""Ingestion logic: formats, sources and every bad-input message."""

from __future__ import annotations

import http.server
import sqlite3
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstages.components.common.datasets import dataset_metadata
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.ingest.ingest import (
    IngestConfig,
    detect_format,
    display_uri,
    ingest_summary,
    read_source,
    source_scheme,
)

FRAME = pd.DataFrame(
    {"a": [1, 2, 3], "b": [0.5, None, 2.5], "c": ["x", "y", np.nan]},
)


def read(uri: str | Path, **kwargs) -> pd.DataFrame:
    return read_source(IngestConfig(source_uri=str(uri), **kwargs))


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("data.csv", lambda df, p: df.to_csv(p, index=False)),
        ("data.csv.gz", lambda df, p: df.to_csv(p, index=False, compression="gzip")),
        ("data.tsv", lambda df, p: df.to_csv(p, index=False, sep="\t")),
        ("data.parquet", lambda df, p: df.to_parquet(p, index=False)),
        ("data.jsonl", lambda df, p: df.to_json(p, orient="records", lines=True)),
    ],
)
def test_each_format_reads_back_the_same_frame(tmp_path, name, writer):
    path = tmp_path / name
    writer(FRAME, path)
    df = read(path)
    pd.testing.assert_frame_equal(df, FRAME, check_dtype=False)


def test_file_uri_and_directory_of_shards(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    FRAME.iloc[:2].to_parquet(shards / "part-0.parquet", index=False)
    FRAME.iloc[2:].to_parquet(shards / "part-1.parquet", index=False)
    df = read(f"file://{shards}")
    pd.testing.assert_frame_equal(df, FRAME, check_dtype=False)


def test_shards_with_different_columns_are_refused(tmp_path):
    FRAME.to_csv(tmp_path / "part-0.csv", index=False)
    FRAME.rename(columns={"a": "z"}).to_csv(tmp_path / "part-1.csv", index=False)
    with pytest.raises(InputDataError, match=r"shard part-1.csv .* has columns"):
        read(tmp_path)


def test_explicit_format_overrides_the_extension(tmp_path):
    path = tmp_path / "data.txt"
    FRAME.to_csv(path, index=False)
    with pytest.raises(ParameterError, match="cannot tell the format of"):
        read(path)
    pd.testing.assert_frame_equal(read(path, source_format="csv"), FRAME, check_dtype=False)


def test_empty_file_is_named(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputDataError, match=r"empty.csv is empty \(0 bytes\)"):
        read(path)


def test_header_only_file_is_named(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b,c\n")
    with pytest.raises(InputDataError, match=r"header.csv has a header but no data rows"):
        read(path)


def test_wrong_delimiter_names_the_right_one(tmp_path):
    path = tmp_path / "semi.csv"
    FRAME.to_csv(path, index=False, sep=";")
    with pytest.raises(InputDataError, match=r"parsed as a single column .* set delimiter=';'"):
        read(path)
    pd.testing.assert_frame_equal(read(path, delimiter=";"), FRAME, check_dtype=False)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,city\nann,Paris\nbob,Z\u00fcrich\n".encode("latin-1"))
    with pytest.raises(InputDataError, match=r"latin.csv is not valid utf-8 text at line 3"):
        read(path)
    assert read(path, encoding="latin-1")["city"].tolist() == ["Paris", "Z\u00fcrich"]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputDataError, match=r"nothere.csv: no such file"):
        read(tmp_path / "nothere.csv")


def test_corrupt_parquet_is_named(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(InputDataError, match=r"bad.parquet is not a readable Parquet file"):
        read(path)


def test_invalid_json_lines_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(InputDataError, match=r"bad.jsonl is not valid JSON Lines"):
        read(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source_uri": " "}, "source_uri is empty"),
        ({"source_uri": "x.csv", "source_format": "xlsx"}, "source_format='xlsx' is not one of"),
        ({"source_uri": "x.csv", "delimiter": ";;"}, "delimiter=';;' must be one character"),
        ({"source_uri": "ftp://host/x.csv"}, "unsupported scheme 'ftp'"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        read_source(IngestConfig(**kwargs))


def test_source_scheme_and_display_uri():
    assert source_scheme("/data/x.csv") == "file"
    assert source_scheme("gs://b/x") == "gs"
    assert source_scheme("postgresql+psycopg://u:p@h/db") == "postgresql"
    assert display_uri("postgresql://user:secret@host/db") == "postgresql://user:***@host/db"
    assert detect_format("x.JSONL.gz") == "jsonl"


def test_sqlite_query(tmp_path):
    db = tmp_path / "data.db"
    with sqlite3.connect(db) as connection:
        FRAME.to_sql("t", connection, index=False)
    df = read(f"sqlite:///{db}", sql_query="SELECT a, b, c FROM t ORDER BY a")
    pd.testing.assert_frame_equal(df, FRAME, check_dtype=False)


def test_sql_errors_are_clear(tmp_path):
    db = tmp_path / "data.db"
    with sqlite3.connect(db) as connection:
        FRAME.to_sql("t", connection, index=False)
    with pytest.raises(ParameterError, match="set sql_query"):
        read(f"sqlite:///{db}")
    with pytest.raises(InputDataError, match=r"the query failed: .*no such table: missing"):
        read(f"sqlite:///{db}", sql_query="SELECT * FROM missing")
    with pytest.raises(InputDataError, match="the query returned no rows"):
        read(f"sqlite:///{db}", sql_query="SELECT * FROM t WHERE a > 100")


def test_database_source_without_sqlalchemy_says_which_extra(monkeypatch):
    # Images other than ingest's, and a plain `pip install mlstages`, have no SQLAlchemy.
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(ParameterError, match=r"postgresql://u:\*\*\*@db/x is a database.*mlstages\[sql\]"):
        read("postgresql://u:secret@db/x", sql_query="SELECT 1")


@pytest.fixture
def http_root(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_source(http_root):
    root, base = http_root
    FRAME.to_csv(root / "data.csv", index=False)
    pd.testing.assert_frame_equal(read(f"{base}/data.csv"), FRAME, check_dtype=False)
    with pytest.raises(InputDataError, match=r"missing.csv: HTTP 404"):
        read(f"{base}/missing.csv")


def test_summary_lists_columns_and_hash():
    metadata = dataset_metadata(FRAME, source="x.csv")
    text = ingest_summary(metadata)
    assert "**3** rows" in text and metadata["content_hash"] in text and "| a | numeric |" in text


def test_shards_in_partition_folders_read_as_one_dataset(tmp_path):
    for day, part in (("2026-11-21", FRAME.iloc[:2]), ("2026-11-22", FRAME.iloc[2:])):
        folder = tmp_path / "log" / f"date={day}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet", index=False)
    (tmp_path / "log" / ".partial").mkdir()
    (tmp_path / "log" / ".partial" / "junk.parquet").write_bytes(b"not data")
    pd.testing.assert_frame_equal(read(tmp_path / "log"), FRAME, check_dtype=False)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a,b,a\n1,2,3\n", "name 'a' repeated at column positions 1, 3"),
        ("a,,c\n1,2,3\n", "empty name at column position(s) 2"),
        ("a, ,c\n1,2,3\n", "empty name at column position(s) 2"),
    ],
)
def test_csv_duplicate_or_empty_column_names_are_errors(tmp_path, header, expected):
    # pandas would silently rename these to "a.1" / "Unnamed: 1".
    path = tmp_path / "dup.csv"
    path.write_text(header)
    with pytest.raises(InputDataError, match="rename|unique") as info:
        read(path)
    assert expected in str(info.value)
    assert "dup.csv" in str(info.value)


def test_parquet_duplicate_column_names_are_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1, 2]), pa.array([3, 4])], names=["x", "x"]), path)
    with pytest.raises(InputDataError, match="name 'x' repeated at column positions 1, 2") as info:
        read(path)
    assert "dup.parquet" in str(info.value) and "rename them in the source" in str(info.value)


def test_json_lines_empty_key_is_an_error(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1, "": 2}\n{"a": 3, "": 4}\n')
    with pytest.raises(InputDataError, match="empty name at column position"):
        read(path)
