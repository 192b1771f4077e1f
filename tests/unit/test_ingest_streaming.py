"""Ingest a chunk at a time (issue 15): whatever the chunk size, the dataset is the one a read of
the whole source in one chunk gives (content hash, dtypes, values); types that change after the
first chunks are settled as the whole-file read settles them; bad input fails with nothing left
at the dataset's path."""

from __future__ import annotations

import decimal
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlstages.components.common.dataset_files import read_dataset, read_lineage, read_manifest
from mlstages.components.common.datasets import content_hash
from mlstages.components.common.errors import InputDataError
from mlstages.components.ingest.column_values import normalize_missing
from mlstages.components.ingest.delimited import scan
from mlstages.components.ingest.ingest import IngestConfig, ingest_dataset, ingest_summary, read_source
from mlstages.components.ingest.stream import BATCH_ROWS_ENV, batch_rows_setting

ROWS = 400
RNG = np.random.default_rng(15)


def _late(values: list, at: int, value: object) -> list:
    """``values`` with ``value`` at row ``at``: something the first chunks do not show."""
    values = list(values)
    values[at] = value
    return values


def _csv_columns() -> dict[str, list[str]]:
    ints = [str(v) for v in RNG.integers(-50, 50, ROWS)]
    floats = [f"{v:.3f}" for v in RNG.normal(size=ROWS)]
    return {
        "count": ints,
        "count_with_gap": _late(ints, 390, ""),  # integers, then a missing value: float64
        "price": floats,
        "size": _late(floats, 350, "large"),  # numbers, then a word: text, as written ("0.123")
        "weight": _late(_late(floats, 10, "NA"), 300, "NA"),  # R's "NA" among numbers: missing
        "region": list(RNG.choice(["EU", "APAC", "NA"], ROWS)),  # "NA" beside codes; but R wrote it
        "zip": _late([f"{v:05d}" for v in RNG.integers(1000, 99999, ROWS)], 380, "00501"),
        "flag": list(RNG.choice(["True", "False"], ROWS)),
        "flag_with_gap": _late(list(RNG.choice(["True", "False"], ROWS)), 200, ""),
        "big": _late(ints, 399, str(2**64 + 1)),  # past uint64 in the last row: text
        "word": list(RNG.choice(["red", "green", "blue"], ROWS)),
        "empty": [""] * ROWS,
    }


CSV_COLUMNS = _csv_columns()


@pytest.fixture
def csv_source(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    pd.DataFrame(CSV_COLUMNS).to_csv(path, index=False)
    return path


def _ingest(source: Path | str, folder: Path, batch_rows: int, **settings) -> tuple[dict, pd.DataFrame]:
    metadata = ingest_dataset(IngestConfig(source_uri=str(source), **settings), folder, batch_rows=batch_rows)
    return metadata, normalize_missing(read_dataset(folder))


def _same_dataset(
    tmp_path: Path, source: Path | str, small: int = 7, **settings
) -> tuple[dict, pd.DataFrame]:
    """Ingest ``source`` in chunks of ``small`` rows and in one chunk; they must agree."""
    whole, whole_frame = _ingest(source, tmp_path / "whole", 10**6, **settings)
    streamed, streamed_frame = _ingest(source, tmp_path / "streamed", small, **settings)
    assert streamed["content_hash"] == whole["content_hash"]
    assert streamed["dtypes"] == whole["dtypes"] and streamed["rows"] == whole["rows"]
    pd.testing.assert_frame_equal(streamed_frame, whole_frame, check_exact=True)
    # What the dataset holds is what read_source gives (the whole source in memory).
    assert (
        content_hash(read_source(IngestConfig(source_uri=str(source), **settings), batch_rows=small))
        == (whole["content_hash"])
    )
    return streamed, streamed_frame


def test_a_csv_read_in_tiny_chunks_is_the_csv_read_whole(tmp_path, csv_source):
    metadata, frame = _same_dataset(tmp_path, csv_source)
    dtypes = metadata["dtypes"]
    assert dtypes["count"] == "int64" and dtypes["count_with_gap"] == "float64"
    assert dtypes["size"] == "object" and frame["size"].iloc[0] == CSV_COLUMNS["size"][0]
    assert dtypes["weight"] == "float64" and frame["weight"].isna().sum() == 2
    # A file written by R: "NA" is missing in every column, codes included.
    assert frame["region"].isna().sum() == CSV_COLUMNS["region"].count("NA") > 0
    assert dtypes["zip"] == "object" and frame["zip"].iloc[380] == "00501"
    assert dtypes["flag"] == "bool" and dtypes["flag_with_gap"] == "object"
    assert dtypes["big"] == "object" and dtypes["empty"] == "float64"
    assert metadata["passes"] == 2  # the first chunks' types did not hold


def test_na_among_codes_stays_a_value_in_every_chunk(tmp_path):
    path = tmp_path / "regions.csv"
    pd.DataFrame(
        {"region": _late(list(RNG.choice(["EU", "APAC"], ROWS)), 390, "NA"), "x": RNG.normal(size=ROWS)}
    ).to_csv(path, index=False)
    _, frame = _same_dataset(tmp_path, path)
    assert frame["region"].iloc[390] == "NA"


def test_clean_data_is_read_once(tmp_path):
    path = tmp_path / "clean.csv"
    pd.DataFrame({"a": RNG.integers(0, 9, ROWS), "b": RNG.normal(size=ROWS), "c": "x"}).to_csv(
        path, index=False
    )
    metadata, _ = _same_dataset(tmp_path, path, small=13)
    assert metadata["passes"] == 1


def test_quoted_csv_and_tsv_read_in_chunks(tmp_path):
    frame = pd.DataFrame(
        {
            "text": _late(["a, b", 'say "hi"', "two\nlines"] * (ROWS // 3) + ["x"], 200, "0012"),
            "n": range(ROWS),
        }
    )
    frame.to_csv(tmp_path / "quoted.csv", index=False)
    frame.to_csv(tmp_path / "quoted.tsv", index=False, sep="\t")
    _, csv = _same_dataset(tmp_path / "c", tmp_path / "quoted.csv", small=11)
    _, tsv = _same_dataset(tmp_path / "t", tmp_path / "quoted.tsv", small=11)
    pd.testing.assert_frame_equal(csv, tsv)
    assert csv["text"].iloc[2] == "two\nlines"


def test_parquet_read_by_row_group_is_the_parquet_read_whole(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    amounts = [decimal.Decimal(f"{v:.2f}") for v in RNG.uniform(0, 100, ROWS)]
    table = pa.table(
        {
            "n": pa.array(_late(list(range(ROWS)), 390, None)),  # a null in the last row group
            "amount": pa.array(amounts, pa.decimal128(10, 2)),
            "kind": pa.array(RNG.choice(["a", "b"], ROWS)).dictionary_encode(),
            "ok": pa.array(_late(_late([True] * ROWS, 300, None), 20, None)),
            "note": pa.array(_late([None] * ROWS, 399, "late text")),  # all missing until the end
        }
    )
    pq.write_table(table.slice(0, 250), folder / "part-0.parquet", row_group_size=50)
    # A file written without statistics: its missing values are only seen as its rows pass.
    pq.write_table(table.slice(250), folder / "part-1.parquet", row_group_size=30, write_statistics=False)
    metadata, frame = _same_dataset(tmp_path, folder, small=9)
    whole = pd.concat([pd.read_parquet(p) for p in sorted(folder.iterdir())], ignore_index=True)
    assert metadata["dtypes"]["n"] == "float64" and metadata["dtypes"]["amount"] == "float64"
    assert metadata["dtypes"]["kind"] == "category" and metadata["dtypes"]["ok"] == "object"
    assert frame["note"].iloc[399] == "late text" and frame["note"].notna().sum() == 1
    assert frame["kind"].tolist() == whole["kind"].tolist()


def test_json_lines_read_in_chunks_are_typed_as_the_whole_file(tmp_path):
    lines = []
    for i in range(ROWS):
        record = {"id": i, "score": float(i % 7), "code": str(i % 5), "created_at": 1_600_000_000 + i}
        if i == 350:
            record["score"] = 2.5  # whole-number floats until here: int64 in the first chunks
        if i >= 300:
            record["extra"] = "late key"  # a column that first appears in a later chunk
        lines.append(json.dumps(record))
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    metadata, frame = _same_dataset(tmp_path, path, small=16)
    whole = pd.read_json(path, lines=True)
    assert metadata["dtypes"] == {str(c): str(t) for c, t in whole.dtypes.items()}
    assert frame["extra"].isna().sum() == 300 and metadata["dtypes"]["created_at"].startswith("datetime64")


def test_json_numbers_beside_a_late_word_keep_how_they_were_written(tmp_path):
    # Integers and floats share a float64 chunk in pandas; beside text they are text, as written.
    values = [4 if i % 2 else 4.5 for i in range(ROWS)]
    values[-1] = "many"
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps({"v": v, "i": i}) for i, v in enumerate(values)) + "\n")
    metadata, frame = _same_dataset(tmp_path, path, small=16)
    assert frame["v"].tolist()[:3] == ["4.5", "4", "4.5"] and frame["v"].iloc[-1] == "many"
    assert metadata["passes"] == 2


def test_a_sqlite_query_read_in_chunks_is_the_query_read_whole(tmp_path):
    db = tmp_path / "data.db"
    frame = pd.DataFrame({"a": range(ROWS), "b": RNG.normal(size=ROWS), "c": RNG.choice(["x", "y"], ROWS)})
    with sqlite3.connect(db) as connection:
        frame.to_sql("t", connection, index=False)
        connection.execute("UPDATE t SET a = NULL WHERE a = 390")  # a NULL in the last chunk
    metadata, back = _same_dataset(
        tmp_path, f"sqlite:///{db}", small=25, sql_query="SELECT * FROM t ORDER BY rowid"
    )
    assert metadata["dtypes"]["a"] == "float64" and back["a"].isna().sum() == 1


def test_a_multi_part_dataset_hashes_as_one(tmp_path, csv_source):
    config = IngestConfig(source_uri=str(csv_source))
    one = ingest_dataset(config, tmp_path / "one", batch_rows=64)
    many = ingest_dataset(config, tmp_path / "many", batch_rows=64, part_rows=150)
    assert one["parts"] == 1 and many["parts"] == 3
    assert read_manifest(tmp_path / "many")["part_rows"] == [150, 150, 100]
    assert many["content_hash"] == one["content_hash"] and many["rows"] == ROWS
    pd.testing.assert_frame_equal(read_dataset(tmp_path / "many"), read_dataset(tmp_path / "one"))
    assert many["bytes"] == sum(p.stat().st_size for p in (tmp_path / "many").glob("part-*.parquet"))
    sources = read_lineage(tmp_path / "many")["sources"]
    assert sources == [
        {
            "uri": str(csv_source),
            "rows": ROWS,
            "columns": many["columns"],
            "content_hash": many["content_hash"],
        }
    ]
    text = ingest_summary(many)
    assert f"**{ROWS}** rows" in text and "**3** Parquet part files" in text and " KB." in text


def test_shards_whose_types_split_in_a_later_shard_fail_and_leave_nothing(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for index in range(3):
        values = [str(v) for v in range(20)] if index < 2 else ["12kg"] * 20
        pd.DataFrame({"weight": values, "y": "p"}).to_csv(folder / f"part-{index}.csv", index=False)
    target = tmp_path / "dataset"
    with pytest.raises(
        InputDataError,
        match=r"column 'weight' of .*shards is numeric in shard part-0.csv but text in shard part-2.csv "
        r"\(e.g. '12kg'\); make its values one type in every shard",
    ):
        ingest_dataset(IngestConfig(source_uri=str(folder)), target, batch_rows=8)
    assert list(tmp_path.iterdir()) == [folder]  # no dataset, no partial folder


def test_nested_values_in_a_late_chunk_fail_and_leave_nothing(tmp_path):
    lines = [json.dumps({"x": i, "tags": "plain"}) for i in range(ROWS)]
    lines[-1] = json.dumps({"x": 0, "tags": ["a", "b"]})
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputDataError, match=r"column\(s\) 'tags' hold lists or records"):
        ingest_dataset(IngestConfig(source_uri=str(path)), tmp_path / "dataset", batch_rows=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_a_broken_row_far_down_fails_before_anything_is_written(tmp_path):
    lines = ["a,b"] + [f"{i},{i}" for i in range(ROWS)] + ["1,2,3"]
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputDataError, match=rf"line {ROWS + 2} has 3"):
        ingest_dataset(IngestConfig(source_uri=str(path)), tmp_path / "dataset", batch_rows=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ragged.csv"]


@pytest.mark.parametrize(
    ("text", "zeros", "na"),
    [
        ("01a,b,c\n1,007,NA\n2,8,x\n", [1], [2]),  # a header name is not a value
        ('a,b,c\n1,"007",NA\n2,8,"x,y"\n', [1], [2]),  # quoted: the records are checked
        ("a,b,c\r\n1, 007,NA\r\n2,8,NAB\r\n", [1], [2]),  # blanks before the zero, CRLF
        ("a,b,c\n1,7,N\n02,8,NA", [0], [2]),  # no final line end
        ('a,b,c\n1,"x\n07",NA\n', [], [2]),  # a zero after a newline inside a value is not leading
        ("a,b\n0.5,-05\n1e3,+07\n", [], []),  # signs and decimals are not codes
    ],
)
def test_the_scan_marks_leading_zero_and_na_columns(tmp_path, text, zeros, na):
    path = tmp_path / "marks.csv"
    path.write_text(text)
    found = scan(path, ",", "utf-8", None, "marks.csv")
    assert sorted(found.leading_zero) == zeros and sorted(found.na) == na


def test_the_batch_size_can_be_set_for_tests_and_benchmarks(monkeypatch):
    monkeypatch.setenv(BATCH_ROWS_ENV, "5")
    assert batch_rows_setting() == 5
    monkeypatch.setenv(BATCH_ROWS_ENV, "0")
    with pytest.raises(InputDataError, match="MLSTAGES_INGEST_BATCH_ROWS='0' must be a whole number"):
        batch_rows_setting()
