"""How much of a candidate's shortfall against the quality floor the test split's noise explains.

On a small test split one row moves a metric by more than the floor's tolerance: on 69 penguins,
one row more or less right moves f1_macro by 1.5 points, so a candidate and the default boosting
that differ by one row's prediction would be judged by chance. The gate therefore resamples the
test rows (a paired bootstrap: the candidate and the baseline scored on the same resamples, with
Poisson(1) row weights) and refuses a candidate only when it misses the floor on at least
``floor_confidence`` of them; a miss inside that noise passes, and the check says so. On a large
split the resamples agree and the plain tolerance decides alone.

Only a miss pays for this: the resamples are drawn when the gated check would otherwise fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.evaluate.metrics import class_codes

# Enough resamples for a 95% one-sided quantile to move by well under its own width between seeds.
RESAMPLES = 400

# The resamples draw from at most this many test rows; the spread they give is narrowed to the
# whole split's by sqrt(rows drawn from / test rows), as a mean's standard error shrinks.
RESAMPLED_ROWS = 20_000

# Metrics computed from the (weighted) confusion matrix.
_LABEL_METRICS = frozenset(
    {"accuracy", "balanced_accuracy", "f1", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"}
)


@dataclass(frozen=True)
class PairedBootstrap:
    """A metric of the candidate and of a baseline on the same resamples of the test rows.

    candidate, baseline: the metric on each resample. candidate_sample, baseline_sample: on the
    rows resampled (every weight 1). scale: sqrt(rows resampled / rows of the test split): the
    spread of a sample of a larger split shrinks to the whole split's.
    """

    metric: str
    rows: int
    candidate: np.ndarray
    baseline: np.ndarray
    candidate_sample: float
    baseline_sample: float
    scale: float

    def margin_bound(
        self, candidate: float, baseline: float, tolerance: float, higher: bool, confidence: float
    ) -> float:
        """How far above the floor the candidate could be at ``confidence`` (one-sided), given its
        value and the baseline's on the whole split: negative means it misses the floor beyond noise."""
        sign = 1.0 if higher else -1.0
        observed = sign * (candidate - baseline) + tolerance * abs(baseline)
        resampled = sign * (self.candidate - self.baseline) + tolerance * np.abs(self.baseline)
        at_sample = sign * (self.candidate_sample - self.baseline_sample) + tolerance * abs(
            self.baseline_sample
        )
        spread = np.quantile(resampled[np.isfinite(resampled)] - at_sample, confidence)
        return float(observed + spread * self.scale)


def paired_bootstrap(
    metric: str,
    task: str,
    y_true: np.ndarray,
    candidate: tuple[np.ndarray, np.ndarray | None],
    baseline: tuple[np.ndarray, np.ndarray | None],
    classes: Sequence[Any] | None,
    *,
    total_rows: int,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> PairedBootstrap:
    """Score both models' (predictions, probabilities) on ``resamples`` Poisson-weighted
    resamples of the rows of ``y_true``, which are a sample of ``total_rows`` test rows."""
    rows = len(y_true)
    if task == "classification":
        known = list(classes or [])
        truth = class_codes(np.asarray(y_true, dtype=object), known)
        scored = [
            (class_codes(np.asarray(p, dtype=object), known), proba) for p, proba in (candidate, baseline)
        ]
        size = len(known)
    else:
        truth = np.asarray(y_true, dtype=float)
        scored = [(np.asarray(pred, dtype=float), None) for pred, _ in (candidate, baseline)]
        size = 0
    rng = np.random.default_rng(seed)
    values = np.empty((2, resamples))
    for draw in range(resamples):
        weights = rng.poisson(1.0, size=rows).astype(float)
        for which, (pred, proba) in enumerate(scored):
            values[which, draw] = weighted_metric(metric, truth, pred, proba, weights, size)
    ones = np.ones(rows)
    return PairedBootstrap(
        metric=metric,
        rows=rows,
        candidate=values[0],
        baseline=values[1],
        candidate_sample=weighted_metric(metric, truth, scored[0][0], scored[0][1], ones, size),
        baseline_sample=weighted_metric(metric, truth, scored[1][0], scored[1][1], ones, size),
        scale=math.sqrt(rows / total_rows) if total_rows > rows else 1.0,
    )


def weighted_metric(
    metric: str,
    truth: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    weights: np.ndarray,
    n_classes: int,
) -> float:
    """``metric`` (evaluate's name) with each row counted ``weights`` times; with every weight 1,
    evaluate's own value. Classification takes class codes 0..n_classes-1; NaN when undefined."""
    if weights.sum() <= 0:
        return math.nan
    if metric in _LABEL_METRICS:
        return _label_metric(metric, truth, pred, weights, n_classes)
    if metric == "log_loss":
        if proba is None:
            return math.nan
        eps = np.finfo(proba.dtype).eps
        picked = np.clip(proba[np.arange(len(truth)), truth], eps, 1.0)
        return float(np.average(-np.log(picked), weights=weights))
    if metric == "roc_auc":
        return _roc_auc(truth, proba, weights, n_classes)
    return _regression_metric(metric, truth, pred, weights)


def _label_metric(metric: str, truth: np.ndarray, pred: np.ndarray, weights: np.ndarray, k: int) -> float:
    matrix = np.bincount(truth * k + pred, weights=weights, minlength=k * k).reshape(k, k)
    hits = np.diag(matrix)
    actual, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    if metric == "accuracy":
        return float(hits.sum() / matrix.sum())
    # scikit-learn averages over the labels that occur, as truth or as prediction.
    present = (actual + predicted) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(actual > 0, hits / actual, 0.0)
        f1 = np.where(actual + predicted > 0, 2 * hits / (actual + predicted), 0.0)
    if metric == "f1":
        return float(f1[1]) if k == 2 else math.nan
    if metric == "balanced_accuracy":
        return float(recall[actual > 0].mean())
    if metric == "f1_weighted":
        return float(np.average(f1, weights=actual)) if actual.sum() else math.nan
    chosen = {"f1_macro": f1, "precision_macro": precision, "recall_macro": recall}[metric]
    return float(chosen[present].mean())


def _roc_auc(truth: np.ndarray, proba: np.ndarray | None, weights: np.ndarray, k: int) -> float:
    """evaluate's ROC-AUC (binary: the positive class; else one-vs-rest over the classes present,
    macro-averaged) with weighted rows."""
    if proba is None:
        return math.nan
    present = np.unique(truth[weights > 0])
    if len(present) < 2:
        return math.nan
    if k == 2:
        return _weighted_auc(truth == 1, proba[:, 1], weights)
    return float(np.mean([_weighted_auc(truth == c, proba[:, c], weights) for c in present]))


def _weighted_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    # The share of (positive, negative) pairs the score orders right, ties counting half: per
    # distinct score, its positives against the negatives below it. O(n) after the sort, where
    # scikit-learn's roc_auc_score built a whole curve per resample (100x slower here).
    levels, group = np.unique(score, return_inverse=True)
    pos = np.bincount(group, weights=weights * positive, minlength=len(levels))
    neg = np.bincount(group, weights=weights * ~positive, minlength=len(levels))
    below = np.cumsum(neg) - neg
    pairs = pos.sum() * neg.sum()
    return float(np.sum(pos * (below + 0.5 * neg)) / pairs) if pairs > 0 else math.nan


def _regression_metric(metric: str, truth: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> float:
    errors = truth - pred
    if metric in ("mse", "rmse"):
        mse = float(np.average(errors**2, weights=weights))
        return math.sqrt(mse) if metric == "rmse" else mse
    if metric == "mae":
        return float(np.average(np.abs(errors), weights=weights))
    if metric == "median_absolute_error":
        # The median of the rows repeated by their (whole) weights, as numpy takes it: the mean of
        # the two middle values of an even count.
        order = np.argsort(np.abs(errors))
        sorted_errors, cumulative = np.abs(errors)[order], np.cumsum(weights[order])
        total = round(float(cumulative[-1]))
        low, high = np.searchsorted(cumulative, [(total - 1) // 2, total // 2], side="right")
        return float((sorted_errors[low] + sorted_errors[high]) / 2)
    if metric == "r2":
        centre = np.average(truth, weights=weights)
        total = float(np.sum(weights * (truth - centre) ** 2))
        return 1.0 - float(np.sum(weights * errors**2)) / total if total > 0 else math.nan
    raise ValueError(f"no weighted form of metric {metric!r}")


def floor_resampler(
    model: Any,
    baselines: Callable[[], Mapping[str, Any]],
    rows: pd.DataFrame,
    label_column: str,
    task: str,
    classes: Sequence[Any] | None,
    input_columns: Sequence[str],
    total_rows: int,
) -> Callable[[str, str], PairedBootstrap | None]:
    """What the quality floor calls on a miss: the candidate's and the named baseline's metric on
    paired resamples of ``rows`` (the test split, or a sample of its ``total_rows``). ``baselines``
    loads the fitted baselines by name, only then."""

    def resample(name: str, metric: str) -> PairedBootstrap | None:
        from mlstages.components.common.scoring import predict_frame

        baseline = baselines().get(name)
        if baseline is None or not len(rows):
            return None
        drawn = rows.iloc[:RESAMPLED_ROWS]  # rows is the split or already a seeded sample of it
        raw = drawn[list(input_columns)]
        probabilities = task == "classification"
        candidate = predict_frame(model, raw, probabilities)
        theirs = predict_frame(baseline, raw, probabilities)
        if probabilities:
            theirs = (theirs[0], _in_order(theirs[1], _fitted_classes(baseline), classes or []))
        return paired_bootstrap(
            metric,
            task,
            drawn[label_column].to_numpy(),
            candidate,
            theirs,
            classes,
            total_rows=total_rows,
        )

    return resample


def _fitted_classes(model: Any) -> list[Any]:
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return list(final.classes_)


def _in_order(proba: np.ndarray | None, fitted: Sequence[Any], classes: Sequence[Any]) -> np.ndarray | None:
    """A baseline's class probabilities with columns in the candidate's class order (a class the
    baseline never saw gets 0)."""
    if proba is None:
        return None
    ordered = np.zeros((len(proba), len(classes)))
    ordered[:, class_codes(np.asarray(fitted, dtype=object), list(classes))] = proba
    return ordered
