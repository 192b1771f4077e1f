"""The drift monitor's settings: the tests, their thresholds and the retrain rule."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlstages.components.common.engine import DEFAULT_ENGINE, check_engine
from mlstages.components.common.errors import ParameterError, require_choice

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


# Feature statuses.
TESTED = "tested"


COLUMN_MISSING = "column missing"


ALL_MISSING = "all values missing"


TYPE_CHANGED = "type changed"


NO_TRAINING_VALUES = "no training values"


NOT_TESTED = "not tested"


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
    engine: where the window is summarised: "local", "dask" or a scheduler address
        (``common.engine``); the summaries are the same on every engine.
    """

    drift_share: float = 0.5
    method: str = AUTO
    feature_thresholds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    retrain_on: str = "drift_or_decay"
    max_metric_drop: float | Mapping[str, float] = 0.05
    max_missing_increase: float = 0.1
    label_column: str = ""
    engine: str = DEFAULT_ENGINE

    def __post_init__(self) -> None:
        check_engine(self.engine)
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
        from mlstages.components.evaluate.metrics import (
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
