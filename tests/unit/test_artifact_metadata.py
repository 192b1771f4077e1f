"""Artifact metadata keeps to its budget: a task gets all its inputs' metadata in one 128 KiB
command-line argument (components/common/artifact_metadata.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from kfp_launcher_rules import MAX_ARTIFACT_METADATA_BYTES

from mlstages.components.common.artifact_metadata import (
    LEFT_OUT_KEY,
    METADATA_BUDGET,
    metadata_size,
    within_budget,
)
from mlstages.components.common.datasets import dataset_metadata


def test_small_metadata_is_kept_whole():
    metadata = {"rows": 3, "column_types": {"a": "numeric"}, "tags": ["x"]}
    assert within_budget(metadata) == metadata


def test_the_largest_maps_go_first_and_scalars_stay():
    metadata = {
        "rows": 3,
        "source": "gs://b/k",
        "big": {f"c{i}": "numeric" for i in range(2000)},
        "bigger": [f"feature_{i}" for i in range(4000)],
        "small": {"a": 1},
    }
    kept = within_budget(metadata, budget=40 * 1024)
    assert metadata_size(kept) <= 40 * 1024
    assert kept["rows"] == 3 and kept["source"] == "gs://b/k" and kept["small"] == {"a": 1}
    assert "bigger" not in kept and "big" in kept
    assert kept[LEFT_OUT_KEY].startswith("bigger: too large for artifact metadata")


def test_a_wide_tables_dataset_metadata_fits_the_budget():
    """6,000 columns used to make ~330 KB of metadata, and the next task could not start."""
    wide = pd.DataFrame(np.zeros((2, 6000)), columns=[f"feature_{i:05d}" for i in range(6000)])
    metadata = within_budget(dataset_metadata(wide, source="gs://b/wide.csv"))
    assert metadata_size(metadata) <= METADATA_BUDGET <= MAX_ARTIFACT_METADATA_BYTES
    assert metadata["rows"] == 2 and metadata["columns"] == 6000 and metadata["content_hash"]
    assert "column_types" not in metadata and "dtypes" in metadata[LEFT_OUT_KEY]
    narrow = within_budget(dataset_metadata(wide.iloc[:, :10]))
    assert narrow["column_types"] and LEFT_OUT_KEY not in narrow
