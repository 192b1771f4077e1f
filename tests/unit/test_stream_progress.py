"""A streamed pass over many rows says how far it is, at most once a minute
(progress.streamed): reading a dataset or a sample of it, writing one, scoring one."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from mlstages.components.common import progress
from mlstages.components.common.dataset_files import DatasetWriter, iter_batches, write_dataset
from mlstages.components.common.dataset_positions import iter_positions


@pytest.fixture
def every_batch_due(monkeypatch):
    """A line due after every batch, as a minute's worth of batches would be on a large table."""
    monkeypatch.setattr(progress, "_STREAM_THROTTLE", progress.Throttle(0.0))


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(rows, dtype="float64"), "c": ["a", "b"] * (rows // 2)})


@pytest.fixture
def clock(monkeypatch):
    """The monotonic clock at the seconds given, one call at a time; no pass under way."""
    times: list[float] = []
    monkeypatch.setattr(progress.time, "monotonic", lambda: times.pop(0))
    monkeypatch.setattr(progress, "_PASSES", {})
    return times


def test_a_line_is_written_once_a_minute_at_most(progress_lines, monkeypatch, clock):
    clock.extend([0.0, 0.0, 30.0, 61.0, 90.0, 122.0])
    monkeypatch.setattr(progress, "_STREAM_THROTTLE", progress.Throttle())  # starts at 0.0
    for rows in (100, 200, 300, 400, 500):  # at 0, 30, 61, 90 and 122 s
        progress.streamed("reading the test split", rows, 1_000)
    assert progress_lines == [
        "reading the test split: 300 of 1,000 rows (30%)",
        "reading the test split: 500 of 1,000 rows (50%)",
    ]


def test_a_pass_says_nothing_in_its_first_minute_however_long_the_log_was_quiet(
    progress_lines, monkeypatch, clock
):
    # The process's last line was 10 minutes ago (the search ran); a pass that then takes 50 s
    # is as silent as any pass of under a minute.
    clock.extend([0.0, 600.0, 625.0, 650.0, 660.0, 700.0, 725.0])
    monkeypatch.setattr(progress, "_STREAM_THROTTLE", progress.Throttle())  # starts at 0.0
    for rows in (100, 200, 300):  # at 600, 625 and 650 s
        progress.streamed("reading the training split", rows, 300)
    assert progress_lines == []
    # Another pass of the same action starts its own minute.
    progress.streamed("reading the training split", 100, 300)  # at 660 s
    assert progress_lines == []
    progress.streamed("reading the training split", 200, 300)  # at 700 s: 40 s into it
    assert progress_lines == []
    progress.streamed("reading the training split", 250, 300)  # at 725 s: a minute into it
    assert progress_lines == ["reading the training split: 250 of 300 rows (83%)"]


def test_without_a_total_the_line_counts_the_rows_so_far(progress_lines, every_batch_due):
    progress.streamed("writing dataset", 1_234_567)
    assert progress_lines == ["writing dataset: 1,234,567 rows so far"]


def test_a_pass_over_a_dataset_of_several_parts_counts_from_its_first_row(
    tmp_path, progress_lines, every_batch_due
):
    write_dataset(frame(1_000), tmp_path / "test", part_rows=400)
    progress_lines.clear()  # the writer's line
    read = sum(len(b) for b in iter_batches(tmp_path / "test", batch_rows=250, what="test split"))
    assert read == 1_000
    counts = [
        int(m["rows"].replace(",", ""))
        for line in progress_lines
        if (m := re.fullmatch(r"reading the test split: (?P<rows>[\d,]+) of 1,000 rows \(\d+%\)", line))
    ]
    assert len(counts) == len(progress_lines)
    # Parts of 400 rows in batches of at most 250: the position runs on across the parts.
    assert counts == [250, 400, 650, 800, 1_000]
    assert progress_lines[-1] == "reading the test split: 1,000 of 1,000 rows (100%)"


def test_a_sample_read_counts_its_picks(tmp_path, progress_lines, every_batch_due):
    write_dataset(frame(1_000), tmp_path / "train", part_rows=500)
    progress_lines.clear()
    positions = np.array([3, 10, 600, 999])
    picked = pd.concat(list(iter_positions(tmp_path / "train", positions, what="training split")))
    assert picked.index.tolist() == positions.tolist()
    assert progress_lines[-1] == "reading a sample of the training split: 4 of 4 rows (100%)"


def test_a_writer_counts_the_rows_written(tmp_path, progress_lines, every_batch_due):
    with DatasetWriter(tmp_path / "dataset", part_rows=300) as writer:
        for _ in range(3):
            writer.write(frame(250))
    assert progress_lines == [f"writing dataset: {n:,} rows so far" for n in (250, 500, 750)]


def test_nothing_is_written_for_a_short_pass(tmp_path, progress_lines, monkeypatch):
    # A minute from now, as from the module's import in a task: a small table's pass is over first.
    monkeypatch.setattr(progress, "_STREAM_THROTTLE", progress.Throttle())
    write_dataset(frame(1_000), tmp_path / "d")
    assert sum(len(b) for b in iter_batches(tmp_path / "d", batch_rows=100)) == 1_000
    assert progress_lines == []
