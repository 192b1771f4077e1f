"""Metric thresholds, absolute or as a change against the baseline, overall and per slice."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlstages.components.common.baselines import BASELINES, DEFAULT_GRADIENT_BOOSTING
from mlstages.components.common.errors import ParameterError, require_choice
from mlstages.components.evaluate.evaluate import EvaluationResult
from mlstages.components.evaluate.metrics import (
    BINARY_METRICS,
    CLASSIFICATION,
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION,
    REGRESSION_METRICS,
    TASKS,
)
from mlstages.components.evaluate.slices import SliceMetrics

TASK_METRICS: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: (*CLASSIFICATION_METRICS, *BINARY_METRICS),
    REGRESSION: REGRESSION_METRICS,
}


MIN = "min"


MAX = "max"


MAX_DROP = "max_drop"


MAX_INCREASE = "max_increase"


THRESHOLD_KEYS = (MIN, MAX, MAX_DROP, MAX_INCREASE)


# A slice with fewer rows is reported but not gated. On 10 rows one row moves accuracy or recall by
# 10 points, far more than any realistic max_drop: below that, a slice's metric is noise, and gating
# on it would reject good models at random.
DEFAULT_MIN_SLICE_ROWS = 10


# Metrics are computed by the same code on the same rows, so an unchanged model gives bit-identical
# values; the tolerance only absorbs the rounding of ``baseline - max_drop`` itself.
TOLERANCE = 1e-9


PASSED = "passed"


FAILED = "failed"


NOT_GATED = "not gated"


THRESHOLD = "threshold"


ROBUSTNESS = "robustness"


OVERALL = "overall"


# Robustness simulations, by the kind of row they make.
MISSING = "missing"


ALL_MISSING = "all_missing"


UNSEEN_CATEGORY = "unseen_category"


EXTREME_VALUE = "extreme_value"


FIRST_RUN_REASON = "no baseline: first run, change thresholds not applied"


NO_THRESHOLDS_REASON = (
    "no thresholds were given: the gate blesses a model only against explicit thresholds; set "
    'thresholds, e.g. {"f1_macro": {"min": 0.8, "max_drop": 0.01}}'
)


@dataclass(frozen=True)
class MetricThreshold:
    """The bounds on one metric. min/max are absolute; max_drop (higher-is-better metrics) and
    max_increase (lower-is-better) bound the change from the baseline."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None
    max_increase: float | None = None

    def absolute_rules(self) -> list[tuple[str, float]]:
        return [(key, getattr(self, key)) for key in (MIN, MAX) if getattr(self, key) is not None]

    def change_rules(self) -> list[tuple[str, float]]:
        return [
            (key, getattr(self, key)) for key in (MAX_DROP, MAX_INCREASE) if getattr(self, key) is not None
        ]

    def to_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in THRESHOLD_KEYS if getattr(self, key) is not None}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def parse_thresholds(spec: Any, task: str) -> tuple[MetricThreshold, ...]:
    """Check a thresholds spec ``{metric: {"min"|"max"|"max_drop"|"max_increase": number}}`` for
    ``task`` and return it as MetricThresholds, in the spec's order. Raises ParameterError naming
    the metric and key at fault."""
    require_choice("task", task, TASKS)
    if spec is None:
        return ()
    if not isinstance(spec, Mapping):
        raise ParameterError(
            "parameter thresholds must map a metric name to its bounds, e.g. "
            f'{{"roc_auc": {{"min": 0.85}}}}, got {type(spec).__name__} {spec!r}'
        )
    available = TASK_METRICS[task]
    parsed = []
    for metric, rules in spec.items():
        if metric not in available:
            raise ParameterError(
                f"parameter thresholds: unknown metric {metric!r} for task {task!r}; "
                f"available: {', '.join(available)}"
            )
        higher = metric in HIGHER_IS_BETTER
        change_key, wrong_change_key = (MAX_DROP, MAX_INCREASE) if higher else (MAX_INCREASE, MAX_DROP)
        valid_keys = f"{MIN}, {MAX}, {change_key}"
        direction = "higher is better" if higher else "lower is better"
        if not isinstance(rules, Mapping) or not rules:
            raise ParameterError(
                f"parameter thresholds[{metric!r}] must be a non-empty mapping of {valid_keys} to numbers "
                f"({metric}: {direction}), got {rules!r}"
            )
        values: dict[str, float] = {}
        for key, value in rules.items():
            if key == wrong_change_key:
                raise ParameterError(
                    f"parameter thresholds[{metric!r}][{key!r}] does not fit {metric}, for which "
                    f"{direction}: use {change_key!r} (how much the candidate may "
                    f"{'fall below' if higher else 'rise above'} the baseline)"
                )
            if key not in THRESHOLD_KEYS:
                raise ParameterError(
                    f"parameter thresholds[{metric!r}]: unknown key {key!r}; valid keys: {valid_keys} "
                    f"({metric}: {direction})"
                )
            if not _is_number(value) or not math.isfinite(value):
                raise ParameterError(
                    f"parameter thresholds[{metric!r}][{key!r}]={value!r} must be a finite number"
                )
            if key == change_key and value < 0:
                raise ParameterError(
                    f"parameter thresholds[{metric!r}][{key!r}]={value!r} must be >= 0: it is how much the "
                    f"candidate may {'fall below' if higher else 'rise above'} the baseline"
                )
            values[key] = float(value)
        if MIN in values and MAX in values and values[MIN] > values[MAX]:
            raise ParameterError(
                f"parameter thresholds[{metric!r}]: min={values[MIN]} is above max={values[MAX]}, "
                "so no value can pass"
            )
        parsed.append(MetricThreshold(metric=metric, **values))
    return tuple(parsed)


@dataclass(frozen=True)
class BlessingConfig:
    """What the gate checks.

    label_column, task: as the model was trained; checked against its metadata and the evaluation.
    thresholds: ``{metric: {"min"|"max"|"max_drop"|"max_increase": number}}`` with evaluate's flat
        metric names; parsed into MetricThresholds. Empty: nothing is blessed.
    slice_columns: the slices to gate; each must be a slice column of the evaluation. Empty: every
        slice column of the evaluation.
    min_slice_rows: slices with fewer rows are reported but not gated (default 10: see
        DEFAULT_MIN_SLICE_ROWS).
    quality_floor: the baseline the candidate must not be worse than (floor.py): the default
        gradient boosting, the dummy, or "none" for no floor.
    floor_tolerance: how much worse than that baseline the candidate may be, relative to the
        baseline's value (0.01: 1%).
    floor_confidence: a miss is refused only when the candidate misses the floor on at least this
        share of paired resamples of the test rows (floor_noise.py); 0: the tolerance alone decides.
    """

    label_column: str
    task: str
    thresholds: Any = field(default_factory=dict)
    slice_columns: tuple[str, ...] = ()
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS
    quality_floor: str = DEFAULT_GRADIENT_BOOSTING
    floor_tolerance: float = 0.01
    floor_confidence: float = 0.95

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str) or not self.label_column.strip():
            raise ParameterError("parameter label_column is empty: name the column the model predicts")
        require_choice("task", self.task, TASKS)
        if isinstance(self.slice_columns, str):
            raise ParameterError(
                f"parameter slice_columns must be a list of column names, got {self.slice_columns!r}"
            )
        object.__setattr__(self, "slice_columns", tuple(str(c) for c in self.slice_columns))
        if (
            isinstance(self.min_slice_rows, bool)
            or not isinstance(self.min_slice_rows, (int, np.integer))
            or self.min_slice_rows < 1
        ):
            raise ParameterError(
                f"parameter min_slice_rows={self.min_slice_rows!r} must be an integer of at least 1"
            )
        require_choice("quality_floor", self.quality_floor, (*BASELINES, "none"))
        tolerance = self.floor_tolerance
        if not _is_number(tolerance) or not math.isfinite(tolerance) or not 0 <= tolerance < 1:
            raise ParameterError(
                f"parameter floor_tolerance={tolerance!r} must be a number in [0, 1): how much worse than "
                "the quality_floor baseline the candidate may be, relative to it (0.01 is 1%)"
            )
        confidence = self.floor_confidence
        if not _is_number(confidence) or not math.isfinite(confidence) or not 0 <= confidence < 1:
            raise ParameterError(
                f"parameter floor_confidence={confidence!r} must be a number in [0, 1): the share of resamples "
                "of the test rows on which a candidate must miss the floor to be refused (0.95), or 0 to "
                "hold to the floor strictly"
            )
        if not isinstance(self.thresholds, tuple):
            object.__setattr__(self, "thresholds", parse_thresholds(self.thresholds, self.task))


@dataclass(frozen=True)
class Check:
    """One gated (or reported) check.

    kind: "threshold", "robustness" or "floor" (floor.py).
    scope: "overall", or "<column>=<value>" for a slice.
    rule: min, max, max_drop, max_increase (thresholds), missing, all_missing, unseen_category,
        extreme_value (robustness) or the baseline's name (floor).
    status: "passed", "failed" or "not gated" (a small slice, a metric undefined on a slice, ...).
    message: what was checked and, when it failed or was not gated, why.
    """

    kind: str
    scope: str
    rule: str
    status: str
    message: str
    metric: str | None = None
    slice_column: str | None = None
    slice_value: str | None = None
    rows: int | None = None
    value: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    column: str | None = None

    @property
    def passed(self) -> bool | None:
        """True or False for a gated check; None when it was only reported."""
        return None if self.status == NOT_GATED else self.status == PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scope": self.scope,
            "slice_column": self.slice_column,
            "slice_value": self.slice_value,
            "metric": self.metric,
            "rule": self.rule,
            "column": self.column,
            "rows": self.rows,
            "value": self.value,
            "baseline": self.baseline,
            "threshold": self.threshold,
            "status": self.status,
            "passed": self.passed,
            "message": self.message,
        }


def _defined(value: Any) -> float | None:
    if value is None or not _is_number(value) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4g}"


def _absolute_check(rule: str, bound: float, value: float) -> tuple[bool, str]:
    if rule == MIN:
        passed = value >= bound - TOLERANCE
        return passed, f"{_fmt(value)}, {'at or above' if passed else 'below'} the minimum {bound:g}"
    passed = value <= bound + TOLERANCE
    return passed, f"{_fmt(value)}, {'at or below' if passed else 'above'} the maximum {bound:g}"


def _change_check(rule: str, limit: float, value: float, baseline: float) -> tuple[bool, str]:
    if rule == MAX_DROP:
        change = baseline - value
        passed = change <= limit + TOLERANCE
        word = "below" if change >= 0 else "above"
        return passed, (
            f"{_fmt(value)}, {abs(change):.4g} {word} the baseline's {_fmt(baseline)} (may drop at most {limit:g})"
        )
    change = value - baseline
    passed = change <= limit + TOLERANCE
    word = "above" if change >= 0 else "below"
    return passed, (
        f"{_fmt(value)}, {abs(change):.4g} {word} the baseline's {_fmt(baseline)} (may rise at most {limit:g})"
    )


def _slice_key(s: SliceMetrics) -> tuple[str, str]:
    return (s.column, s.value)


def gated_slices(evaluation: EvaluationResult, slice_columns: Sequence[str]) -> list[SliceMetrics]:
    """The evaluation's slices of ``slice_columns`` (all of its slices when empty); a column the
    evaluation has no slices for is a ParameterError naming it."""
    present = list(dict.fromkeys(s.column for s in evaluation.slices))
    missing = [c for c in slice_columns if c not in present]
    if missing:
        raise ParameterError(
            f"parameter slice_columns: the evaluation has no slices of column(s) "
            f"{', '.join(map(repr, missing))} (it has: {', '.join(map(repr, present)) or 'none'}); "
            "add them to evaluate's slice_columns"
        )
    wanted = set(slice_columns) if slice_columns else set(present)
    return [s for s in evaluation.slices if s.column in wanted]


def check_thresholds(
    candidate: EvaluationResult,
    baseline: EvaluationResult | None,
    thresholds: Sequence[MetricThreshold],
    config: BlessingConfig,
) -> list[Check]:
    """Every threshold on the whole test split and on every gated slice.

    Overall, an undefined candidate metric fails (it cannot be judged). On a slice, an undefined
    metric and a slice smaller than ``config.min_slice_rows`` are reported, not gated. Change
    thresholds apply only when there is a baseline (evaluated on the same rows).
    """
    missing = [t.metric for t in thresholds if t.metric not in candidate.metrics]
    if missing:
        raise ParameterError(
            f"parameter thresholds: metric(s) {', '.join(map(repr, missing))} are not in the evaluation "
            f"(its metrics: {', '.join(candidate.metrics)}); precision, recall and f1 of the positive "
            "class exist only for two classes: use precision_macro, recall_macro or f1_macro"
        )
    baseline_slices = {_slice_key(s): s for s in baseline.slices} if baseline is not None else {}
    scopes: list[tuple[str, SliceMetrics | None]] = [(OVERALL, None)]
    scopes += [(f"{s.column}={s.value}", s) for s in gated_slices(candidate, config.slice_columns)]

    checks = []
    for scope, part in scopes:
        metrics = candidate.metrics if part is None else part.metrics
        rows = candidate.rows if part is None else part.rows
        if baseline is None:
            baseline_metrics = None
        elif part is None:
            baseline_metrics = baseline.metrics
        else:
            match = baseline_slices.get(_slice_key(part))
            baseline_metrics = None if match is None else match.metrics
        for threshold in thresholds:
            rules = threshold.absolute_rules() + (threshold.change_rules() if baseline is not None else [])
            for rule, bound in rules:
                checks.append(
                    _threshold_check(
                        threshold.metric, rule, bound, scope, part, rows, metrics, baseline_metrics, config
                    )
                )
    return checks


def _threshold_check(
    metric: str,
    rule: str,
    bound: float,
    scope: str,
    part: SliceMetrics | None,
    rows: int,
    metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any] | None,
    config: BlessingConfig,
) -> Check:
    value = _defined(metrics.get(metric))
    is_change = rule in (MAX_DROP, MAX_INCREASE)
    reference = (
        _defined(baseline_metrics.get(metric)) if (is_change and baseline_metrics is not None) else None
    )

    def check(status: str, message: str) -> Check:
        return Check(
            kind=THRESHOLD,
            scope=scope,
            rule=rule,
            status=status,
            message=message,
            metric=metric,
            slice_column=None if part is None else part.column,
            slice_value=None if part is None else part.value,
            rows=rows,
            value=value,
            baseline=reference,
            threshold=bound,
        )

    where = "on the whole test split" if part is None else f"on slice {scope} ({rows} rows)"
    if part is not None and rows < config.min_slice_rows:
        return check(
            NOT_GATED,
            f"{metric} {where} is {_fmt(value)}: not gated, the slice has fewer than "
            f"min_slice_rows={config.min_slice_rows} rows",
        )
    if value is None:
        if part is None:
            return check(
                FAILED,
                f"{metric} is undefined {where}, so {rule} {bound:g} cannot be checked (for example "
                "roc_auc without predict_proba); gate on a metric the model defines",
            )
        return check(NOT_GATED, f"{metric} is undefined {where} (for example one class only): not gated")
    if is_change:
        if baseline_metrics is None:
            return check(NOT_GATED, f"{metric} {where}: the baseline has no such slice, change not gated")
        if reference is None:
            return check(NOT_GATED, f"{metric} {where}: undefined for the baseline, change not gated")
        passed, text = _change_check(rule, bound, value, reference)
    else:
        passed, text = _absolute_check(rule, bound, value)
    return check(PASSED if passed else FAILED, f"{metric} {where} is {text}")
