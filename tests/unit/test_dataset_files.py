"""Datasets as folders of Parquet parts: written a batch at a time, read a row group at a time."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlstages.components.common import memory
from mlstages.components.common.dataset_files import (
    MANIFEST_FILE,
    DatasetWriter,
    dataset_columns,
    dataset_rows,
    iter_batches,
    part_files,
    read_dataset,
    read_dataset_head,
    read_lineage,
    streamed_source_lineage,
    write_batches,
    write_dataset,
)
from mlstages.components.common.dataset_positions import sample_rows
from mlstages.components.common.datasets import content_hash, dataset_metadata
from mlstages.components.common.errors import InputDataError, ParameterError


def table(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[::17] = np.nan
    colour = rng.choice(["red", "green", "blue"], rows).astype(object)
    colour[::13] = None
    return pd.DataFrame(
        {
            "x": x,
            "n": np.arange(rows),
            "colour": colour,
            "when": pd.date_range("2026-01-01", periods=rows, freq="h"),
            "flag": rng.random(rows) > 0.5,
        }
    )


@pytest.mark.parametrize("part_rows", [1, 7, 333, 1000, 5000])
def test_parts_read_back_as_the_table_with_the_whole_tables_metadata(tmp_path, part_rows):
    df = table()
    written = write_dataset(df, tmp_path / "data", lineage={"sources": ["s"]}, part_rows=part_rows)
    assert written["parts"] == -(-len(df) // part_rows)
    assert len(part_files(tmp_path / "data")) == written["parts"]
    whole = dataset_metadata(df)
    assert {k: written[k] for k in whole} == whole  # rows, columns, types, dtypes, content hash
    pd.testing.assert_frame_equal(read_dataset(tmp_path / "data"), df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "data"), df)  # a plain reader too
    assert dataset_rows(tmp_path / "data") == len(df)
    assert dataset_columns(tmp_path / "data") == list(df.columns)
    assert read_lineage(tmp_path / "data") == {"sources": ["s"]}
    manifest = json.loads((tmp_path / "data" / MANIFEST_FILE).read_text())
    assert sum(manifest["part_rows"]) == len(df) and manifest["content_hash"] == content_hash(df)


def test_batches_of_any_size_rebuild_the_table_with_positions_as_index(tmp_path):
    df = table(500)
    write_batches((df.iloc[i : i + 64] for i in range(0, 500, 64)), tmp_path / "data", part_rows=150)
    for batch_rows in (1, 50, 1000):
        batches = list(iter_batches(tmp_path / "data", batch_rows=batch_rows))
        assert max(len(b) for b in batches) <= batch_rows
        pd.testing.assert_frame_equal(pd.concat(batches), df)
    only = next(iter_batches(tmp_path / "data", columns=["colour"]))
    assert list(only.columns) == ["colour"]


def test_picks_of_a_row_group_too_large_to_read_at_once_are_read_a_few_columns_at_a_time(
    tmp_path, monkeypatch
):
    from mlstages.components.common import dataset_positions
    from mlstages.components.common.dataset_positions import read_positions, sample_positions

    df = table(2000)  # numbers with gaps, categories, text, timestamps, booleans
    write_dataset(df, tmp_path / "data", part_rows=10_000)
    positions = sample_positions(len(df), 300, seed=5)
    whole_group = read_positions(tmp_path / "data", positions)

    reads: list[list[str] | None] = []
    opened = dataset_positions.open_part

    class Counted:
        def __init__(self, parquet):
            self._parquet = parquet

        def __getattr__(self, name):
            return getattr(self._parquet, name)

        def read_row_group(self, group, columns=None, **kwargs):
            reads.append(columns)
            return self._parquet.read_row_group(group, columns=columns, **kwargs)

    monkeypatch.setattr(dataset_positions, "open_part", lambda file, what: Counted(opened(file, what)))
    monkeypatch.setattr(dataset_positions, "BATCH_BYTES", 8 << 10)  # against a group of ~60 KB
    by_columns = read_positions(tmp_path / "data", positions)
    assert len(reads) > 1 and all(len(columns) < len(df.columns) for columns in reads)
    pd.testing.assert_frame_equal(by_columns, whole_group)
    expected = df.iloc[positions]
    expected.index = pd.Index(positions)
    pd.testing.assert_frame_equal(by_columns, expected)
    only = read_positions(tmp_path / "data", positions, columns=["colour", "when"])
    pd.testing.assert_frame_equal(only, whole_group[["colour", "when"]])


def test_a_sample_is_the_same_rows_whatever_the_parts(tmp_path):
    df = table(2000)
    write_dataset(df, tmp_path / "one", part_rows=10_000)
    write_dataset(df, tmp_path / "many", part_rows=97)
    one = sample_rows(tmp_path / "one", 300, seed=3)
    many = sample_rows(tmp_path / "many", 300, seed=3)
    pd.testing.assert_frame_equal(one, many)
    pd.testing.assert_frame_equal(one, df.loc[one.index])
    assert one.index.is_monotonic_increasing and len(one) == 300
    assert not one.index.equals(sample_rows(tmp_path / "one", 300, seed=4).index)
    pd.testing.assert_frame_equal(sample_rows(tmp_path / "many", 5000, seed=3), df)


def test_a_wide_table_is_read_in_batches_of_about_batch_bytes():
    from mlstages.components.common.dataset_files import BATCH_BYTES, DEFAULT_BATCH_ROWS, batch_rows_for

    assert batch_rows_for(487) == BATCH_BYTES // 487 < DEFAULT_BATCH_ROWS  # the 25-column benchmark table
    assert batch_rows_for(151 * 8) == BATCH_BYTES // (151 * 8) < batch_rows_for(487)
    assert batch_rows_for(40) == DEFAULT_BATCH_ROWS  # a narrow table: never more rows than that
    assert batch_rows_for(10_000_000) == 4_096  # never fewer rows than that


def test_a_type_change_in_a_later_batch_names_the_column_and_leaves_nothing(tmp_path):
    df = table(10)
    with pytest.raises(
        InputDataError, match=r"column 'n' changes type within the data: int64 in the first rows"
    ):
        with DatasetWriter(tmp_path / "data") as writer:
            writer.write(df)
            writer.write(df.assign(n=["x"] * 10))
    assert not list(tmp_path.iterdir())


def test_no_rows_keeps_the_columns_and_their_types(tmp_path):
    df = table(10).iloc[:0]
    written = write_dataset(df, tmp_path / "empty")
    assert written["rows"] == 0 and written["parts"] == 1
    back = read_dataset(tmp_path / "empty")
    assert list(back.columns) == list(df.columns) and back.dtypes.equals(df.dtypes)
    assert read_dataset_head(tmp_path / "empty", 0).dtypes.equals(df.dtypes)


def test_a_plain_parquet_file_reads_the_same_way(tmp_path):
    df = table(300)
    df.to_parquet(tmp_path / "user.parquet", index=False)
    pd.testing.assert_frame_equal(read_dataset(tmp_path / "user.parquet"), df)
    assert dataset_rows(tmp_path / "user.parquet") == 300
    assert streamed_source_lineage(tmp_path / "user.parquet", "gs://b/user.parquet")[
        "content_hash"
    ] == content_hash(df)
    assert read_lineage(tmp_path / "user.parquet") == {}


def test_what_is_not_a_dataset_gets_one_line(tmp_path):
    with pytest.raises(InputDataError, match=r"train split .*absent: no such file or folder"):
        read_dataset(tmp_path / "absent", what="train split")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / MANIFEST_FILE).write_text("{}")
    with pytest.raises(InputDataError, match=r"is a folder with no Parquet part file in it"):
        dataset_rows(tmp_path / "empty")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InputDataError, match=r"bad.parquet is not a readable Parquet file"):
        dataset_rows(tmp_path / "bad.parquet")


def test_the_memory_allowance(tmp_path, monkeypatch):
    monkeypatch.delenv(memory.MEMORY_ENV, raising=False)
    (tmp_path / "memory.max").write_text("2147483648\n")
    assert memory.cgroup_memory_limit(tmp_path) == 2 << 30
    assert memory.memory_allowance(tmp_path) == min(2 << 30, memory.physical_memory() or 2 << 30)
    (tmp_path / "memory.max").write_text("max\n")
    assert memory.cgroup_memory_limit(tmp_path) is None
    assert memory.memory_allowance(tmp_path) == min(
        memory.DEFAULT_ALLOWANCE_BYTES, memory.physical_memory() or 1 << 62
    )
    monkeypatch.setenv(memory.MEMORY_ENV, "512")
    assert memory.memory_allowance(tmp_path) == 512 << 20
    # Rows get what the process does not hold before its first row: 512 - 256 MiB.
    assert memory.working_memory() == 256 << 20
    assert memory.rows_within(0.5, 1024) == 128 * 1024
    monkeypatch.setenv(memory.MEMORY_ENV, "4096")
    assert memory.working_memory() == 3840 << 20
    monkeypatch.setenv(memory.MEMORY_ENV, "300")
    assert memory.working_memory() == 75 << 20  # never less than a quarter of the allowance
    monkeypatch.setenv(memory.MEMORY_ENV, "lots")
    with pytest.raises(ParameterError, match=r"MLSTAGES_MEMORY_MB='lots' must be a whole number of MiB"):
        memory.memory_allowance(tmp_path)


_STREAMED_PASS = """
import sys, numpy as np, pandas as pd
from mlstages.components.common.dataset_files import iter_batches, write_dataset
from mlstages.components.common.dataset_positions import iter_positions, sample_positions

def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) << 10

rows = 100_000
frame = pd.DataFrame(np.random.default_rng(0).normal(size=(rows, 150))).rename(columns=str)
write_dataset(frame, sys.argv[1], part_rows=rows)
del frame
before = rss()
for _ in iter_batches(sys.argv[1], batch_rows=50_000):
    pass
after_batches = rss()
for _ in iter_positions(sys.argv[1], sample_positions(rows, rows // 2, 0)):
    pass
print(after_batches - before, rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the RSS from /proc")
def test_a_streamed_pass_gives_its_buffers_back_when_it_ends(tmp_path):
    # 100,000 rows x 150 floats: 120 MB. Without the release at the end of a pass, Arrow's pool
    # and the C heap kept 740 MB of freed batches (measured), which the fitting that follows a
    # pass in a task cannot use.
    done = subprocess.run(
        [sys.executable, "-c", _STREAMED_PASS, str(tmp_path / "wide")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    grown_by_batches, grown_by_positions = map(int, done.stdout.split())
    table = 100_000 * 150 * 8
    assert grown_by_batches < 2 * table and grown_by_positions < table, (grown_by_batches, grown_by_positions)


def test_a_wide_tables_row_groups_are_cut_to_about_row_group_bytes(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from mlstages.components.common import dataset_files

    monkeypatch.setattr(dataset_files, "ROW_GROUP_BYTES", 8 << 20)
    rng = np.random.default_rng(2)
    wide = pd.DataFrame(rng.normal(size=(30_000, 100))).rename(columns=str)  # 800 bytes a row
    narrow = pd.DataFrame({"x": rng.normal(size=30_000)})  # 8 bytes a row
    for name, frame in (("wide", wide), ("narrow", narrow)):
        write_dataset(frame, tmp_path / name, part_rows=30_000)
        pd.testing.assert_frame_equal(read_dataset(tmp_path / name), frame)
    wide_groups = pq.ParquetFile(part_files(tmp_path / "wide")[0]).metadata
    assert {wide_groups.row_group(g).num_rows for g in range(wide_groups.num_row_groups - 1)} == {
        (8 << 20) // 800
    }
    assert pq.ParquetFile(part_files(tmp_path / "narrow")[0]).metadata.num_row_groups == 1
