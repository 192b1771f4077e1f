"""Drift monitoring: a window of current data against the training reference, and a retrain decision.

Each model input column of the reference is compared with the same column of the current window by
a test chosen from its type and the sample sizes, as Evidently's DataDriftPreset chooses by default:

==============  =================================================  ========================  =========
column          test                                               score                     drift when
==============  =================================================  ========================  =========
numeric         Kolmogorov-Smirnov (``ks``)                        p-value                   p < 0.05
numeric         Wasserstein distance normed by the training std    distance                  >= 0.1
                (``wasserstein``)
categorical     chi-squared test of homogeneity (``chisquare``)    p-value                   p < 0.05
categorical     two-proportion Z-test (``z``)                      p-value                   p < 0.05
categorical     Jensen-Shannon distance, natural log                distance                  >= 0.1
                (``jensenshannon``)
either          population stability index (``psi``)               index                     >= 0.2
==============  =================================================  ========================  =========

The automatic choice ("auto"): when either sample has at most 1,000 values, a test with a p-value
(numeric: KS; categorical: Z-test for two categories, chi-squared for more); otherwise a distance
(numeric: Wasserstein; categorical: Jensen-Shannon). A numeric column whose training data had at most
5 distinct values (and the current window adds none beyond 5) is compared as categories, as
Evidently does. One difference from Evidently, which decides by the reference size alone: a small
current window also selects the p-value tests, because the distances have no sample-size
correction and their noise on a few hundred rows reaches the thresholds (a false alarm every
window), while a p-value test keeps its 5% false-positive rate at any size.

Binned tests (PSI, Jensen-Shannon) on numeric columns use the reference's quantile bins (deciles by
default) with the counts of ALL training values; a column with at most 20 distinct training values
is binned by value. PSI's threshold is 0.2: by the usual reading PSI < 0.1 is stable, 0.1-0.25 a
moderate shift, > 0.25 a major one, and its sampling bias on B bins is about (B - 1)(1/n + 1/m),
0.045 for deciles and a 200-row window, which a threshold of 0.1 would leave too little room.
An empty bin counts as a share of 0.0001 in PSI, so that the logarithm is defined (as Evidently).

The sample sizes are explicit: categorical tests use the counts of all training rows; KS and
Wasserstein use the reference's stratified sample of at most 5,000 values (every value when the
training data had fewer), and the KS p-value is computed with the sample size actually used, which
is conservative when the sample is smaller than the training data. Every feature's result records
``reference_n`` and ``current_n`` and says which it used.

What is drift besides a test: a reference column missing from the window ("column missing"); a
column whose values are all missing now ("all values missing"); a numeric column holding values
that are not numbers ("type changed"); a missing share that rose by more than
``max_missing_increase``. New categories are their own bins in the tests and are named in the report;
columns the reference does not know are listed. An empty window is an error.

The window drifts (dataset drift) when the share of drifted features is at least ``drift_share``
(0.5, as Evidently). When the window has labels and a model is given, the model's metrics on the
labelled rows (the evaluate stage's functions) are compared with the reference's test-set metrics; a
relative drop beyond ``max_metric_drop`` is performance decay. ``retrain_on`` says which of the two
trigger retraining; the decision comes with its reasons.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError, MlstagesError, ParameterError, require_choice
from mlstages.components.common.reference import (
    CATEGORICAL_KIND,
    NUMERIC_KIND,
    OTHER,
    bin_counts_sorted,
    category_counts,
    category_key,
    finite_values,
    float_values,
    value_counts_sorted,
)

KS = "ks"
WASSERSTEIN = "wasserstein"
CHISQUARE = "chisquare"
Z_TEST = "z"
JENSEN_SHANNON = "jensenshannon"
PSI = "psi"
METHODS = (KS, WASSERSTEIN, CHISQUARE, Z_TEST, JENSEN_SHANNON, PSI)
AUTO = "auto"
# Tests whose score is a p-value (drift when below the threshold); the others are distances
# (drift when at or above it).
P_VALUE_METHODS = frozenset({KS, CHISQUARE, Z_TEST})
DEFAULT_THRESHOLDS = {
    KS: 0.05,
    CHISQUARE: 0.05,
    Z_TEST: 0.05,
    WASSERSTEIN: 0.1,
    JENSEN_SHANNON: 0.1,
    PSI: 0.2,
}
METHOD_NAMES = {
    KS: "Kolmogorov-Smirnov p-value",
    WASSERSTEIN: "Wasserstein distance (normed)",
    CHISQUARE: "chi-squared p-value",
    Z_TEST: "Z-test p-value",
    JENSEN_SHANNON: "Jensen-Shannon distance",
    PSI: "PSI",
}
# Tests on values (the reference's sample); the others run on counts per category or bin.
VALUE_METHODS = frozenset({KS, WASSERSTEIN})
# At most this many values in either sample selects the p-value tests (Evidently's 1,000).
SMALL_SAMPLE = 1000
# A numeric column with at most this many distinct values (training and current together) is
# compared as categories, as Evidently does.
MAX_VALUES_AS_CATEGORIES = 5
PSI_EMPTY_SHARE = 1e-4
# Beyond this many distinct new values in a numeric column binned by value, the new ones share a bin.
MAX_NEW_VALUE_BINS = 1000
NEW_VALUES = "(new values)"
# Categories drawn in a feature's plot; the rest are summed into one bar.
PLOT_CATEGORIES = 10
MAX_NAMES_SHOWN = 10
# p-values are floored here before the log in the severity.
_TINY_P = 1e-300

RETRAIN_ON = ("drift_or_decay", "drift", "decay", "drift_and_decay")
LOWER_IS_BETTER = frozenset({"log_loss", "mse", "rmse", "mae", "median_absolute_error"})

# Feature statuses.
TESTED = "tested"
COLUMN_MISSING = "column missing"
ALL_MISSING = "all values missing"
TYPE_CHANGED = "type changed"
NO_TRAINING_VALUES = "no training values"
NOT_TESTED = "not tested"


# --- the statistical tests: pure functions of values or counts -----------------------------------


def ks_test(reference_values: np.ndarray, current_values: np.ndarray) -> tuple[float, float]:
    """Two-sample two-sided Kolmogorov-Smirnov test: (statistic D, p-value).

    The same as ``scipy.stats.ks_2samp(reference_values, current_values)`` (method "auto"): its
    exact distribution when both samples have at most 10,000 values, else Smirnov's asymptotic
    one, ``kstwo.sf(D, round(n m / (n + m)))``; there D is computed here from the sorted samples
    without scipy's sort of the concatenated data, which is what makes a million-row window fast.
    """
    return _ks_sorted(_sorted(reference_values), _sorted(current_values))


def _sorted(values: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=float))


def _ks_sorted(u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    n, m = len(u), len(v)
    if n == 0 or m == 0:
        raise InputDataError("the Kolmogorov-Smirnov test needs values in both samples")
    if max(n, m) <= 10_000:
        result = stats.ks_2samp(u, v)
        return float(result.statistic), float(result.pvalue)
    # D = sup |F_u - F_v|, reached at a data point; evaluate both CDFs at every distinct value.
    u_values, u_counts = value_counts_sorted(u)
    v_values, v_counts = value_counts_sorted(v)
    at_u = np.abs(np.cumsum(u_counts) / n - np.searchsorted(v, u_values, side="right") / m)
    at_v = np.abs(np.searchsorted(u, v_values, side="right") / n - np.cumsum(v_counts) / m)
    d = float(max(at_u.max(), at_v.max()))
    big, small = max(n, m), min(n, m)
    p_value = float(stats.kstwo.sf(d, np.round(big * small / (big + small))))
    return d, min(max(p_value, 0.0), 1.0)


def wasserstein_distance(u: np.ndarray, v: np.ndarray) -> float:
    """The first Wasserstein distance between two samples: ``scipy.stats.wasserstein_distance``.

    Computed as the integral of |F_u^-1(t) - F_v^-1(t)| over t in [0, 1] on the merged grid of both
    quantile steps (integers on the scale n m, so the grid is exact), which needs each sample sorted
    once rather than an argsort of their concatenation.
    """
    return _wasserstein_sorted(_sorted(u), _sorted(v))


def _wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    if len(u) == 0 or len(v) == 0:
        raise InputDataError("the Wasserstein distance needs values in both samples")
    if len(u) > len(v):
        u, v = v, u
    n, m = len(u), len(v)  # n <= m: at most one step of u falls inside each step of v
    # On the scale n m, step j of v covers [j n, (j + 1) n) and step i of u covers [i m, (i + 1) m).
    # Step j of v starts inside step (j n) // m of u; u's step i starts as many v steps as there
    # are multiples of n in [i m, (i + 1) m).
    starts = -((-np.arange(n + 1, dtype=np.int64) * m) // n)  # ceil(i m / n)
    u_at_start = np.repeat(u, np.diff(starts))
    total = float(n) * float(np.abs(v - u_at_start).sum())
    # Steps of v that a step boundary i m of u cuts in two: after the cut v_j pairs with u_i,
    # not u_(i-1).
    i = np.arange(1, n, dtype=np.int64)
    boundaries = i * m
    cut = boundaries % n != 0
    i, boundaries = i[cut], boundaries[cut]
    j = boundaries // n
    after = ((j + 1) * n - boundaries).astype(float)
    total += float(np.dot(after, np.abs(v[j] - u[i]) - np.abs(v[j] - u[i - 1])))
    return total / (n * m)


def wasserstein_normed(
    reference_values: np.ndarray, current_values: np.ndarray, reference_std: float
) -> float:
    """Wasserstein distance divided by the reference's standard deviation (at least 0.001, as
    Evidently), so that one threshold fits every scale."""
    return _wasserstein_sorted(_sorted(reference_values), _sorted(current_values)) / _norm(reference_std)


def _norm(reference_std: float) -> float:
    return max(float(reference_std), 0.001)


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        raise InputDataError("a binned test needs at least one value in each sample")
    return counts / total


def jensen_shannon(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Jensen-Shannon distance (natural log, so at most sqrt(ln 2) = 0.83) between two count or
    share vectors over the same bins: ``scipy.spatial.distance.jensenshannon``."""
    from scipy.spatial import distance

    return float(distance.jensenshannon(_shares(reference_counts), _shares(current_counts)))


def population_stability_index(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """PSI = sum over bins of (c - r) ln(c / r), shares r and c; an empty bin counts as 0.0001."""
    r = np.maximum(_shares(reference_counts), PSI_EMPTY_SHARE)
    c = np.maximum(_shares(current_counts), PSI_EMPTY_SHARE)
    return float(np.sum((c - r) * np.log(c / r)))


def _two_row_table(reference_counts: Sequence[float], current_counts: Sequence[float]) -> np.ndarray:
    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)])
    if table[0].sum() <= 0 or table[1].sum() <= 0:
        raise InputDataError("a test on counts needs at least one value in each sample")
    return table[:, table.sum(axis=0) > 0]


def chi_squared(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """p-value of the chi-squared test of homogeneity of two count vectors over the same
    categories (``scipy.stats.chi2_contingency`` on the 2 x k table, no continuity correction).

    A two-sample test: unlike a goodness-of-fit test against the reference shares, it treats the
    reference as a sample too, so a category the reference lacks does not make the p-value zero.
    """
    from scipy import stats

    table = _two_row_table(reference_counts, current_counts)
    if table.shape[1] < 2:
        return 1.0  # one category in both samples: nothing differs
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def proportion_z_test(
    reference_counts: Sequence[float], current_counts: Sequence[float], category: int = 0
) -> float:
    """Two-sided p-value of the pooled two-proportion Z-test on the share of ``category`` (an index
    into the count vectors) against all the others."""
    from scipy import stats

    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(current_counts, dtype=float)])
    n, m = table[0].sum(), table[1].sum()
    if n <= 0 or m <= 0:
        raise InputDataError("the Z-test needs at least one value in each sample")
    p1, p2 = table[0, category] / n, table[1, category] / m
    pooled = (table[0, category] + table[1, category]) / (n + m)
    if pooled <= 0 or pooled >= 1:
        return 1.0  # the category is in every row of both samples, or in none
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    return float(2 * stats.norm.sf(abs(z)))


def severity(method: str, score: float, threshold: float) -> float:
    """How far a score is towards (1.0) or past (> 1) its threshold, comparable across tests:
    distances score / threshold; p-values log(p) / log(threshold)."""
    if method in P_VALUE_METHODS:
        return abs(math.log(min(max(score, _TINY_P), 1.0)) / math.log(threshold))
    return score / threshold


def is_drift(method: str, score: float, threshold: float) -> bool:
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


# --- configuration ------------------------------------------------------------------------------


def _check_threshold(where: str, method: str | None, threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ParameterError(f"{where}: threshold {threshold!r} must be a number")
    if threshold <= 0 or (method in P_VALUE_METHODS and threshold >= 1):
        bound = "between 0 and 1 (a p-value)" if method in P_VALUE_METHODS else "greater than 0"
        raise ParameterError(f"{where}: threshold {threshold!r} must be {bound}")
    return float(threshold)


@dataclass(frozen=True)
class FeatureRule:
    """A per-feature override: the test and/or its threshold (None: chosen automatically)."""

    method: str = AUTO
    threshold: float | None = None


@dataclass(frozen=True)
class DriftConfig:
    """How monitor_drift decides.

    drift_share: the window drifts when at least this share of the checked features drifted.
    method: "auto" or one test for every feature it applies to (the others stay "auto").
    feature_thresholds: feature -> {"method": ..., "threshold": ...}, either key optional.
    retrain_on: drift_or_decay, drift, decay or drift_and_decay.
    max_metric_drop: the largest relative drop of a metric before it counts as decay: a number for
        the task's primary metric (f1_macro, rmse), or {metric: drop}.
    max_missing_increase: a feature also drifts when its missing share rose by more than this.
    label_column: the label in the current window; "" for the reference's.
    """

    drift_share: float = 0.5
    method: str = AUTO
    feature_thresholds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    retrain_on: str = "drift_or_decay"
    max_metric_drop: float | Mapping[str, float] = 0.05
    max_missing_increase: float = 0.1
    label_column: str = ""

    def __post_init__(self) -> None:
        if not _is_number(self.drift_share) or not 0 < self.drift_share <= 1:
            raise ParameterError(
                f"parameter drift_share={self.drift_share!r} must be greater than 0 and at most 1"
            )
        require_choice("method", self.method, (AUTO, *METHODS))
        require_choice("retrain_on", self.retrain_on, RETRAIN_ON)
        if not _is_number(self.max_missing_increase) or not 0 <= self.max_missing_increase <= 1:
            raise ParameterError(
                f"parameter max_missing_increase={self.max_missing_increase!r} must be between 0 and 1"
            )
        if not isinstance(self.feature_thresholds, Mapping):
            raise ParameterError(
                "parameter feature_thresholds must map feature names to "
                f'{{"method": ..., "threshold": ...}}, got {self.feature_thresholds!r}'
            )
        for name in self.feature_thresholds:
            self.rule(name)  # validates every entry now, before any data is read
        self.metric_drops()

    def rule(self, feature: str) -> FeatureRule:
        """The feature's override, or the global method with its default threshold."""
        entry = self.feature_thresholds.get(feature)
        if entry is None:
            return FeatureRule(method=self.method)
        where = f"parameter feature_thresholds[{feature!r}]"
        if not isinstance(entry, Mapping):
            raise ParameterError(f'{where} must be {{"method": ..., "threshold": ...}}, got {entry!r}')
        unknown = sorted(set(entry) - {"method", "threshold"})
        if unknown:
            raise ParameterError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; use method, threshold"
            )
        method = entry.get("method", self.method)
        require_choice(f"feature_thresholds[{feature!r}].method", method, (AUTO, *METHODS))
        threshold = entry.get("threshold")
        if threshold is not None:
            threshold = _check_threshold(where, None if method == AUTO else method, threshold)
        return FeatureRule(method=method, threshold=threshold)

    def metric_drops(self, task: str | None = None) -> dict[str, float]:
        """Metric -> the largest relative drop allowed (the primary metric of ``task`` for a number)."""
        from mlstages.components.evaluate.evaluate import (
            BINARY_METRICS,
            CLASSIFICATION_METRICS,
            PRIMARY_METRIC,
            REGRESSION_METRICS,
        )

        drops = self.max_metric_drop
        if not isinstance(drops, Mapping):
            if not _is_number(drops) or drops < 0:
                raise ParameterError(f"parameter max_metric_drop={drops!r} must be a number of at least 0")
            return {PRIMARY_METRIC[task]: float(drops)} if task in PRIMARY_METRIC else {}
        known = (*CLASSIFICATION_METRICS, *BINARY_METRICS, *REGRESSION_METRICS)
        for name, drop in drops.items():
            require_choice("max_metric_drop metric", name, known)
            if not _is_number(drop) or drop < 0:
                raise ParameterError(
                    f"parameter max_metric_drop[{name!r}]={drop!r} must be a number of at least 0"
                )
        return {str(name): float(drop) for name, drop in drops.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    """One column's comparison.

    score: the test's p-value or distance; severity: score relative to its threshold (>= 1 drifted
    by the test; see ``severity``); reference_n / current_n: the values the test used;
    basis: which reference data the test used; plot: bins with reference and current shares.
    """

    column: str
    type: str
    status: str
    drifted: bool
    method: str | None = None
    score: float | None = None
    threshold: float | None = None
    severity: float | None = None
    reference_n: int = 0
    current_n: int = 0
    reference_missing_share: float | None = None
    current_missing_share: float | None = None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_categories: list[str] = field(default_factory=list)
    plot: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "type": self.type,
            "status": self.status,
            "drifted": self.drifted,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "severity": self.severity,
            "reference_n": self.reference_n,
            "current_n": self.current_n,
            "reference_missing_share": self.reference_missing_share,
            "current_missing_share": self.current_missing_share,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "new_categories": list(self.new_categories),
            "plot": self.plot,
        }


@dataclass(frozen=True)
class PerformanceCheck:
    """The model on the labelled rows of the window against the reference's test-set metrics."""

    computed: bool
    message: str
    rows: int = 0
    task: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    reference_metrics: dict[str, float | None] = field(default_factory=dict)
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def decayed(self) -> list[dict[str, Any]]:
        return [c for c in self.comparisons if c["decayed"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "computed": self.computed,
            "message": self.message,
            "rows": self.rows,
            "task": self.task,
            "metrics": dict(self.metrics),
            "reference_metrics": dict(self.reference_metrics),
            "comparisons": [dict(c) for c in self.comparisons],
        }


@dataclass(frozen=True)
class DriftResult:
    rows: int
    reference_rows: int
    features: list[FeatureDrift]
    drift_share: float
    drift_share_threshold: float
    drifted_features: int
    features_checked: int
    dataset_drift: bool
    retrain: bool
    retrain_on: str
    reasons: list[str]
    new_columns: list[str] = field(default_factory=list)
    label: FeatureDrift | None = None
    performance: PerformanceCheck | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def worst(self) -> FeatureDrift | None:
        """The tested feature with the largest severity."""
        scored = [f for f in self.features if f.severity is not None]
        return max(scored, key=lambda f: f.severity) if scored else None

    @property
    def worst_score(self) -> float:
        worst = self.worst
        return 0.0 if worst is None else float(worst.severity)

    def metrics(self) -> dict[str, float]:
        """Flat metrics for the KFP UI (system.Metrics)."""
        values: dict[str, float] = {
            "drift_share": self.drift_share,
            "drifted_features": self.drifted_features,
            "features_checked": self.features_checked,
            "worst_score": self.worst_score,
            "dataset_drift": int(self.dataset_drift),
            "retrain": int(self.retrain),
            "current_rows": self.rows,
            "new_columns": len(self.new_columns),
        }
        if self.performance is not None and self.performance.computed:
            values["labelled_rows"] = self.performance.rows
            for name, value in self.performance.metrics.items():
                if value is not None:
                    values[f"current_{name}"] = value
        return values

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "retrain": self.retrain,
            "retrain_on": self.retrain_on,
            "reasons": list(self.reasons),
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drift_share_threshold": self.drift_share_threshold,
            "drifted_features": self.drifted_features,
            "features_checked": self.features_checked,
            "worst_feature": None if worst is None else worst.column,
            "worst_score": self.worst_score,
            "features": [f.to_dict() for f in self.features],
            "new_columns": list(self.new_columns),
            "label": None if self.label is None else self.label.to_dict(),
            "performance": None if self.performance is None else self.performance.to_dict(),
            "warnings": list(self.warnings),
        }


# --- comparing one column -----------------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f}%"


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    more = len(names) - MAX_NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass
class _Counts:
    """Aligned count vectors over the union of reference and current bins or categories."""

    labels: list[str]
    reference: np.ndarray
    current: np.ndarray
    new: list[str]


def _align_categories(
    reference_counts: Mapping[str, int], reference_other: int, current_counts: Mapping[str, int]
) -> _Counts:
    labels = list(reference_counts)
    known = set(labels)
    if reference_other:
        # The reference summed its rarest categories: a current category it does not list may be
        # one of them, so unlisted ones go to the same "(other)" bin and are not called new.
        other = sum(c for k, c in current_counts.items() if k not in known)
        return _Counts(
            labels=[*labels, OTHER],
            reference=np.array([*reference_counts.values(), reference_other], dtype=float),
            current=np.array([*(current_counts.get(k, 0) for k in labels), other], dtype=float),
            new=[],
        )
    new = [k for k in current_counts if k not in known]
    return _Counts(
        labels=labels + new,
        reference=np.array([*reference_counts.values(), *([0] * len(new))], dtype=float),
        current=np.array([current_counts.get(k, 0) for k in labels + new], dtype=float),
        new=new,
    )


def _numeric_value_counts(sorted_values: np.ndarray, reference_keys: set[str]) -> dict[str, int]:
    """Current value counts keyed like the reference's. With more than MAX_NEW_VALUE_BINS distinct
    values beyond the reference's, only the reference's values are counted one by one (looked up
    by value, not by keying every current value) and all the others share one bin."""
    values, counts = value_counts_sorted(sorted_values)
    if len(values) <= len(reference_keys) + MAX_NEW_VALUE_BINS:
        result: dict[str, int] = {}
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            key = category_key(value)
            result[key] = result.get(key, 0) + count
        return result
    keys = sorted(reference_keys)
    numbers = np.array([float(k) for k in keys])
    positions = np.minimum(np.searchsorted(values, numbers), len(values) - 1)
    found = values[positions] == numbers
    result = {
        k: int(counts[p]) for k, p, f in zip(keys, positions.tolist(), found.tolist(), strict=True) if f
    }
    pooled = int(counts.sum()) - sum(result.values())
    if pooled:
        result[NEW_VALUES] = pooled
    return result


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if len(edges) == 0:
        return ["all values"]
    shown = [f"{e:.4g}" for e in edges]
    labels = [f"< {shown[0]}"]
    labels += [f"{a} to < {b}" for a, b in itertools.pairwise(shown)]
    labels.append(f">= {shown[-1]}")
    return labels


def _plot(labels: list[str], reference: np.ndarray, current: np.ndarray, ordered: bool) -> dict[str, Any]:
    """Shares per bin for the report's chart; categories beyond PLOT_CATEGORIES are summed."""
    r = reference / reference.sum() if reference.sum() else reference
    c = current / current.sum() if current.sum() else current
    if not ordered and len(labels) > PLOT_CATEGORIES:
        order = np.argsort(-np.maximum(r, c), kind="stable")
        keep, rest = order[: PLOT_CATEGORIES - 1], order[PLOT_CATEGORIES - 1 :]
        labels = [labels[i] for i in keep] + [f"{len(rest)} others"]
        r = np.append(r[keep], r[rest].sum())
        c = np.append(c[keep], c[rest].sum())
    return {"labels": list(labels), "reference": [float(x) for x in r], "current": [float(x) for x in c]}


def _choose_method(rule: FeatureRule, fits: tuple[str, ...], auto: str) -> str:
    """The method to run: the one asked for when it fits this column, else the automatic choice
    (a global method falls back for columns it does not fit; a per-feature one that does not fit
    was refused by ``_check_explicit_methods`` before any test ran)."""
    return rule.method if rule.method in fits else auto


def _auto_for_counts(reference_n: int, current_n: int, categories: int) -> str:
    if min(reference_n, current_n) <= SMALL_SAMPLE:
        return Z_TEST if categories <= 2 else CHISQUARE
    return JENSEN_SHANNON


def _test_counts(method: str, counts: _Counts) -> float:
    if method == CHISQUARE:
        return chi_squared(counts.reference, counts.current)
    if method == Z_TEST:
        # The reference's most frequent category against all the others.
        return proportion_z_test(counts.reference, counts.current, int(np.argmax(counts.reference)))
    if method == JENSEN_SHANNON:
        return jensen_shannon(counts.reference, counts.current)
    return population_stability_index(counts.reference, counts.current)


def _finish(
    column: str,
    entry: Mapping[str, Any],
    method: str,
    score: float,
    rule: FeatureRule,
    **fields: Any,
) -> FeatureDrift:
    if rule.threshold is None:
        threshold = DEFAULT_THRESHOLDS[method]
    else:
        # A threshold given without a method is checked once the method is known: a p-value
        # threshold must be below 1.
        threshold = _check_threshold(f"parameter feature_thresholds[{column!r}]", method, rule.threshold)
    drifted = is_drift(method, score, threshold)
    reasons = list(fields.pop("reasons", []))
    if drifted:
        comparison = "<" if method in P_VALUE_METHODS else ">="
        reasons.insert(0, f"{METHOD_NAMES[method]} {score:.4g} {comparison} {threshold:g}")
    return FeatureDrift(
        column=column,
        type=entry["type"],
        status=TESTED,
        drifted=drifted or bool(reasons),
        method=method,
        score=float(score),
        threshold=float(threshold),
        severity=severity(method, score, threshold),
        reasons=reasons,
        **fields,
    )


def compare_column(
    column: str,
    entry: Mapping[str, Any],
    current: pd.DataFrame,
    rule: FeatureRule,
    max_missing_increase: float,
) -> FeatureDrift:
    """Compare one reference column (its reference.json entry) with the current window."""
    logical = entry["type"]
    kind = entry["kind"]
    ref_rows = int(entry["rows"])
    ref_missing_share = _share(int(entry["missing"]), ref_rows)
    if column not in current.columns:
        return FeatureDrift(
            column=column,
            type=logical,
            status=COLUMN_MISSING,
            drifted=True,
            reasons=["column missing from the current window"],
            reference_missing_share=ref_missing_share,
        )
    series = current[column]
    rows = len(series)
    if kind not in (NUMERIC_KIND, CATEGORICAL_KIND):
        return FeatureDrift(
            column=column,
            type=logical,
            status=NOT_TESTED,
            drifted=False,
            notes=[f"{logical} columns are not tested for drift"],
            reference_missing_share=ref_missing_share,
            current_missing_share=_share(int(series.isna().sum()), rows),
        )

    notes: list[str] = []
    if kind == NUMERIC_KIND:
        raw, not_numbers = float_values(series)
        if not_numbers:
            return FeatureDrift(
                column=column,
                type=logical,
                status=TYPE_CHANGED,
                drifted=True,
                reasons=[
                    f"type changed: numeric in training, but the window has values that are not "
                    f"numbers, such as {', '.join(not_numbers)}"
                ],
                reference_missing_share=ref_missing_share,
            )
        if not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            notes.append(f"numeric in training; read from {series.dtype} values")
        values = np.sort(finite_values(raw))
        current_n = len(values)
    else:
        cat_counts, cat_missing = category_counts(series)
        current_n = rows - cat_missing
        if current_n and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            notes.append(f"{logical} in training; the window has {series.dtype} values (compared as text)")

    cur_missing_share = _share(rows - current_n, rows)
    base = {
        "reference_missing_share": ref_missing_share,
        "current_missing_share": cur_missing_share,
        "notes": notes,
    }
    reference_n = int(entry["count"])
    if current_n == 0 or reference_n == 0:
        if current_n == 0 and reference_n == 0:
            return FeatureDrift(
                column=column,
                type=logical,
                status=NOT_TESTED,
                drifted=False,
                notes=[*notes, "no values in the training data or the current window"],
                **{k: v for k, v in base.items() if k != "notes"},
            )
        reason = (
            "all values missing" + (f" in {rows:,} rows" if rows else "")
            if current_n == 0
            else f"the training data had no values in this column; the window has {current_n:,}"
        )
        return FeatureDrift(
            column=column,
            type=logical,
            status=ALL_MISSING if current_n == 0 else NO_TRAINING_VALUES,
            drifted=True,
            reasons=[reason],
            current_n=current_n,
            **base,
        )

    reasons: list[str] = []
    if (
        cur_missing_share is not None
        and ref_missing_share is not None
        and cur_missing_share - ref_missing_share > max_missing_increase
    ):
        reasons.append(
            f"missing share rose from {_percent(ref_missing_share)} to {_percent(cur_missing_share)}"
        )

    if kind == CATEGORICAL_KIND:
        counts = _align_categories(entry["counts"], int(entry.get("other", 0)), cat_counts)
        auto = _auto_for_counts(reference_n, current_n, len(counts.labels))
        method = _choose_method(rule, (CHISQUARE, Z_TEST, JENSEN_SHANNON, PSI), auto)
        score = _test_counts(method, counts)
        basis = f"counts in each category of all {reference_n:,} training values"
        return _finish(
            column,
            entry,
            method,
            score,
            rule,
            reasons=reasons,
            reference_n=reference_n,
            current_n=current_n,
            new_categories=counts.new,
            plot=_plot(counts.labels, counts.reference, counts.current, ordered=False),
            **{**base, "notes": [*notes, basis]},
        )
    return _compare_numeric(column, entry, values, rule, reasons, base)


def _compare_numeric(
    column: str,
    entry: Mapping[str, Any],
    values: np.ndarray,
    rule: FeatureRule,
    reasons: list[str],
    base: dict[str, Any],
) -> FeatureDrift:
    reference_n = int(entry["count"])
    current_n = len(values)
    value_counts = entry.get("value_counts")
    by_value = None
    if value_counts is not None:
        by_value = _align_categories(value_counts, 0, _numeric_value_counts(values, set(value_counts)))
    few_values = (
        by_value is not None
        and len(by_value.labels) <= MAX_VALUES_AS_CATEGORIES
        and NEW_VALUES not in by_value.labels  # pooled: many distinct values, not a few
    )
    if few_values:
        auto = _auto_for_counts(reference_n, current_n, len(by_value.labels))
    else:
        auto = KS if min(reference_n, current_n) <= SMALL_SAMPLE else WASSERSTEIN
    fits = (KS, WASSERSTEIN, JENSEN_SHANNON, PSI) + ((CHISQUARE, Z_TEST) if by_value is not None else ())
    method = _choose_method(rule, fits, auto)
    sample = np.asarray(entry["sample"], dtype=float)
    notes = list(base["notes"])
    binned = by_value
    if binned is None:
        edges = np.asarray(entry["bin_edges"], dtype=float)
        binned = _Counts(
            labels=_bin_labels(edges.tolist()),
            reference=np.asarray(entry["bin_counts"], dtype=float),
            current=bin_counts_sorted(values, edges).astype(float),
            new=[],
        )

    if method in VALUE_METHODS:
        used = len(sample)
        test = "KS" if method == KS else "Wasserstein"
        if used < reference_n:
            notes.append(f"{test} on a stratified sample of {used:,} of the {reference_n:,} training values")
        else:
            notes.append(f"{test} on all {reference_n:,} training values")
        if method == KS:
            _, score = _ks_sorted(sample, values)
            if used < reference_n:
                notes.append(f"p-value with n = {used:,} (the sample size), which is conservative")
        else:
            score = _wasserstein_sorted(sample, values) / _norm(entry["summary"]["std"])
            notes.append("normed by the standard deviation of all training values")
        ref_n_used = used
    else:
        score = _test_counts(method, binned)
        bins = "each value" if by_value is not None else f"{len(binned.labels)} quantile bins"
        notes.append(f"counts in {bins} of all {reference_n:,} training values")
        ref_n_used = reference_n
    return _finish(
        column,
        entry,
        method,
        score,
        rule,
        reasons=reasons,
        reference_n=ref_n_used,
        current_n=current_n,
        new_categories=[] if by_value is None else by_value.new,
        plot=_plot(binned.labels, binned.reference, binned.current, ordered=True),
        **{**base, "notes": notes},
    )


# --- performance ----------------------------------------------------------------------------------


def check_performance(
    model: Any,
    model_metadata: Mapping[str, Any],
    current: pd.DataFrame,
    label_column: str,
    reference_metrics: Mapping[str, float | None] | None,
    config: DriftConfig,
) -> PerformanceCheck:
    """The model's metrics on the labelled rows of ``current`` against the reference metrics.

    Whatever the window holds, this reports rather than raises: a label column of another type,
    labels the model never saw, or rows the model cannot score give ``computed=False`` and the reason.
    """
    from mlstages.components.evaluate.evaluate import evaluate, model_inputs

    task = model_metadata.get("task")
    reference_metrics = dict(reference_metrics or {})
    if task is None:
        return PerformanceCheck(False, "not computed: the model's metadata.json records no task")
    if label_column not in current.columns:
        return PerformanceCheck(
            False, f"not computed: the window has no label column {label_column!r}", task=task
        )
    labelled = current[current[label_column].notna()]
    if labelled.empty:
        return PerformanceCheck(
            False, f"not computed: label column {label_column!r} has no values", task=task
        )
    try:
        classes, input_columns = model_inputs(model_metadata, label_column, task)
        evaluation = evaluate(
            model, labelled, label_column, task, classes=classes, input_columns=input_columns
        )
    except (MlstagesError, ValueError, TypeError, KeyError) as exc:
        # ValueError/TypeError: the model's own refusal of values it cannot handle, e.g. strings
        # in a numeric column; that is a finding about the window, not a crash of the monitor.
        return PerformanceCheck(
            False, f"not computed: {exc}", rows=len(labelled), task=task, reference_metrics=reference_metrics
        )
    drops = config.metric_drops(task)
    comparisons = []
    for name, max_drop in drops.items():
        now = evaluation.metrics.get(name)
        before = reference_metrics.get(name)
        if now is None or before is None:
            continue
        worse = (now - before) if name in LOWER_IS_BETTER else (before - now)
        drop = worse / abs(before) if before else worse
        comparisons.append(
            {
                "metric": name,
                "reference": before,
                "current": now,
                "drop": drop,
                "max_drop": max_drop,
                "decayed": drop > max_drop,
            }
        )
    if not reference_metrics:
        message = "computed; the reference has no test-set metrics to compare with"
    elif not comparisons:
        message = (
            f"computed; none of {', '.join(drops) or 'the checked metrics'} is in both the reference and now"
        )
    else:
        message = "computed"
    return PerformanceCheck(
        computed=True,
        message=message,
        rows=len(labelled),
        task=task,
        metrics=dict(evaluation.metrics),
        reference_metrics=reference_metrics,
        comparisons=comparisons,
    )


# --- the whole window -----------------------------------------------------------------------------


def is_prediction_log_column(name: str) -> bool:
    """Columns the model server's prediction log adds beside the features: not new features."""
    from mlstages.components.serving.prediction_log import LOG_COLUMNS, PREDICTION_COLUMN, PROBABILITY_PREFIX

    return name == PREDICTION_COLUMN or name in LOG_COLUMNS or name.startswith(PROBABILITY_PREFIX)


def detect_drift(
    reference: Mapping[str, Any],
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    *,
    model: Any = None,
    model_metadata: Mapping[str, Any] | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` (from ``reference.load_reference``) and decide.

    ``model`` (the exported Pipeline) and its ``model_metadata`` are optional; with them and labels
    in the window, performance is checked too.
    """
    config = config or DriftConfig()
    if len(current) == 0:
        raise InputDataError("the current window has no rows: there is nothing to compare with the reference")
    features = [str(f) for f in reference["features"]]
    unknown = [f for f in config.feature_thresholds if f not in features]
    if unknown:
        raise ParameterError(
            f"parameter feature_thresholds names {', '.join(map(repr, unknown))}, not feature(s) of the "
            f"reference; its features are: {', '.join(features)}"
        )
    _check_explicit_methods(reference, config)
    label_column = _label_column(reference, config, model_metadata)

    results = [
        compare_column(
            name, reference["columns"][name], current, config.rule(name), config.max_missing_increase
        )
        for name in features
    ]
    known = set(features) | ({label_column} if label_column else set())
    new_columns = [
        str(c) for c in current.columns if str(c) not in known and not is_prediction_log_column(str(c))
    ]

    checked = [f for f in results if f.status != NOT_TESTED]
    drifted = [f for f in checked if f.drifted]
    share = len(drifted) / len(checked) if checked else 0.0
    dataset_drift = bool(checked) and share >= config.drift_share

    label = None
    if label_column and reference.get("label") and label_column in current.columns:
        label = compare_column(
            label_column, reference["label"], current, FeatureRule(), config.max_missing_increase
        )

    performance = None
    if model is not None:
        performance = check_performance(
            model, model_metadata or {}, current, label_column or "", reference.get("metrics"), config
        )

    warnings = _warnings(results, checked, current, label_column, performance, model)
    reasons = _retrain_reasons(config, dataset_drift, share, drifted, checked, performance)
    return DriftResult(
        rows=len(current),
        reference_rows=int(reference["rows"]),
        features=results,
        drift_share=share,
        drift_share_threshold=config.drift_share,
        drifted_features=len(drifted),
        features_checked=len(checked),
        dataset_drift=dataset_drift,
        retrain=bool(reasons),
        retrain_on=config.retrain_on,
        reasons=reasons,
        new_columns=new_columns,
        label=label,
        performance=performance,
        warnings=warnings,
    )


def _check_explicit_methods(reference: Mapping[str, Any], config: DriftConfig) -> None:
    """A method asked for one feature must fit that feature (a global one falls back to auto)."""
    for name in config.feature_thresholds:
        rule = config.rule(name)
        entry = reference["columns"][name]
        if rule.method == AUTO or "method" not in config.feature_thresholds[name]:
            continue
        kind = entry["kind"]
        if kind == CATEGORICAL_KIND:
            fits = (CHISQUARE, Z_TEST, JENSEN_SHANNON, PSI)
        elif kind == NUMERIC_KIND:
            fits = (KS, WASSERSTEIN, JENSEN_SHANNON, PSI) + (
                (CHISQUARE, Z_TEST) if "value_counts" in entry else ()
            )
        else:
            fits = ()
        if rule.method not in fits:
            detail = (
                f"it is {entry['type']}, which is not tested"
                if not fits
                else f"for a {entry['type']} column use one of {', '.join(fits)}"
            )
            raise ParameterError(
                f"parameter feature_thresholds[{name!r}]: method {rule.method!r} does not apply: {detail}"
            )


def _label_column(
    reference: Mapping[str, Any], config: DriftConfig, model_metadata: Mapping[str, Any] | None
) -> str | None:
    recorded = reference.get("label_column") or (model_metadata or {}).get("label_column")
    if config.label_column and recorded and config.label_column != recorded:
        raise ParameterError(
            f"parameter label_column={config.label_column!r}, but the reference was taken with label "
            f"{recorded!r}: set label_column={recorded!r} or leave it empty"
        )
    if config.label_column and config.label_column in reference["features"]:
        raise ParameterError(
            f"parameter label_column={config.label_column!r} is one of the model's input features"
        )
    return config.label_column or recorded or None


def _warnings(
    results: list[FeatureDrift],
    checked: list[FeatureDrift],
    current: pd.DataFrame,
    label_column: str | None,
    performance: PerformanceCheck | None,
    model: Any,
) -> list[str]:
    warnings = []
    if not checked:
        warnings.append("no feature could be tested (every reference column is of an untested type)")
    if performance is not None and not performance.computed:
        warnings.append(f"performance {performance.message}")
    if model is None and label_column and label_column in current.columns:
        warnings.append("the window has labels but no model was given: performance was not checked")
    not_tested = [f.column for f in results if f.status == NOT_TESTED]
    if not_tested:
        warnings.append(f"not tested: {_names(not_tested)}")
    return warnings


def _retrain_reasons(
    config: DriftConfig,
    dataset_drift: bool,
    share: float,
    drifted: list[FeatureDrift],
    checked: list[FeatureDrift],
    performance: PerformanceCheck | None,
) -> list[str]:
    drift_reason = None
    if dataset_drift:
        drift_reason = (
            f"dataset drift: {len(drifted)} of {len(checked)} features drifted "
            f"(share {share:.2f} >= {config.drift_share:g}): {_names([f.column for f in drifted])}"
        )
    decay_reasons = []
    if performance is not None:
        for c in performance.decayed:
            decay_reasons.append(
                f"performance decay: {c['metric']} {c['current']:.4g} against {c['reference']:.4g} on "
                f"the test split at training time ({100 * c['drop']:.1f}% worse > {100 * c['max_drop']:g}% allowed)"
            )
    rule = config.retrain_on
    if rule == "drift":
        return [drift_reason] if drift_reason else []
    if rule == "decay":
        return decay_reasons
    if rule == "drift_and_decay":
        return [drift_reason, *decay_reasons] if drift_reason and decay_reasons else []
    return ([drift_reason] if drift_reason else []) + decay_reasons


# --- reports --------------------------------------------------------------------------------------


def _decision(result: DriftResult) -> str:
    verdict = "Retrain" if result.retrain else "No retraining needed"
    drift = "dataset drift" if result.dataset_drift else "no dataset drift"
    return (
        f"{verdict}. {result.drifted_features} of {result.features_checked} features drifted "
        f"(share {result.drift_share:.2f}; the threshold is {result.drift_share_threshold:g}): {drift}. "
        f"{result.rows:,} current rows against {result.reference_rows:,} training rows; "
        f"retraining on {result.retrain_on.replace('_', ' ')}."
    )


def _feature_row(f: FeatureDrift) -> dict[str, Any]:
    missing = f"{_percent(f.reference_missing_share)} → {_percent(f.current_missing_share)}"
    details = list(f.reasons)
    if f.new_categories:
        details.append(f"new: {_names(f.new_categories)}")
    details += f.notes
    return {
        "feature": f.column,
        "type": f.type,
        "test": METHOD_NAMES.get(f.method or "", f.status),
        "score": "n/a" if f.score is None else f.score,
        "threshold": "" if f.threshold is None else f.threshold,
        "drift": "yes" if f.drifted else "no",
        # No sample sizes where no test ran (a missing column, a type change).
        "reference n": f.reference_n if f.method else "",
        "current n": f.current_n if f.method else "",
        "missing": missing,
        "details": "; ".join(details),
    }


FEATURE_COLUMNS = [
    "feature",
    "type",
    "test",
    "score",
    "threshold",
    "drift",
    "reference n",
    "current n",
    "missing",
    "details",
]


def distribution_svg(plot: Mapping[str, Any], width: int = 240, height: int = 90) -> str:
    """Reference (grey) and current (blue) shares per bin or category as a small inline SVG."""
    labels = plot["labels"]
    reference, current = plot["reference"], plot["current"]
    top = max([*reference, *current, 1e-12])
    slots = max(len(labels), 1)
    slot = (width - 4) / slots
    bar = max(slot / 2 - 1, 1.0)
    base = height - 14
    scale = (base - 4) / top
    parts = []
    for k, label in enumerate(labels):
        x = 2 + k * slot
        for offset, share, colour, name in (
            (0.0, reference[k], "#9aa0a6", "training"),
            (bar, current[k], "#1a73e8", "current"),
        ):
            h = share * scale
            tip = html.escape(f"{label}: {name} {100 * share:.1f}%")
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{tip}</title></rect>"
            )
    legend = (
        f'<text x="2" y="{height - 2}" font-size="10" fill="#5f6368">grey: training, blue: current; '
        "hover for values</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="training and current distribution">'
        f'<line x1="0" y1="{base}" x2="{width}" y2="{base}" stroke="#dadce0"/>{"".join(parts)}{legend}</svg>'
    )


def _feature_table_html(features: Sequence[FeatureDrift]) -> str:
    from mlstages.components.common.reports import format_value

    head = "".join(f"<th>{html.escape(c)}</th>" for c in [*FEATURE_COLUMNS, "distribution"])
    body = []
    for f in features:
        row = _feature_row(f)
        cells = []
        for c in FEATURE_COLUMNS:
            value = row[c]
            css = ' class="num"' if isinstance(value, (int, float)) else ""
            if c == "drift":
                css = ' class="bad"' if f.drifted else ' class="ok"'
            cells.append(f"<td{css}>{html.escape(format_value(value))}</td>")
        cells.append(f"<td>{distribution_svg(f.plot) if f.plot else ''}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _performance_rows(performance: PerformanceCheck) -> list[dict[str, Any]]:
    rows = []
    compared = {c["metric"]: c for c in performance.comparisons}
    for name, value in performance.metrics.items():
        c = compared.get(name)
        rows.append(
            {
                "metric": name,
                "training (test split)": _na(performance.reference_metrics.get(name)),
                "current": _na(value),
                "relative drop": "" if c is None else f"{100 * c['drop']:.1f}%",
                "allowed": "" if c is None else f"{100 * c['max_drop']:g}%",
                "decay": "" if c is None else ("yes" if c["decayed"] else "no"),
            }
        )
    return rows


PERFORMANCE_COLUMNS = ["metric", "training (test split)", "current", "relative drop", "allowed", "decay"]


def _na(value: Any) -> Any:
    return "n/a" if value is None else value


METHOD_NOTES = [
    "Kolmogorov-Smirnov, chi-squared (test of homogeneity) and Z-test (two proportions): drift when the "
    "p-value is below the threshold (0.05 by default); used when either sample has at most 1,000 values.",
    "Wasserstein distance normed by the training standard deviation, Jensen-Shannon distance (natural "
    "log) and PSI: drift when the distance reaches the threshold (0.1, 0.1 and 0.2 by default).",
    "KS and Wasserstein use the reference's stratified sample (at most 5,000 values); the categorical "
    "and binned tests use counts of all training values. 'reference n' is what each test used.",
    "Missing values are not part of any distribution; a missing share that rose too far is drift by itself.",
]


def render_html(result: DriftResult) -> str:
    """The drift report: decision, reasons, one row per feature with a small chart, label and performance."""
    from mlstages.components.common.reports import html_list, html_page, html_paragraph, html_table

    decision = html_paragraph(_decision(result), "bad" if result.retrain else "ok")
    if result.reasons:
        decision += html_list(result.reasons)
    if result.warnings:
        decision += html_paragraph("Warnings:", "warn") + html_list(result.warnings)
    sections = [("Decision", decision), ("Features", _feature_table_html(result.features))]
    if result.new_columns:
        sections.append(
            (
                "New columns",
                html_paragraph("Columns of the window that the reference does not know (not tested):")
                + html_list(result.new_columns),
            )
        )
    if result.label is not None:
        sections.append(("Label", _feature_table_html([result.label])))
    if result.performance is not None:
        body = html_paragraph(
            f"Performance {result.performance.message} on {result.performance.rows:,} labelled rows."
        )
        if result.performance.computed:
            body += html_table(_performance_rows(result.performance), PERFORMANCE_COLUMNS)
        sections.append(("Performance", body))
    sections.append(("How to read this", html_list(METHOD_NOTES)))
    return html_page("Drift monitoring", sections)


def render_markdown(result: DriftResult) -> str:
    """The run summary: decision, reasons, the feature table, label and performance."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    lines = ["# Monitor drift", "", markdown_text(_decision(result)), ""]
    if result.reasons:
        lines += ["Reasons:", ""] + [f"- {markdown_text(r)}" for r in result.reasons] + [""]
    if result.warnings:
        lines += ["Warnings:", ""] + [f"- {markdown_text(w)}" for w in result.warnings] + [""]
    lines += [
        "## Features",
        "",
        markdown_table([_feature_row(f) for f in result.features], FEATURE_COLUMNS),
        "",
    ]
    if result.new_columns:
        lines += ["## New columns", "", markdown_text(", ".join(result.new_columns)), ""]
    if result.label is not None:
        lines += ["## Label", "", markdown_table([_feature_row(result.label)], FEATURE_COLUMNS), ""]
    if result.performance is not None:
        lines += [
            "## Performance",
            "",
            markdown_text(
                f"Performance {result.performance.message} on {result.performance.rows:,} labelled rows."
            ),
            "",
        ]
        if result.performance.computed:
            lines += [markdown_table(_performance_rows(result.performance), PERFORMANCE_COLUMNS), ""]
    return "\n".join(lines)
