"""The quality floor judged against the test split's noise: a one-row miss on a small split passes
and says why, a real shortfall on a large split is refused, and the weighted metrics the resamples
use are evaluate's own metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlstages.components.common.errors import ParameterError
from mlstages.components.evaluate.evaluate import EvaluationResult
from mlstages.components.evaluate.metrics import class_codes, classification_metrics, regression_metrics
from mlstages.components.validate_model.floor import floor_checks
from mlstages.components.validate_model.floor_noise import (
    floor_resampler,
    paired_bootstrap,
    weighted_metric,
)
from mlstages.components.validate_model.thresholds import FAILED, PASSED, BlessingConfig

CLASSES = ["a", "b", "c"]
LABEL_METRICS = ["accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"]


def config(task: str = "classification", **settings) -> BlessingConfig:
    return BlessingConfig(
        "y", task, thresholds={"accuracy" if task == "classification" else "r2": {"min": 0.0}}, **settings
    )


def classification_case(rows: int, wrong_share: float, seed: int):
    """Labels, and predictions right except for ``wrong_share`` of the rows, with probabilities."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(CLASSES, size=rows)
    pred = truth.copy()
    wrong = rng.random(rows) < wrong_share
    pred[wrong] = rng.choice(CLASSES, size=int(wrong.sum()))
    proba = rng.dirichlet(np.ones(3), size=rows)
    proba[np.arange(rows), class_codes(pred.astype(object), CLASSES)] += 1.0
    return truth, pred, proba / proba.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_unit_weights_give_evaluates_metrics(seed):
    truth, pred, proba = classification_case(500, 0.3, seed)
    expected = classification_metrics(truth, pred, proba, CLASSES)
    codes, pred_codes = class_codes(truth.astype(object), CLASSES), class_codes(pred.astype(object), CLASSES)
    ones = np.ones(len(truth))
    for metric in [*LABEL_METRICS, "log_loss", "roc_auc"]:
        assert weighted_metric(metric, codes, pred_codes, proba, ones, 3) == pytest.approx(
            expected[metric]
        ), metric
    binary = np.array([0, 1, 1, 0, 1, 1, 0, 0, 1, 1])
    guesses = np.array([0, 1, 0, 0, 1, 1, 1, 0, 1, 0])
    both = classification_metrics(binary, guesses, None, [0, 1])
    assert weighted_metric("f1", binary, guesses, None, np.ones(10), 2) == pytest.approx(both["f1"])
    rng = np.random.default_rng(seed)
    y, estimate = rng.normal(size=300), rng.normal(size=300)
    for metric, value in regression_metrics(y, estimate).items():
        assert weighted_metric(metric, y, estimate, None, np.ones(300), 0) == pytest.approx(value), metric


def test_a_weight_counts_a_row_that_many_times():
    truth, pred, proba = classification_case(300, 0.4, 3)
    codes, pred_codes = class_codes(truth.astype(object), CLASSES), class_codes(pred.astype(object), CLASSES)
    weights = np.random.default_rng(3).poisson(1.0, size=300)
    repeated = np.repeat(np.arange(300), weights)
    expected = classification_metrics(truth[repeated], pred[repeated], proba[repeated], CLASSES)
    for metric in [*LABEL_METRICS, "log_loss", "roc_auc"]:
        got = weighted_metric(metric, codes, pred_codes, proba, weights.astype(float), 3)
        assert got == pytest.approx(expected[metric]), metric
    y, estimate = np.arange(300.0), np.arange(300.0)[::-1] * 0.5
    expected = regression_metrics(y[repeated], estimate[repeated])
    for metric in ("rmse", "mae", "r2", "median_absolute_error"):
        assert weighted_metric(metric, y, estimate, None, weights.astype(float), 0) == pytest.approx(
            expected[metric]
        )


def _floor(rows: int, candidate_wrong: float, baseline_wrong: float, **settings):
    """The gated floor check of a candidate and a baseline with the given error shares."""
    truth, baseline_pred, baseline_proba = classification_case(rows, baseline_wrong, seed=7)
    _, candidate_pred, candidate_proba = classification_case(rows, candidate_wrong, seed=8)
    # The candidate's mistakes are its own rows, the truth is shared.
    candidate_pred = np.where(np.random.default_rng(9).random(rows) < candidate_wrong, candidate_pred, truth)
    value = classification_metrics(truth, candidate_pred, None, CLASSES)["f1_macro"]
    reference = classification_metrics(truth, baseline_pred, None, CLASSES)["f1_macro"]
    evaluation = EvaluationResult(
        task="classification",
        label_column="y",
        rows=rows,
        metrics={"f1_macro": value},
        baselines={"default_gradient_boosting": {"f1_macro": reference}},
    )
    calls = []

    def resample(name, metric):
        calls.append((name, metric))
        return paired_bootstrap(
            metric,
            "classification",
            truth,
            (candidate_pred, candidate_proba),
            (baseline_pred, baseline_proba),
            CLASSES,
            total_rows=rows,
        )

    (check,) = floor_checks(evaluation, "f1_macro", config(**settings), resample)
    return check, value, reference, calls


def test_a_miss_the_small_test_splits_noise_explains_passes_and_says_so():
    check, value, reference, calls = _floor(69, candidate_wrong=0.06, baseline_wrong=0.03)
    assert value < reference * 0.99  # a miss by the tolerance alone
    assert check.status == PASSED and calls == [("default_gradient_boosting", "f1_macro")]
    assert "misses the floor" in check.message and "within the test split's noise" in check.message
    assert "69 test rows" in check.message and "floor_confidence=0.95" in check.message
    strict, *_ = _floor(69, candidate_wrong=0.06, baseline_wrong=0.03, floor_confidence=0.0)
    assert strict.status == FAILED and "noise" not in strict.message


def test_the_same_shortfall_on_a_large_split_is_refused_beyond_the_noise():
    check, value, reference, _ = _floor(20_000, candidate_wrong=0.06, baseline_wrong=0.03)
    assert value < reference * 0.99
    assert check.status == FAILED
    assert "beyond the test split's noise" in check.message and "quality_floor='none'" in check.message


def test_a_candidate_meeting_the_floor_draws_no_resamples():
    check, _, _, calls = _floor(69, candidate_wrong=0.0, baseline_wrong=0.03)
    assert check.status == PASSED and calls == []


def test_a_sample_of_a_larger_split_narrows_to_the_whole_split():
    truth, pred, proba = classification_case(1_000, 0.1, 1)
    _, other, other_proba = classification_case(1_000, 0.1, 2)
    whole = paired_bootstrap(
        "accuracy", "classification", truth, (pred, proba), (other, other_proba), CLASSES, total_rows=1_000
    )
    sampled = paired_bootstrap(
        "accuracy", "classification", truth, (pred, proba), (other, other_proba), CLASSES, total_rows=100_000
    )
    assert whole.scale == 1.0 and sampled.scale == pytest.approx(0.1)
    wide = whole.margin_bound(0.9, 0.9, 0.0, True, 0.95)
    narrow = sampled.margin_bound(0.9, 0.9, 0.0, True, 0.95)
    assert 0 < narrow < wide and narrow == pytest.approx(wide * 0.1)


def test_the_resampler_scores_the_fitted_models_on_raw_rows():
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"x": rng.normal(size=80), "z": rng.normal(size=80)})
    rows["y"] = np.where(rows["x"] + 0.3 * rng.normal(size=80) > 0, "yes", "no")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(rows[["x", "z"]], rows["y"])
    dummy = make_pipeline(DummyClassifier()).fit(rows[["x", "z"]], rows["y"])
    loaded = []

    def baselines():
        loaded.append(True)
        return {"dummy": dummy}

    resample = floor_resampler(model, baselines, rows, "y", "classification", ["no", "yes"], ["x", "z"], 80)
    assert loaded == []  # nothing is loaded until a miss asks
    drawn = resample("dummy", "f1_macro")
    assert drawn is not None and drawn.candidate_sample > drawn.baseline_sample
    assert resample("default_gradient_boosting", "f1_macro") is None


@pytest.mark.parametrize("value", [-0.1, 1.0, "0.9", float("nan")])
def test_floor_confidence_is_checked(value):
    with pytest.raises(ParameterError, match="parameter floor_confidence=.* must be a number in \\[0, 1\\)"):
        config(floor_confidence=value)


def test_every_metric_the_floor_can_gate_has_a_weighted_form():
    from mlstages.components.evaluate.metrics import PRIMARY_METRIC
    from mlstages.components.validate_model.floor import _SCORER_METRICS

    truth, pred, proba = classification_case(200, 0.2, 0)
    codes, pred_codes = class_codes(truth.astype(object), CLASSES), class_codes(pred.astype(object), CLASSES)
    y = np.arange(200.0)
    for metric in {*_SCORER_METRICS.values(), *PRIMARY_METRIC.values()}:
        if metric in ("mse", "rmse", "mae", "median_absolute_error", "r2"):
            value = weighted_metric(metric, y, y[::-1], None, np.ones(200), 0)
        else:
            value = weighted_metric(metric, codes, pred_codes, proba, np.ones(200), 3)
        assert np.isfinite(value) or metric == "f1", metric  # f1 is the positive class's: binary only
