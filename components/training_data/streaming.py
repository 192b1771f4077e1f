"""The rows of the retraining data, moved a chunk at a time.

Every part (the labelled rows of the window, the earlier windows, the original data) is read
through ingest's streaming readers into a local dataset folder, so its rows, columns and content
hash are known without holding it; the parts are then streamed one after the other, as
``pd.concat`` would put them together (the same dtypes), into one Parquet file.

A row seen before teaches nothing new, and a repeat would sit in both the train and the test
split, so repeats are left out, the first copy kept, as ``DataFrame.duplicated`` on the rows'
text finds them. Streaming, each row leaves an 8-byte hash of its values (400 MB at 50M rows);
rows whose hash an earlier row has are read back and compared as text, so a hash collision never
drops a row; only when repeats were found are the rows streamed a second time, without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.dataset_files import part_files
from mlstages.components.common.dataset_positions import read_positions
from mlstages.components.ingest.column_values import normalize_missing, to_dtype
from mlstages.components.ingest.ingest import IngestConfig, ingest_dataset, open_source
from mlstages.components.ingest.shards import Shard, ShardPlan
from mlstages.components.ingest.stream import (
    DatasetPlan,
    DatasetSink,
    Sink,
    batch_rows_setting,
    stream_shards,
)
from mlstages.components.training_data.training_data import Part, labelled_rows

# A dataset folder of one part file: what goes to the registry is a single Parquet file.
ONE_FILE = 1 << 62


def single_file(folder: Path) -> Path:
    """The one part file of a folder written with ``ONE_FILE`` rows a part."""
    (file,) = part_files(folder)
    return file


def ingest_part(
    config: IngestConfig, folder: Path, role: str, uri: str, *, batch_rows: int | None = None
) -> Part:
    """A part read from ``config``'s source (the original data, an earlier window's file) into a
    local dataset folder."""
    metadata = ingest_dataset(config, folder, batch_rows=batch_rows)
    return Part(role, uri, folder, metadata["rows"], tuple(metadata["dtypes"]), metadata["content_hash"])


def labelled_window(
    window: Path,
    label_column: str,
    folder: Path,
    uri: str,
    *,
    lineage: dict[str, Any],
    batch_rows: int | None = None,
) -> Part:
    """The window's rows that have a label, as a folder of one Parquet file that keeps the
    window's ``lineage`` (the file the window archive holds)."""
    rows = batch_rows or batch_rows_setting()
    sink = DatasetSink(folder, source=uri, part_rows=ONE_FILE, lineage=lineage)
    labelled = _Filtered(sink, lambda batch, offset: labelled_rows(batch, label_column))
    with open_source(IngestConfig(source_uri=str(window)), rows) as shards:
        stream_shards(shards, labelled, f"the window at {uri}", batch_rows=rows)
    metadata = sink.close()
    return Part("window", uri, folder, metadata["rows"], tuple(metadata["dtypes"]), metadata["content_hash"])


@dataclass(frozen=True)
class Assembled:
    """The assembled training data: its one file, rows, content hash and the repeats left out."""

    file: Path
    rows: int
    content_hash: str
    repeated: int


def assemble_rows(
    parts: Sequence[Part],
    folder: Path,
    *,
    lineage: dict[str, Any],
    batch_rows: int | None = None,
) -> Assembled:
    """The parts' rows one after the other (the first part's columns, in its order), repeats
    left out, as one Parquet file under ``folder`` that keeps ``lineage``."""
    rows = batch_rows or batch_rows_setting()
    columns = list(parts[0].columns)
    combined = folder / "combined"
    hashes = _Hashes()
    sink = DatasetSink(combined, source="training data", part_rows=ONE_FILE, lineage=lineage)
    with ExitStack() as stack:
        shards: list[Shard] = []
        for part in parts:
            opened = stack.enter_context(open_source(IngestConfig(source_uri=str(part.path)), rows))
            shards += [_Columns(shard, columns, f"{part.role} ({part.uri})") for shard in opened]
        streamed = stream_shards(shards, _Tee(sink, hashes), "the training data", batch_rows=rows)
    metadata = sink.close()
    repeats = _repeats(hashes.values(), combined, streamed.plan)
    if not len(repeats):
        return Assembled(single_file(combined), metadata["rows"], metadata["content_hash"], 0)
    kept = folder / "kept"
    sink = DatasetSink(kept, source="training data", part_rows=ONE_FILE, lineage=lineage)
    with open_source(IngestConfig(source_uri=str(combined)), rows) as shards:
        stream_shards(shards, _Filtered(sink, _without(repeats)), "the training data", batch_rows=rows)
    metadata = sink.close()
    return Assembled(single_file(kept), metadata["rows"], metadata["content_hash"], len(repeats))


def _repeats(hashes: np.ndarray, folder: Path, plan: DatasetPlan) -> np.ndarray:
    """The sorted positions of the rows that repeat an earlier row, as ``duplicated`` on the rows'
    text finds them: rows with the hash of an earlier one, confirmed by comparing their text."""
    if len(hashes) < 2:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(hashes, kind="stable")
    ranked = hashes[order]
    same = ranked[1:] == ranked[:-1]
    if not same.any():
        return np.empty(0, dtype=np.int64)
    opens = np.concatenate(([True], ~same))
    run = np.cumsum(opens) - 1
    first = order[np.flatnonzero(opens)][run]  # the stable sort puts a run's earliest row first
    later, earlier = order[1:][same], first[1:][same]
    del order, ranked, run, first
    wanted = np.unique(np.concatenate((later, earlier)))
    text = _as_text(read_positions(folder, wanted), plan)
    equal = (text.loc[later].to_numpy() == text.loc[earlier].to_numpy()).all(axis=1)
    return np.unique(later[equal])


def _as_text(rows: pd.DataFrame, plan: DatasetPlan) -> pd.DataFrame:
    """Rows read back by position, each column in the dtype the whole data has, as text."""
    for name, dtype in zip(plan.columns, plan.dtypes, strict=True):
        rows[name] = to_dtype(rows[name], dtype)
    return normalize_missing(rows).astype(str)


def _without(drop: np.ndarray) -> Callable[[pd.DataFrame, int], pd.DataFrame]:
    def keep(batch: pd.DataFrame, offset: int) -> pd.DataFrame:
        lo, hi = np.searchsorted(drop, [offset, offset + len(batch)])
        if lo == hi:
            return batch
        mask = np.ones(len(batch), dtype=bool)
        mask[drop[lo:hi] - offset] = False
        return batch[mask].reset_index(drop=True)

    return keep


class _Hashes:
    """A sink that keeps an 8-byte hash of each row's values."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []

    def start(self, plan: DatasetPlan) -> None:
        self.arrays = []

    def write(self, batch: pd.DataFrame) -> None:
        hashed = pd.util.hash_pandas_object(batch, index=False, categorize=False)
        self.arrays.append(hashed.to_numpy(dtype=np.uint64))

    def abort(self) -> None:
        self.arrays = []

    def values(self) -> np.ndarray:
        return np.concatenate(self.arrays) if self.arrays else np.empty(0, dtype=np.uint64)


class _Tee:
    """Two sinks fed the same batches."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def start(self, plan: DatasetPlan) -> None:
        for sink in self.sinks:
            sink.start(plan)

    def write(self, batch: pd.DataFrame) -> None:
        for sink in self.sinks:
            sink.write(batch)

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()


class _Filtered:
    """A sink that passes on what ``keep(batch, offset)`` keeps of each batch (``offset``: the
    position of the batch's first row in the stream)."""

    def __init__(self, sink: Sink, keep: Callable[[pd.DataFrame, int], pd.DataFrame]) -> None:
        self.sink = sink
        self.keep = keep
        self.offset = 0

    def start(self, plan: DatasetPlan) -> None:
        self.offset = 0
        self.sink.start(plan)

    def write(self, batch: pd.DataFrame) -> None:
        kept = self.keep(batch, self.offset)
        self.offset += len(batch)
        if len(kept):
            self.sink.write(kept)

    def abort(self) -> None:
        self.sink.abort()


class _Columns(Shard):
    """A shard seen through ``columns`` (the training data's, in its order): a later part's
    other columns are left out."""

    def __init__(self, inner: Shard, columns: Sequence[str], name: str) -> None:
        super().__init__(name, inner.shown)
        self.inner = inner
        self.wanted = list(columns)

    def open(self) -> None:
        self.inner.open()

    def first_pass(self) -> Iterator[pd.DataFrame]:
        return self.inner.first_pass()

    def plan(self) -> ShardPlan:
        inner = self.inner.plan()
        at = [inner.columns.index(name) for name in self.wanted]
        return ShardPlan(
            tuple(self.wanted),
            tuple(inner.dtypes[i] for i in at),
            tuple(inner.missing[i] for i in at),
            tuple(inner.values[i] for i in at),
            inner,
            inner.rows,
        )

    def convert(self, chunk: pd.DataFrame, plan: ShardPlan) -> pd.DataFrame | None:
        converted = self.inner.convert(chunk, plan.detail)
        return None if converted is None else converted[self.wanted]

    def final_pass(self, plan: ShardPlan) -> Iterator[pd.DataFrame]:
        for chunk in self.inner.final_pass(plan.detail):
            yield chunk[self.wanted]

    def close(self) -> None:
        self.inner.close()
