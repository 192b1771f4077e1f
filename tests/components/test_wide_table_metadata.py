"""A wide table through kfp.local: the task after ingest starts (issue 13: its executor input,
with the dataset's metadata, is one command-line argument, capped at 128 KiB by Linux)."""

import numpy as np
import pandas as pd
from kfp import dsl
from kfp.dsl import Dataset, Input
from kfp_launcher_rules import assert_cluster_safe, output_types

from mlstages.components.ingest.component import ingest


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_columns(dataset: Input[Dataset]) -> int:
    """Stands in for validate_data: any task that takes the dataset as input."""
    return int(dataset.metadata["columns"])


def test_a_6000_column_table_reaches_the_next_task(kfp_local, tmp_path):
    columns = 6000
    path = tmp_path / "wide.csv"
    pd.DataFrame(
        np.arange(3 * columns).reshape(3, columns), columns=[f"feature_{i:05d}" for i in range(columns)]
    ).to_csv(path, index=False)

    @dsl.pipeline
    def wide(uri: str) -> int:
        return count_columns(dataset=ingest(source_uri=uri).outputs["dataset"]).output

    assert wide(uri=str(path)).output == columns
    assert_cluster_safe(next((kfp_local / "root").iterdir()), output_types() | {"count_columns": {}})
