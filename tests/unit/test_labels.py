"""The label column: task detection, task resolution and label checks."""

import numpy as np
import pandas as pd
import pytest

from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.labels import (
    CLASSIFICATION,
    MAX_CLASSES_FOR_NUMERIC_LABEL,
    REGRESSION,
    check_label,
    class_counts,
    detect_task,
    resolve_task,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b", "a", "c"], CLASSIFICATION),
        ([True, False, True, False], CLASSIFICATION),
        ([0, 1, 1, 0, 2, 2], CLASSIFICATION),
        # Whole-number floats (what an integer column with a missing value becomes) are codes too.
        ([0.0, 1.0, 1.0, 0.0], CLASSIFICATION),
        ([0.5, 1.25, 3.0, 2.75], REGRESSION),
        # Integers, but one row per value on average: a count or an amount, not classes.
        ([3, 7, 12, 25], REGRESSION),
        # Integers with more distinct values than the limit.
        (list(range(MAX_CLASSES_FOR_NUMERIC_LABEL + 1)) * 3, REGRESSION),
        (list(range(MAX_CLASSES_FOR_NUMERIC_LABEL)) * 3, CLASSIFICATION),
    ],
)
def test_detect_task(values, expected):
    assert detect_task(pd.Series(values, name="y")) == expected


def test_detect_task_ignores_missing_values_and_reads_categories():
    assert detect_task(pd.Series([1.0, np.nan, 2.0, 1.0, 2.0])) == CLASSIFICATION
    assert detect_task(pd.Series(["x", "y", "x"], dtype="category")) == CLASSIFICATION


def test_resolve_task_keeps_an_explicit_task_and_detects_auto():
    integers = pd.Series([0, 1, 0, 1], name="y")
    assert resolve_task(integers, "auto") == CLASSIFICATION
    assert resolve_task(integers, "regression") == REGRESSION
    assert resolve_task(pd.Series([0.5, 1.5], name="y"), "classification") == CLASSIFICATION


def test_resolve_task_rejects_an_unknown_task():
    with pytest.raises(ParameterError, match=r"parameter task='clustering' is not one of: 'auto'"):
        resolve_task(pd.Series([1, 2]), "clustering")


def test_regression_on_a_text_label_names_the_column():
    with pytest.raises(
        InputDataError, match=r"task='regression' needs a numeric label, but label column 'species' has dtype"
    ):
        resolve_task(pd.Series(["Adelie", "Gentoo"], name="species"), "regression")


def test_check_label_returns_the_column():
    df = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "a"]})
    pd.testing.assert_series_equal(check_label(df, "y", what="train split", task="auto"), df["y"])


def test_missing_label_column_lists_the_columns():
    df = pd.DataFrame({"x": [1], "z": [2]})
    with pytest.raises(
        InputDataError, match=r"label_column 'y' is not a column of the dataset; its columns are: x, z"
    ):
        check_label(df, "y", what="dataset")


def test_missing_label_values_give_count_and_rows():
    df = pd.DataFrame({"y": ["a", None, "b", np.nan, "a"]})
    with pytest.raises(
        InputDataError,
        match=r"label column 'y' of the train split has 2 missing value\(s\), first at row\(s\) 1, 3 \(0-based\)",
    ):
        check_label(df, "y", what="train split")


def test_single_class_fails_for_classification_only():
    df = pd.DataFrame({"y": ["a", "a", "a"]})
    with pytest.raises(InputDataError, match=r"has a single class \('a'\) in all 3 rows"):
        check_label(df, "y", what="dataset", task="classification")
    # Without a task there is nothing to check the classes against.
    assert check_label(df, "y", what="dataset").tolist() == ["a", "a", "a"]


def test_class_counts_are_json_able_and_most_frequent_first():
    assert class_counts(pd.Series([1, 2, 2, 3, 2, 1])) == {"2": 3, "1": 2, "3": 1}


def test_distinct_values_and_counts_chunk_by_chunk_match_pandas(monkeypatch):
    from mlstages.components.common import labels

    monkeypatch.setattr(labels, "_DISTINCT_CHUNK_ROWS", 7)  # many chunks, a short last one
    y = pd.Series(["b", "a", "c", "a", "b", "b", "d", "a", "c", "c", "c", "e", "a", "b", "f"] * 3)
    assert labels.distinct_values(y).tolist() == y.unique().tolist()
    counts = labels.value_counts(y)
    assert counts.to_dict() == y.value_counts().to_dict()
    assert counts.tolist() == sorted(counts.tolist(), reverse=True)
    assert list(counts.index[:3]) == ["b", "a", "c"]  # a tie: first seen first
    assert list(labels.class_counts(y).items()) == [
        ("b", 12),
        ("a", 12),
        ("c", 12),
        ("d", 3),
        ("e", 3),
        ("f", 3),
    ]


def test_task_detection_chunk_by_chunk(monkeypatch):
    from mlstages.components.common import labels

    monkeypatch.setattr(labels, "_DISTINCT_CHUNK_ROWS", 5)
    assert labels.detect_task(pd.Series([0, 1, 2] * 10)) == "classification"
    assert labels.detect_task(pd.Series([0.0, 1.0, None] * 10)) == "classification"
    assert (
        labels.detect_task(pd.Series([0.0, 1.0] * 10 + [0.5])) == "regression"
    )  # a fraction in the last chunk
    assert labels.detect_task(pd.Series([0, 1, None] * 10, dtype="Int64")) == "classification"
