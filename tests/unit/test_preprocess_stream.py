"""preprocess over a dataset folder: the same split as in memory, streamed, fitted on a sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from mlstages.components.common.dataset_files import dataset_rows, read_dataset, read_lineage, write_dataset
from mlstages.components.common.errors import InputDataError
from mlstages.components.evaluate.evaluate import evaluate, evaluate_dataset
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.preprocess.stream import preprocess_dataset


def penguins() -> pd.DataFrame:
    return load_penguins()


@pytest.mark.parametrize("part_rows", [10, 1_000_000])
def test_streamed_splits_are_the_in_memory_splits(tmp_path, part_rows):
    df = penguins()
    write_dataset(df, tmp_path / "data", part_rows=part_rows)
    config = PreprocessConfig("species")
    outputs = {"train": tmp_path / "train", "test": tmp_path / "test"}
    result, written = preprocess_dataset(
        tmp_path / "data", config, outputs, source="s", lineage={"sources": []}
    )
    # In memory, the same rows as the dataset gives them back (missing text as None, as Parquet
    # stores it, where load_penguins has NaN).
    expected = preprocess(read_dataset(tmp_path / "data"), config)
    for name in ("train", "test"):
        streamed = read_dataset(outputs[name])
        pd.testing.assert_frame_equal(streamed, expected.splits[name].reset_index(drop=True))
        assert written[name]["rows"] == len(streamed) == result.row_counts[name]
        assert read_lineage(outputs[name])["split"]["name"] == name
    assert result.label_summary == expected.label_summary
    assert result.feature_names == expected.feature_names
    assert result.test is None and result.fit_rows == result.row_counts["train"]


def test_unlabelled_rows_are_routed_nowhere(tmp_path):
    df = penguins()
    df.loc[[3, 50, 51], "species"] = None
    write_dataset(df, tmp_path / "data", part_rows=40)
    outputs = {"train": tmp_path / "train", "test": tmp_path / "test"}
    result, _ = preprocess_dataset(
        tmp_path / "data", PreprocessConfig("species"), outputs, source="s", lineage={}
    )
    assert result.unlabelled_rows_dropped == 3
    assert dataset_rows(outputs["train"]) + dataset_rows(outputs["test"]) == len(df) - 3


def test_a_large_train_split_is_fitted_on_a_seeded_sample(tmp_path):
    rng = np.random.default_rng(0)
    rows = 20_000
    df = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "colour": rng.choice(["a", "b", "c"], rows),
            "y": rng.choice(["yes", "no"], rows),
        }
    )
    write_dataset(df, tmp_path / "data", part_rows=3000)
    config = PreprocessConfig("y", max_fit_rows=2000, outliers="none")
    outputs = {"train": tmp_path / "train", "test": tmp_path / "test"}
    result, written = preprocess_dataset(tmp_path / "data", config, outputs, source="s", lineage={})
    assert result.fit_rows == 2000 and written["train"]["rows"] == 16_000
    assert any("seeded sample of 2,000 of the 16,000 train rows" in note for note in result.notes)
    again, _ = preprocess_dataset(
        tmp_path / "data", config, {"train": tmp_path / "t2", "test": tmp_path / "s2"}, source="s", lineage={}
    )
    assert again.train.index.equals(result.train.index)  # the same sample for the same seed
    # Fitted on the sample: the scaler's mean is the sample's, close to the whole split's.
    scaler_mean = result.preprocessor.named_transformers_["num"].named_steps["scale"].mean_[0]
    assert scaler_mean == pytest.approx(result.train["x"].mean(), abs=1e-9)


def test_a_missing_label_column_fails_before_anything_is_written(tmp_path):
    write_dataset(penguins(), tmp_path / "data")
    outputs = {"train": tmp_path / "train", "test": tmp_path / "test"}
    with pytest.raises(
        InputDataError, match=r"label_column 'kind' is not a column of the dataset; its columns are: species"
    ):
        preprocess_dataset(tmp_path / "data", PreprocessConfig("kind"), outputs, source="s", lineage={})
    assert not (tmp_path / "train").exists() and not (tmp_path / "test").exists()


def test_the_streamed_evaluation_is_the_in_memory_one(tmp_path):
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    df = penguins().dropna()
    result = preprocess(df, PreprocessConfig("species"))
    model = Pipeline([("pre", result.preprocessor), ("model", LogisticRegression(max_iter=500))])
    columns = result.input_columns
    model.fit(result.train[columns], result.train["species"])
    dummy = Pipeline([("pre", result.preprocessor), ("model", DummyClassifier())]).fit(
        result.train[columns], result.train["species"]
    )
    write_dataset(result.test, tmp_path / "test", part_rows=20)
    streamed = evaluate_dataset(
        model,
        {"dummy": dummy},
        str(tmp_path / "test"),
        "species",
        "classification",
        ("island",),
        input_columns=columns,
        batch_rows=7,
    )
    whole = evaluate(model, result.test, "species", "classification", ("island",), input_columns=columns)
    assert streamed.metrics == whole.metrics and streamed.slices == whole.slices
    assert streamed.confusion_matrix == whole.confusion_matrix
    assert (
        streamed.baselines["dummy"]
        == evaluate(dummy, result.test, "species", "classification", input_columns=columns).metrics
    )
