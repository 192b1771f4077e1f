"""Issue 13's hostile inputs at ingest: each one a clear error naming the file, line or column, or
read the way a user means it (and then pointed out by validate_data)."""

from __future__ import annotations

import bz2
import decimal
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlstages.components.common.column_checks import (
    LEADING_ZEROS,
    NA_CATEGORY,
    NUMERIC_TEXT,
    suspicious_columns,
)
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.labels import resolve_task
from mlstages.components.ingest.ingest import IngestConfig, read_source

ROWS = 40
RNG = np.random.default_rng(7)
BASE = pd.DataFrame(
    {
        "x": RNG.normal(size=ROWS).round(3),
        "c": RNG.choice(list("abc"), ROWS),
        "y": RNG.choice(["p", "q"], ROWS),
    }
)


def read(path: Path, **settings) -> pd.DataFrame:
    return read_source(IngestConfig(source_uri=str(path), **settings))


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_short_row_is_named_not_padded_with_missing_values(tmp_path):
    lines = BASE.to_csv(index=False).splitlines()
    lines[5] = ",".join(lines[5].split(",")[:2])
    lines[9] = lines[9] + ",extra"
    with pytest.raises(
        InputDataError, match=r"2 row\(s\) do not have the header's 3 fields \(line 6 has 2, line 10 has 4\)"
    ):
        read(write_lines(tmp_path / "ragged.csv", lines))


def test_a_quoted_newline_is_one_record_not_a_ragged_row(tmp_path):
    frame = BASE.head(3).assign(c=["two\nlines", "b", "c"])
    frame.to_csv(tmp_path / "quoted.csv", index=False)
    assert read(tmp_path / "quoted.csv")["c"].iloc[0] == "two\nlines"


@pytest.mark.parametrize(("compress", "name"), [(gzip.compress, "gz.csv"), (bz2.compress, "bz.csv")])
def test_a_compressed_file_named_csv_is_read_as_what_its_bytes_say(tmp_path, compress, name):
    path = tmp_path / name
    path.write_bytes(compress(BASE.to_csv(index=False).encode()))
    pd.testing.assert_frame_equal(read(path), BASE)


def test_an_html_page_is_refused_as_html(tmp_path):
    path = write_lines(
        tmp_path / "export.csv", ["<!DOCTYPE html>", "<html><body><p>Please sign in</p></body></html>"]
    )
    with pytest.raises(
        InputDataError, match=r"export.csv is an HTML page, not CSV \(a sign-in or error page"
    ):
        read(path)
    parquet = tmp_path / "export.parquet"
    parquet.write_bytes(path.read_bytes())
    with pytest.raises(InputDataError, match="is an HTML page .*not a Parquet file"):
        read(parquet)


def test_a_parquet_file_named_csv_says_so(tmp_path):
    path = tmp_path / "data.csv"
    pq.write_table(pa.Table.from_pandas(BASE), path)
    with pytest.raises(InputDataError, match="is a Parquet file, not CSV: set source_format='parquet'"):
        read(path)


def test_too_many_columns_are_refused_before_pandas_parses_the_header(tmp_path):
    path = write_lines(tmp_path / "wide.csv", [",".join(f"c{i}" for i in range(500)), ",".join("1" * 500)])
    with pytest.raises(InputDataError, match=r"has 500 columns, more than max_columns=100"):
        read(path, max_columns=100)
    assert read(path).shape == (1, 500)


def test_a_huge_value_is_refused_naming_the_line(tmp_path):
    frame = BASE.copy()
    frame.loc[3, "c"] = "v" * 5000
    frame.to_csv(tmp_path / "huge.csv", index=False)
    with pytest.raises(
        InputDataError, match=r"line 5 has a value larger than max_cell_length=1,000 characters"
    ):
        read(tmp_path / "huge.csv", max_cell_length=1000)


def test_a_line_too_long_is_refused_before_it_is_read_whole(tmp_path):
    path = write_lines(tmp_path / "long.csv", ["a,b", "1,2", "3," + "9" * 300])
    with pytest.raises(
        InputDataError, match=r"line 3 is 30[0-9] characters long, more than max_line_length=100"
    ):
        read(path, max_line_length=100, max_cell_length=1000)


@pytest.mark.parametrize("setting", ["max_columns", "max_cell_length", "max_line_length"])
@pytest.mark.parametrize("value", [0, -5, 1.5, True])
def test_limits_must_be_positive_whole_numbers(setting, value):
    with pytest.raises(ParameterError, match=f"parameter {setting}=.* must be a whole number of at least 1"):
        IngestConfig(source_uri="data.csv", **{setting: value})


def test_codes_with_leading_zeros_stay_text_and_are_pointed_out(tmp_path):
    frame = BASE.assign(zip=RNG.choice(["00501", "02134", "10001"], ROWS), count=RNG.integers(0, 9, ROWS))
    frame.to_csv(tmp_path / "zips.csv", index=False)
    read_back = read(tmp_path / "zips.csv")
    assert set(read_back["zip"]) <= {"00501", "02134", "10001"}
    assert pd.api.types.is_integer_dtype(read_back["count"])
    assert {s.kind for s in suspicious_columns(read_back, "y") if s.column == "zip"} == {LEADING_ZEROS}


def test_na_is_a_value_among_codes_and_missing_elsewhere(tmp_path):
    frame = BASE.assign(
        region=RNG.choice(["NA", "EU", "APAC"], ROWS), sex=RNG.choice(["male", "female", "NA"], ROWS)
    )
    frame.to_csv(tmp_path / "regions.csv", index=False)
    read_back = read(tmp_path / "regions.csv")
    assert (read_back["region"] == "NA").sum() == (frame["region"] == "NA").sum()
    assert read_back["sex"].isna().sum() == (frame["sex"] == "NA").sum()
    assert [s.kind for s in suspicious_columns(read_back, "y") if s.column == "region"] == [NA_CATEGORY]


def test_a_file_written_by_r_has_na_as_missing_in_every_column(tmp_path):
    # palmerpenguins' own CSV, as R wrote it: "NA" in numeric columns and in `sex`.
    import palmerpenguins

    source = Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
    read_back = read(source)
    assert read_back["body_mass_g"].dtype == "float64"
    assert read_back["sex"].isna().sum() == 11 and "NA" not in set(read_back["sex"].dropna())


def test_integers_past_int64_are_text_and_pointed_out(tmp_path):
    frame = BASE.assign(big=[str(10**20 + int(v)) for v in RNG.integers(0, 5, ROWS)])
    frame.to_csv(tmp_path / "big.csv", index=False)
    read_back = read(tmp_path / "big.csv")
    assert [s.kind for s in suspicious_columns(read_back, "y") if s.column == "big"] == [NUMERIC_TEXT]
    lines = [json.dumps({"big": 10**20 + i, "y": "p"}) for i in range(3)]
    assert read(write_lines(tmp_path / "big.jsonl", lines))["big"].tolist() == [
        str(10**20 + i) for i in range(3)
    ]


def test_parquet_decimals_are_numbers(tmp_path):
    amounts = [decimal.Decimal(f"{v:.2f}") for v in RNG.uniform(0, 100, ROWS)]
    pq.write_table(
        pa.table({"amount": pa.array(amounts, pa.decimal128(10, 2)), "y": BASE["y"]}), tmp_path / "d.parquet"
    )
    read_back = read(tmp_path / "d.parquet")
    assert read_back["amount"].dtype == "float64"
    assert read_back["amount"].tolist() == [float(a) for a in amounts]


def test_nested_parquet_columns_are_named(tmp_path):
    table = pa.table({"tags": pa.array([[1, 2]] * ROWS), "meta": pa.array([{"a": 1}] * ROWS), "y": BASE["y"]})
    pq.write_table(table, tmp_path / "nested.parquet")
    with pytest.raises(InputDataError, match=r"column\(s\) 'tags', 'meta' hold lists or records"):
        read(tmp_path / "nested.parquet")


def test_shards_whose_column_types_do_not_mix_are_named(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    BASE.iloc[:20].to_csv(folder / "part-0.csv", index=False)
    BASE.iloc[20:].assign(x=lambda f: f["x"].astype(str) + "kg").to_csv(folder / "part-1.csv", index=False)
    with pytest.raises(
        InputDataError,
        match=r"column 'x' of .*shards is numeric in shard part-0.csv but text in shard part-1.csv",
    ):
        read(folder)


def test_shards_with_an_all_missing_column_or_ints_and_floats_mix(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    BASE.iloc[:20].assign(x=np.nan).to_csv(folder / "part-0.csv", index=False)
    BASE.iloc[20:].assign(x=lambda f: (f["x"] * 10).round().astype(int)).to_csv(
        folder / "part-1.csv", index=False
    )
    assert read(folder)["x"].notna().sum() == 20


def test_a_json_lines_label_of_numbers_and_words_is_text(tmp_path):
    lines = [json.dumps({"x": i, "y": (1 if i % 3 else "one")}) for i in range(9)]
    read_back = read(write_lines(tmp_path / "mixed.jsonl", lines))
    assert set(read_back["y"]) == {"1", "one"}


def test_a_continuous_label_asked_to_be_classes_is_named():
    y = pd.Series(RNG.normal(50, 5, 60).round(1), name="weight")
    with pytest.raises(
        InputDataError, match=r"task='classification', but label column 'weight' holds \d+ distinct numbers"
    ):
        resolve_task(y, "classification")
    # Whole-number class ids stay classes.
    assert resolve_task(pd.Series([1.0, 2.0, 3.0] * 20, name="grade"), "classification") == "classification"


def test_a_header_name_too_long_to_be_a_name_is_refused(tmp_path):
    path = write_lines(tmp_path / "wide.csv", ["a," + "b" * 1500, "1,2"])
    with pytest.raises(InputDataError, match=r"name longer than 1000 characters at column position\(s\) 2"):
        read(path)


def test_values_quoted_in_messages_are_cut_short():
    frame = BASE.assign(amount=[str(1000 + i) for i in range(ROWS)])
    frame.loc[0, "amount"] = "x" * 5000
    (found,) = [s for s in suspicious_columns(frame, "y") if s.column == "amount"]
    assert "(5,002 characters)" in found.message and len(found.message) < 600
