"""preprocess over a dataset on disk, in bounded memory, whatever its size.

The split is decided from the label (and time) column alone (``plan_split``: a hash of each row's
position and the seed, split.py), the dataset is then streamed once, a row group at a time, into
the train and test folders, and the transformer is fitted on a seeded sample of the train rows
that fits the task's memory (max_fit_rows). Memory is the label column, one byte per row for the
routing, a few row groups, and the fitting sample.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlstages.components.common.dataset_files import (
    DatasetWriter,
    bytes_per_row,
    dataset_columns,
    dataset_rows,
    iter_batches,
    read_dataset,
    read_dataset_head,
)
from mlstages.components.common.dataset_positions import read_positions
from mlstages.components.common.memory import fit_rows
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import (
    PreprocessResult,
    fit_preprocessor,
    fit_sample,
    plan_split,
)

_TRAIN, _TEST, _NONE = 0, 1, -1


def fit_rows_for(path: str | os.PathLike, config: PreprocessConfig) -> int:
    """The train rows the transformer is fitted on: ``max_fit_rows``, or what the memory allows."""
    return fit_rows(bytes_per_row(path, what="input dataset"), config.max_fit_rows)


def preprocess_dataset(
    path: str | os.PathLike,
    config: PreprocessConfig,
    outputs: Mapping[str, str | os.PathLike],
    *,
    source: str,
    lineage: Mapping[str, Any],
) -> tuple[PreprocessResult, dict[str, dict[str, Any]]]:
    """Split the dataset at ``path`` into ``outputs['train']`` and ``outputs['test']`` (dataset
    folders) and fit the transformer; return the result and each split's metadata.

    Everything is checked and the transformer fitted before a split is written, so a failure leaves
    no output; ``lineage`` (where the rows came from) goes into each split with the split's own.
    """
    what = "input dataset"
    columns = dataset_columns(path, what=what)
    head = read_dataset_head(path, 0, what=what)
    needed = [c for c in (config.label_column, config.time_column) if c and c in columns]
    labels = read_dataset(path, what=what, columns=needed)
    plan = plan_split(labels, head, config)
    del labels
    positions = plan.train_positions
    chosen = np.sort(positions[fit_sample(len(positions), fit_rows_for(path, config), config.seed)])
    result = fit_preprocessor(read_positions(path, chosen, what=what), config, plan)

    # One byte per row says where it goes: train, test, or nowhere (an unlabelled row dropped).
    route = np.full(dataset_rows(path, what=what), _NONE, np.int8)
    route[plan.train_positions] = _TRAIN
    route[plan.test_positions] = _TEST
    metadata: dict[str, dict[str, Any]] = {}
    writers = {
        name: DatasetWriter(
            outputs[name],
            source=source,
            lineage={
                **lineage,
                "split": {
                    "name": name,
                    "rows": plan.row_counts[name],
                    "method": plan.method,
                    "seed": config.seed,
                    "unlabelled_rows_dropped": plan.unlabelled_rows_dropped,
                },
            },
        )
        for name in ("train", "test")
    }
    try:
        for batch in iter_batches(path, what=what):
            if not len(batch):
                continue
            where = route[batch.index[0] : batch.index[-1] + 1]
            for name, code in (("train", _TRAIN), ("test", _TEST)):
                rows = where == code
                if rows.any():
                    writers[name].write(batch[rows])
        for name, writer in writers.items():
            if writer.rows == 0:
                writer.write(head)
            metadata[name] = writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return result, metadata
