"""The training matrix built a batch at a time: the same numbers as transforming every row at once,
and errors that name the rows and features wherever in the stream they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_helpers import fit_features
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import StandardScaler

from mlstages.components.common.dataset_files import iter_batches, write_dataset
from mlstages.components.common.dataset_positions import iter_positions, read_positions, sample_positions
from mlstages.components.common.errors import InputDataError
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.matrix import (
    PREDICTION_CHECK_ROWS,
    build_matrix,
    frame_batches,
    resolve_input_columns,
)
from tests.unit.test_train import classification_frame, regression_frame

COLUMNS = ["a", "b", "c", "d", "colour"]


def config(task: str = "classification", **overrides) -> TrainConfig:
    return TrainConfig(label_column="label" if task == "classification" else "target", task=task, **overrides)


@pytest.mark.parametrize("batch_rows", [7, 64, 10_000])
def test_batches_give_the_matrix_of_every_row_transformed_at_once(batch_rows):
    df = classification_frame(3, rows=300)
    pipeline = fit_features(df, "label")
    matrix = build_matrix(frame_batches(df, batch_rows), len(df), COLUMNS, pipeline, config())
    expected = pipeline.transform(df[COLUMNS])
    assert matrix.features.dtype == np.float64 and matrix.features.flags.c_contiguous
    np.testing.assert_array_equal(matrix.features, expected.to_numpy(dtype=float))
    assert matrix.feature_names == [str(c) for c in expected.columns]
    np.testing.assert_array_equal(matrix.y, df["label"].to_numpy())
    assert list(matrix.check_rows.columns) == COLUMNS and len(matrix.check_rows) == len(df)
    # Its inner steps warn when given arrays, so the estimator fits on a DataFrame: the same memory.
    assert matrix.array_pipeline is None
    frame = matrix.fit_input()
    assert list(frame.columns) == matrix.feature_names and np.shares_memory(frame.to_numpy(), matrix.features)


def test_a_pipeline_that_gives_the_same_arrays_is_used_as_an_array_pipeline():
    df = classification_frame(2, rows=300).fillna({"b": 0.0})
    pipeline = ColumnTransformer([("num", StandardScaler(), ["a", "b", "c", "d"])]).set_output(
        transform="pandas"
    )
    pipeline.fit(df[["a", "b", "c", "d"]])
    matrix = build_matrix(frame_batches(df, 64), len(df), ["a", "b", "c", "d"], pipeline, config())
    assert matrix.array_pipeline is not None and matrix.array_pipeline is not pipeline
    assert matrix.fit_input() is matrix.features
    np.testing.assert_array_equal(matrix.features, pipeline.transform(df[["a", "b", "c", "d"]]).to_numpy())


def test_the_check_rows_are_a_seeded_sample_of_at_most_the_check_size():
    df = regression_frame(rows=PREDICTION_CHECK_ROWS + 500)
    pipeline = fit_features(df, "target")
    matrix = build_matrix(frame_batches(df, 4_096), len(df), COLUMNS, pipeline, config("regression"))
    positions = sample_positions(len(df), PREDICTION_CHECK_ROWS, 42)
    pd.testing.assert_frame_equal(matrix.check_rows, df[COLUMNS].iloc[positions].reset_index(drop=True))


def test_a_dataset_streamed_or_sampled_by_position_gives_those_rows(tmp_path):
    df = classification_frame(2, rows=2_000)
    pipeline = fit_features(df, "label")
    write_dataset(df, tmp_path / "train", part_rows=700)
    streamed = build_matrix(
        iter_batches(tmp_path / "train", batch_rows=300), len(df), COLUMNS, pipeline, config()
    )
    np.testing.assert_array_equal(streamed.features, pipeline.transform(df[COLUMNS]).to_numpy(dtype=float))
    positions = sample_positions(len(df), 555, seed=3)
    sampled = build_matrix(iter_positions(tmp_path / "train", positions), 555, COLUMNS, pipeline, config())
    rows = read_positions(tmp_path / "train", positions)
    np.testing.assert_array_equal(sampled.features, pipeline.transform(rows[COLUMNS]).to_numpy(dtype=float))
    np.testing.assert_array_equal(sampled.y, rows["label"].to_numpy())


class _ReplacesLateRows(BaseEstimator, TransformerMixin):
    """Gives infinity (or one feature fewer) for rows whose 'a' exceeds a bound: a fault only some
    later batch shows."""

    def __init__(self, bound: float = 0.0, drop_column: bool = False) -> None:
        self.bound = bound
        self.drop_column = drop_column

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        out = X[["a", "b"]].astype(float).fillna(0.0).copy()
        if (X["a"] > self.bound).any():
            if self.drop_column:
                return out[["a"]]
            out.loc[X["a"] > self.bound, "b"] = np.inf
        return out


def _sorted_frame(rows: int = 200) -> pd.DataFrame:
    df = classification_frame(2, rows=rows)
    df["a"] = np.arange(rows, dtype=float)
    return df


def test_a_non_finite_feature_in_a_later_batch_is_named():
    df = _sorted_frame()
    with pytest.raises(InputDataError, match=r"missing or infinite values in feature\(s\) 'b'"):
        build_matrix(frame_batches(df, 50), len(df), ["a", "b"], _ReplacesLateRows(bound=150), config())


def test_a_later_batch_with_other_features_is_refused_with_its_first_row():
    df = _sorted_frame()
    with pytest.raises(InputDataError, match="output 1 features for training rows from 150 but 2"):
        build_matrix(
            frame_batches(df, 50),
            len(df),
            ["a", "b"],
            _ReplacesLateRows(bound=160, drop_column=True),
            config(),
        )


def test_a_missing_label_in_a_later_batch_is_located_in_the_whole_split():
    df = _sorted_frame()
    df.loc[[170, 185], "label"] = None
    pipeline = ColumnTransformer([("num", StandardScaler(), ["a"])]).set_output(transform="pandas")
    pipeline.fit(df[["a"]])
    with pytest.raises(InputDataError, match=r"2 missing value\(s\), first at row\(s\) 170, 185"):
        build_matrix(frame_batches(df, 50), len(df), ["a"], pipeline, config())


def test_fewer_rows_than_announced_are_refused():
    df = _sorted_frame()
    pipeline = fit_features(df, "label")
    with pytest.raises(InputDataError, match="holds 200 rows, not the 300 expected"):
        build_matrix(frame_batches(df, 64), 300, COLUMNS, pipeline, config())


def test_input_columns_default_to_the_pipelines_and_refuse_the_label():
    df = classification_frame(2)
    pipeline = fit_features(df, "label")
    assert resolve_input_columns(list(df.columns), pipeline, "label", None) == COLUMNS
    assert resolve_input_columns(list(df.columns), object(), "label", None) == COLUMNS
    with pytest.raises(InputDataError, match="takes the label column 'label' as an input"):
        resolve_input_columns(list(df.columns), object(), "label", ["a", "label"])
