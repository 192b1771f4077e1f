"""The metrics of a classifier or a regressor, with their names and directions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

CLASSIFICATION = "classification"


REGRESSION = "regression"


TASKS = (CLASSIFICATION, REGRESSION)


# Metric names, in display order. Binary problems add the positive-class metrics.
CLASSIFICATION_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
)


BINARY_METRICS = ("precision", "recall", "f1")


REGRESSION_METRICS = ("mse", "rmse", "mae", "r2", "median_absolute_error")


# Direction of every metric: the blessing gate and drift monitoring compare metrics by it.
LOWER_IS_BETTER = frozenset({"log_loss", "mse", "rmse", "mae", "median_absolute_error"})


HIGHER_IS_BETTER = (
    frozenset((*CLASSIFICATION_METRICS, *BINARY_METRICS, *REGRESSION_METRICS)) - LOWER_IS_BETTER
)


PRIMARY_METRIC = {CLASSIFICATION: "f1_macro", REGRESSION: "rmse"}


# The KFP UI draws the ROC curve from one metadata entry per point; more than this only slows it.
MAX_ROC_POINTS = 200


def _key(value: Any) -> Any:
    value = _native(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def classification_metrics(
    y_true: Sequence[Any], y_pred: Sequence[Any], proba: np.ndarray | None, classes: Sequence[Any]
) -> dict[str, float | None]:
    """Classification metrics of labels ``y_true`` and ``y_pred`` (values of ``classes``) and class
    probabilities ``proba`` (columns in ``classes`` order, or None); undefined metrics are None."""
    classes = list(classes)
    return _classification_metrics(
        class_codes(np.asarray(y_true, dtype=object), classes),
        class_codes(np.asarray(y_pred, dtype=object), classes),
        proba,
        len(classes),
    )


def _classification_metrics(
    true_codes: np.ndarray, pred_codes: np.ndarray, proba: np.ndarray | None, n_classes: int
) -> dict[str, float | None]:
    # Metrics run on class codes 0..n-1, so labels of any type (and mixed int/str) work alike.
    from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support

    metrics: dict[str, float | None] = {"accuracy": float(accuracy_score(true_codes, pred_codes))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            true_codes, pred_codes, average=average, zero_division=0
        )
        metrics[f"precision_{average}"] = float(precision)
        metrics[f"recall_{average}"] = float(recall)
        metrics[f"f1_{average}"] = float(f1)
    if n_classes == 2:
        metrics.update(_positive_class_metrics(true_codes == 1, pred_codes == 1))
    if proba is None:
        metrics["roc_auc"] = None
        metrics["log_loss"] = None
        return metrics
    metrics["roc_auc"] = _roc_auc(true_codes, proba, n_classes)
    metrics["log_loss"] = float(log_loss(true_codes, proba, labels=list(range(n_classes))))
    return metrics


def _positive_class_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    true_positives = int(np.sum(actual & predicted))
    precision = true_positives / predicted.sum() if predicted.any() else None
    recall = true_positives / actual.sum() if actual.any() else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "precision": None if precision is None else float(precision),
        "recall": None if recall is None else float(recall),
        "f1": None if f1 is None else float(f1),
    }


def _roc_auc(true_codes: np.ndarray, proba: np.ndarray, n_classes: int) -> float | None:
    """Binary: ROC-AUC of the positive class. Multiclass: one-vs-rest, macro-averaged over the
    classes present (which equals scikit-learn's ``multi_class="ovr"`` when all are present).
    None when fewer than two classes are present."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(true_codes)
    if len(present) < 2:
        return None
    if n_classes == 2:
        return float(roc_auc_score(true_codes == 1, proba[:, 1]))
    return float(np.mean([roc_auc_score(true_codes == code, proba[:, code]) for code in present]))


# Values coded at a time: pandas' hash tables are sized by the values they are given.
_CODE_CHUNK_ROWS = 1 << 20


def class_codes(y: Any, classes: list[Any]) -> np.ndarray:
    """Each label's position in ``classes`` (the codes every metric here runs on), in the narrowest
    integer type; a KeyError names a label not in ``classes``.

    Labels are matched as ``_key`` makes them (1 and 1.0, np.str_ and str are one class), once per
    distinct value: a Python lookup per row held a boxed object for each of 10M test rows."""
    values = np.asarray(y)
    index = {_key(c): i for i, c in enumerate(classes)}
    codes = np.empty(len(values), dtype=np.min_scalar_type(max(len(classes) - 1, 0)))
    for start in range(0, len(values), _CODE_CHUNK_ROWS):
        chunk = values[start : start + _CODE_CHUNK_ROWS]
        position, distinct = pd.factorize(chunk, use_na_sentinel=False)
        code_of = np.array([index[_key(v)] for v in distinct], dtype=codes.dtype)
        codes[start : start + len(chunk)] = code_of[position]
    return codes


def distinct_labels(y: Any) -> list[Any]:
    """The distinct values of ``y`` (as ``pd.unique``), found a chunk at a time."""
    values = np.asarray(y)
    seen = [pd.unique(values[s : s + _CODE_CHUNK_ROWS]) for s in range(0, len(values), _CODE_CHUNK_ROWS)]
    return list(pd.unique(np.concatenate(seen))) if seen else []


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """Regression metrics; R² is None on fewer than two rows or a constant actual value."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, median_absolute_error, r2_score

    mse = float(mean_squared_error(y_true, y_pred))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        # R² compares with the variance of the actual values: undefined when they are constant.
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) >= 2 and np.ptp(y_true) > 0 else None,
        "median_absolute_error": float(median_absolute_error(y_true, y_pred)),
    }


def _confusion(true_codes: np.ndarray, pred_codes: np.ndarray, classes: Sequence[Any]) -> dict[str, Any]:
    """Rows are actual classes, columns predicted classes, both in the model's class order."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(true_codes, pred_codes, labels=list(range(len(classes))))
    return {"labels": [_native(c) for c in classes], "matrix": matrix.astype(int).tolist()}


def _roc(true_codes: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> dict[str, Any] | None:
    """The ROC curve (binary: positive class; multiclass: micro-averaged one-vs-rest), downsampled
    to at most MAX_ROC_POINTS points; None when the test data has a single class."""
    from sklearn.metrics import roc_curve

    if len(np.unique(true_codes)) < 2:
        return None
    if len(classes) == 2:
        actual = (true_codes == 1).astype(int)
        scores = proba[:, 1]
        kind, positive = "binary", _native(classes[1])
    else:
        actual = (true_codes[:, None] == np.arange(len(classes))[None, :]).astype(int).ravel()
        scores = proba.ravel()
        kind, positive = "micro-average one-vs-rest", None
    fpr, tpr, thresholds = roc_curve(actual, scores)
    # The first threshold is +inf (nothing predicted positive), which JSON cannot hold.
    finite = thresholds[np.isfinite(thresholds)]
    ceiling = np.nextafter(finite.max(), np.inf) if len(finite) else 1.0
    thresholds = np.where(np.isfinite(thresholds), thresholds, ceiling)
    keep = _downsample(len(fpr), MAX_ROC_POINTS)
    return {
        "kind": kind,
        "positive_class": positive,
        "fpr": [float(v) for v in fpr[keep]],
        "tpr": [float(v) for v in tpr[keep]],
        "thresholds": [float(v) for v in thresholds[keep]],
    }


def _downsample(length: int, limit: int) -> np.ndarray:
    """Evenly spread indices that keep the first and last point."""
    if length <= limit:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, limit)).astype(int))
