"""kfp.local runs of the preprocess component.

kfp.local refuses input artifacts for a component called on its own ("Input artifacts are not
supported"), so the component runs inside a small pipeline: ingest reads a Parquet file made with
write_dataset and feeds preprocess.
"""

# No `from __future__ import annotations`: kfp reads the pipelines' annotations as types.
from pathlib import Path
from typing import NamedTuple

import numpy as np
import palmerpenguins
import pytest
from kfp import dsl
from kfp.dsl import Dataset, Markdown, Model

from mlstages.components.common.artifacts import load_estimator, read_metadata
from mlstages.components.common.dataset_files import read_dataset
from mlstages.components.ingest.component import ingest
from mlstages.components.preprocess.component import preprocess


class Outputs(NamedTuple):
    train: Dataset
    test: Dataset
    transformer: Model
    summary: Markdown
    task: str


@dsl.pipeline
def preprocess_penguins(path: str, label_column: str, drop_columns: list) -> Outputs:
    data = ingest(source_uri=path)
    split = preprocess(
        dataset=data.outputs["dataset"],
        label_column=label_column,
        drop_columns=drop_columns,
        scaling="robust",
    )
    return Outputs(
        train=split.outputs["train"],
        test=split.outputs["test"],
        transformer=split.outputs["transformer"],
        summary=split.outputs["summary"],
        task=split.outputs["task"],
    )


def _preprocess_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "preprocess" in p.parts]


def test_penguins_are_split_into_raw_rows_and_the_transformer_is_saved(kfp_local, penguins_parquet):
    outputs = preprocess_penguins(
        path=penguins_parquet, label_column="species", drop_columns=["year"]
    ).outputs
    assert outputs["task"] == "classification"

    splits = {name: read_dataset(outputs[name].path) for name in ("train", "test")}
    assert {name: len(frame) for name, frame in splits.items()} == {
        "train": 275,
        "test": 69,
    }
    for name, frame in splits.items():
        # Raw rows: every column of the input, the label and the dropped column included.
        assert list(frame.columns) == list(palmerpenguins.load_penguins().columns)
        metadata = outputs[name].metadata
        assert metadata["split"] == name
        assert metadata["rows"] == len(frame)
        assert metadata["split_method"] == "stratified"
        assert metadata["column_types"]["species"] == "categorical"
        assert len(metadata["content_hash"]) == 64
        assert set(frame["species"]) == {"Adelie", "Chinstrap", "Gentoo"}

    transformer_dir = Path(outputs["transformer"].path)
    assert sorted(p.name for p in transformer_dir.iterdir()) == ["metadata.json", "transformer.joblib"]
    saved = read_metadata(transformer_dir)
    assert saved["label_column"] == "species"
    assert saved["input_column_order"] == [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
    ]
    assert saved["input_columns"]["island"] == "categorical"
    assert saved["config"]["drop_columns"] == ["year"]
    assert saved["config"]["scaling"] == "robust"
    assert outputs["transformer"].metadata["feature_count"] == len(saved["feature_names"])
    assert outputs["transformer"].metadata["sha256"] == saved["sha256"]

    preprocessor = load_estimator(transformer_dir, "transformer")
    features = preprocessor.transform(splits["test"])
    assert list(features.columns) == saved["feature_names"]
    assert np.isfinite(features.to_numpy(dtype=float)).all()

    summary = Path(outputs["summary"].path).read_text()
    assert "| train | 275 | 79.9% |" in summary
    assert "| year | numeric | excluded | 0 | excluded: drop_columns |" in summary


def test_unknown_label_column_fails_before_writing(kfp_local, penguins_parquet, capsys):
    with pytest.raises(RuntimeError, match="preprocess"):
        preprocess_penguins(path=penguins_parquet, label_column="kind", drop_columns=[])
    logs = capsys.readouterr().out
    assert (
        "InputDataError: label_column 'kind' is not a column of the dataset; its columns are: species" in logs
    )
    assert _preprocess_files(kfp_local / "root") == []
