"""Predicting a dataset a batch at a time (common/scoring.py) and coding labels (evaluate.metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from mlstages.components.common.scoring import predict_batches
from mlstages.components.evaluate import metrics
from mlstages.components.evaluate.metrics import class_codes


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})


def _batches(frame: pd.DataFrame, size: int):
    return (frame.iloc[s : s + size] for s in range(0, len(frame), size))


def test_predictions_written_in_place_equal_the_concatenated_ones():
    frame = _frame(1_000)
    y = np.where(frame["a"] > 0, "yes", "no")
    models = {"model": LogisticRegression().fit(frame, y), "dummy": DummyClassifier().fit(frame, y)}
    wanted = {"model": True, "dummy": False}
    joined = predict_batches(models, _batches(frame, 128), ["a", "b", "c"], wanted)
    in_place = predict_batches(models, _batches(frame, 128), ["a", "b", "c"], wanted, rows=1_000)
    for name in models:
        np.testing.assert_array_equal(in_place[name][0], joined[name][0])
        if joined[name][1] is None:
            assert in_place[name][1] is None
        else:
            np.testing.assert_array_equal(in_place[name][1], joined[name][1])


def test_a_longer_class_name_in_a_later_batch_is_kept_whole():
    class ByBatch:
        """Predicts 'no' for the first batch, 'maybe' after: a wider string dtype."""

        def __init__(self) -> None:
            self.calls = 0

        def predict(self, frame):
            self.calls += 1
            return np.array(["no" if self.calls == 1 else "maybe"] * len(frame))

    frame = _frame(20)
    predicted = predict_batches({"m": ByBatch()}, _batches(frame, 10), ["a"], {}, rows=20)["m"][0]
    assert list(predicted) == ["no"] * 10 + ["maybe"] * 10


@pytest.mark.parametrize("rows", [19, 21])
def test_a_row_count_that_is_not_the_batches_fails(rows):
    frame = _frame(20)
    model = DummyClassifier().fit(frame, np.arange(20) % 2)
    with pytest.raises(ValueError, match="rows"):
        predict_batches({"m": model}, _batches(frame, 10), ["a", "b", "c"], {}, rows=rows)


def test_class_codes_match_labels_as_the_model_names_them(monkeypatch):
    monkeypatch.setattr(metrics, "_CODE_CHUNK_ROWS", 3)  # codes found chunk by chunk
    assert class_codes(np.array([1.0, 0.0, 2.0, 1.0, 1.0]), [0, 1, 2]).tolist() == [1, 0, 2, 1, 1]
    assert class_codes(np.array(["b", "a", "b", "c"], dtype=object), ["a", "b", "c"]).tolist() == [1, 0, 1, 2]
    assert class_codes(np.array([np.str_("x"), "y", 3], dtype=object), ["y", "x", 3]).tolist() == [1, 0, 2]
    assert class_codes(np.array([0, 1] * 5), [0, 1]).dtype == np.uint8
    with pytest.raises(KeyError):
        class_codes(np.array([0, 1, 1, 7]), [0, 1])
