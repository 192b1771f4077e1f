"""A dataset's rows by position: a seeded sample of positions (the same rows whatever the layout
of the parts), and the rows at sorted positions read one row group at a time (``dataset_files``
reads a dataset in order)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.dataset_files import (
    BATCH_BYTES,
    dataset_rows,
    open_part,
    part_files,
    read_dataset_head,
    to_frame,
)
from mlstages.components.common.memory import release_unused
from mlstages.components.common.progress import streamed


def sample_positions(total: int, size: int, seed: int) -> np.ndarray:
    """``min(size, total)`` distinct row positions in ``[0, total)``, sorted, drawn with ``seed``:
    the same rows whatever the layout of the parts."""
    if size >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=size, replace=False)).astype(np.int64)


def iter_positions(
    path: str | os.PathLike,
    positions: np.ndarray,
    *,
    columns: Sequence[str] | None = None,
    what: str = "dataset",
) -> Iterator[pd.DataFrame]:
    """The rows at sorted global ``positions``, a row group's picks at a time; each frame's index
    holds the positions."""
    try:
        yield from _iter_positions(path, positions, columns, what)
    finally:
        release_unused()  # as iter_batches: the read buffers go back before the task fits


def _iter_positions(
    path: str | os.PathLike, positions: np.ndarray, columns: Sequence[str] | None, what: str
) -> Iterator[pd.DataFrame]:
    import pyarrow as pa

    offset = 0
    cursor = 0
    for file in part_files(path, what=what):
        parquet = open_part(file, what)
        wanted = list(columns) if columns is not None else None
        for group in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            end = np.searchsorted(positions, offset + rows, side="left")
            if end > cursor:
                local = pa.array(positions[cursor:end] - offset)
                frame = to_frame(_picked_rows(parquet, group, wanted, local))
                frame.index = pd.Index(positions[cursor:end])
                yield frame
                cursor = end
                streamed(f"reading a sample of the {what}", int(cursor), len(positions))
            offset += rows
        if cursor >= len(positions):
            return


def _picked_rows(parquet: Any, group: int, columns: list[str] | None, picks: Any) -> Any:
    """The ``picks`` of a row group, read a few columns at a time so that about BATCH_BYTES of the
    group is held at once (a whole group of a wide table is 160 MB for a few rows of it). Not a
    slice of rows at a time: pyarrow's batch reader holds twice what reading the whole group does
    (measured: 514 against 274 MB)."""
    import pyarrow as pa

    names = columns if columns is not None else parquet.schema_arrow.names
    group_bytes = parquet.metadata.row_group(group).total_byte_size
    per_read = max(1, int(len(names) * BATCH_BYTES / max(group_bytes, 1)))
    if per_read >= len(names):
        return parquet.read_row_group(group, columns=columns, use_pandas_metadata=True).take(picks)
    pieces = [
        parquet.read_row_group(group, columns=names[start : start + per_read]).take(picks)
        for start in range(0, len(names), per_read)
    ]
    arrays = [column for piece in pieces for column in piece.columns]
    fields = [field for piece in pieces for field in piece.schema]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=parquet.schema_arrow.metadata))


def read_positions(
    path: str | os.PathLike,
    positions: np.ndarray,
    *,
    columns: Sequence[str] | None = None,
    what: str = "dataset",
) -> pd.DataFrame:
    """The rows at sorted global ``positions``, read one row group at a time; the index holds the
    positions."""
    frames = list(iter_positions(path, positions, columns=columns, what=what))
    if not frames:
        return read_dataset_head(path, 0, columns=columns, what=what)
    return pd.concat(frames) if len(frames) > 1 else frames[0]


def sample_rows(
    path: str | os.PathLike,
    size: int,
    seed: int,
    *,
    columns: Sequence[str] | None = None,
    what: str = "dataset",
) -> pd.DataFrame:
    """A seeded uniform sample of ``size`` rows without replacement (every row when the dataset
    has no more), in dataset order; the index holds each row's position in the dataset."""
    positions = sample_positions(dataset_rows(path, what=what), size, seed)
    return read_positions(path, positions, columns=columns, what=what)
