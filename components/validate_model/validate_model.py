"""Model validation, the blessing gate: is the candidate model good enough to deploy?

The candidate is blessed only when every gated check passes:

- absolute thresholds (``{"roc_auc": {"min": 0.85}}``) and change thresholds against the baseline
  (``{"f1_macro": {"max_drop": 0.01}}``: the candidate may be at most 0.01 below it), on the whole
  test split and on every slice of the declared slice columns;
- robustness checks: on rows simulated from the test split (a feature missing, every feature
  missing, an unseen category, extreme numbers) the model returns one finite prediction per row.

As in TFX's Evaluator, a gate without thresholds blesses nothing, and a first run (no baseline) is
judged on the absolute thresholds only. The baseline is the current champion of the model registry
(registry.read_champion), loaded and evaluated on the SAME test split with the evaluate stage's own
code, so that candidate and baseline are compared on identical rows.

A failed check yields ``blessed=False`` with the reasons. Infra validation (the candidate loaded and
queried in the serving code) runs only for a candidate that passed everything else, and its failure
raises: the model cannot be served, so the pipeline must stop rather than carry on unblessed.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError, MlstagesError, ParameterError, require_choice
from mlstages.components.evaluate.evaluate import (
    BINARY_METRICS,
    CLASSIFICATION,
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION,
    REGRESSION_METRICS,
    TASKS,
    EvaluationResult,
    SliceMetrics,
)

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
# Test rows each simulation starts from: a handful covers the model's code paths; every simulation
# is one predict call on (rows x variants), which keeps the whole suite of checks well under a second.
ROBUSTNESS_BASE_ROWS = 5
UNSEEN_CATEGORY_VALUE = "__mlstages_unseen_category__"
# Extreme numbers: far outside any scale, and far outside the column's own range (a span of 1000
# ranges), plus zero, which breaks ratios and logs.
EXTREME_ABSOLUTE = 1e12
EXTREME_RANGE_FACTOR = 1000.0
# Probabilities of a row must sum to 1 within this.
PROBABILITY_SUM_TOLERANCE = 1e-6
# Test rows sent to the model server during infra validation: as one batch in each protocol and
# one at a time; the server's start dominates the time, not these requests.
INFRA_SAMPLE_ROWS = 20

FIRST_RUN_REASON = "no baseline: first run, change thresholds not applied"
NO_THRESHOLDS_REASON = (
    "no thresholds were given: the gate blesses a model only against explicit thresholds; set "
    'thresholds, e.g. {"f1_macro": {"min": 0.8, "max_drop": 0.01}}'
)


# --- thresholds --------------------------------------------------------------------------------


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
    """

    label_column: str
    task: str
    thresholds: Any = field(default_factory=dict)
    slice_columns: tuple[str, ...] = ()
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS

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
        if not isinstance(self.thresholds, tuple):
            object.__setattr__(self, "thresholds", parse_thresholds(self.thresholds, self.task))


# --- checks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One gated (or reported) check.

    kind: "threshold" or "robustness".
    scope: "overall", or "<column>=<value>" for a slice.
    rule: min, max, max_drop, max_increase (thresholds) or missing, all_missing, unseen_category,
        extreme_value (robustness).
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


# --- robustness --------------------------------------------------------------------------------


def _features(
    metadata: Mapping[str, Any], model: Any, test_df: pd.DataFrame, label_column: str
) -> dict[str, str]:
    """Raw input column -> logical type, in the model's input order."""
    from mlstages.components.common.datasets import column_types

    features = metadata.get("input_features")
    if features:
        columns = {str(f["name"]): str(f.get("type", "")) for f in features}
    elif hasattr(model, "feature_names_in_"):
        columns = {str(c): "" for c in model.feature_names_in_}
    else:
        columns = {str(c): "" for c in test_df.columns if c != label_column}
    missing = [c for c in columns if c not in test_df.columns]
    if missing:
        raise InputDataError(
            f"the test split lacks the model's input column(s) {', '.join(map(repr, missing))}: pass the "
            "test split the model was evaluated on"
        )
    declared = metadata.get("input_columns") or {}
    inferred = column_types(test_df[list(columns)])
    return {c: columns[c] or declared.get(c) or inferred[c] for c in columns}


def _missing_value_column(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.Series(pd.NaT, index=series.index, dtype=series.dtype)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return pd.Series(np.nan, index=series.index, dtype="float64")
    return pd.Series([None] * len(series), index=series.index, dtype=object)


def extreme_values(series: pd.Series) -> list[float]:
    """Numbers far outside the column's range and any scale, and zero."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    span = high - low if high > low else max(1.0, abs(high))
    candidates = [
        EXTREME_ABSOLUTE,
        -EXTREME_ABSOLUTE,
        high + EXTREME_RANGE_FACTOR * span,
        low - EXTREME_RANGE_FACTOR * span,
        0.0,
    ]
    return list(dict.fromkeys(candidates))


@dataclass(frozen=True)
class _Simulation:
    rule: str
    column: str | None
    rows: pd.DataFrame
    variants: list[str]  # per row: which value it holds, for messages


def _simulations(base: pd.DataFrame, types: Mapping[str, str], test_df: pd.DataFrame) -> list[_Simulation]:
    from mlstages.components.common.datasets import CATEGORICAL, NUMERIC, TEXT

    simulations = []
    for column in types:
        rows = base.copy()
        rows[column] = _missing_value_column(base[column])
        simulations.append(_Simulation(MISSING, column, rows, ["missing"] * len(rows)))
    everything = base.copy()
    for column in types:
        everything[column] = _missing_value_column(base[column])
    simulations.append(_Simulation(ALL_MISSING, None, everything, ["every feature missing"] * len(base)))
    for column, logical in types.items():
        if logical in (CATEGORICAL, TEXT):
            rows = base.copy()
            rows[column] = pd.Series([UNSEEN_CATEGORY_VALUE] * len(rows), index=rows.index, dtype=object)
            simulations.append(
                _Simulation(UNSEEN_CATEGORY, column, rows, [repr(UNSEEN_CATEGORY_VALUE)] * len(rows))
            )
        elif logical == NUMERIC:
            parts, variants = [], []
            for value in extreme_values(test_df[column]):
                part = base.copy()
                part[column] = pd.Series(value, index=part.index, dtype="float64")
                parts.append(part)
                variants += [f"{value:g}"] * len(part)
            simulations.append(
                _Simulation(EXTREME_VALUE, column, pd.concat(parts, ignore_index=True), variants)
            )
    return simulations


_DESCRIPTIONS = {
    MISSING: "rows with {column!r} missing",
    ALL_MISSING: "rows with every feature missing",
    UNSEEN_CATEGORY: "rows with an unseen category in {column!r}",
    EXTREME_VALUE: "rows with extreme values of {column!r}",
}


def _class_key(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _output_problem(
    model: Any, rows: pd.DataFrame, task: str, classes: Sequence[Any] | None
) -> tuple[str, int] | None:
    """What is wrong with the model's output on ``rows`` and the first row at fault, or None."""
    n = len(rows)
    try:
        predictions = np.asarray(model.predict(rows))
    except Exception as exc:  # any error of any estimator is the finding itself
        return f"predict raised {type(exc).__name__}: {exc}", 0
    if predictions.shape != (n,):
        return f"predict returned shape {predictions.shape} for {n} rows (expected ({n},))", 0
    if task == REGRESSION:
        try:
            values = predictions.astype(float)
        except (TypeError, ValueError):
            return f"predict returned non-numeric values ({predictions.dtype})", 0
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            return (
                f"predict returned a non-finite value ({float(values[bad[0]])!r}) in {len(bad)} of {n} rows",
                int(bad[0]),
            )
        return None
    known = {_class_key(c) for c in classes} if classes is not None else None
    if known is not None:
        unknown = [i for i, p in enumerate(predictions) if _class_key(p) not in known]
        if unknown:
            return (
                f"predict returned {predictions[unknown[0]]!r}, not one of the classes "
                f"{', '.join(map(repr, classes))}, in {len(unknown)} of {n} rows",
                unknown[0],
            )
    if not hasattr(model, "predict_proba"):
        return None
    try:
        proba = np.asarray(model.predict_proba(rows), dtype=float)
    except Exception as exc:  # as above
        return f"predict_proba raised {type(exc).__name__}: {exc}", 0
    width = len(classes) if classes is not None else proba.shape[-1]
    if proba.shape != (n, width):
        return f"predict_proba returned shape {proba.shape} for {n} rows and {width} classes", 0
    finite = np.isfinite(proba).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        return f"predict_proba returned non-finite probabilities in {len(bad)} of {n} rows", int(bad[0])
    wrong = np.flatnonzero(
        (np.abs(proba.sum(axis=1) - 1.0) > PROBABILITY_SUM_TOLERANCE)
        | (proba < 0).any(axis=1)
        | (proba > 1).any(axis=1)
    )
    if len(wrong):
        return (
            f"predict_proba returned probabilities that are outside [0, 1] or do not sum to 1 "
            f"(sum {proba[wrong[0]].sum():.6g}) in {len(wrong)} of {n} rows",
            int(wrong[0]),
        )
    return None


def robustness_checks(model: Any, test_df: pd.DataFrame, metadata: Mapping[str, Any]) -> list[Check]:
    """Predict on rows simulated from the first test rows: each feature missing in turn, every
    feature missing, an unseen category in each categorical (and text) column, extreme values of
    each numeric column. Each passes when predict gives one prediction per row, finite (regression)
    or one of the known classes, and predict_proba rows are finite, within [0, 1] and sum to 1.

    ``metadata`` is the model's metadata.json: task, label_column, classes, input_features.
    """
    task = metadata.get("task") or (CLASSIFICATION if hasattr(model, "classes_") else REGRESSION)
    require_choice("task", task, TASKS)
    label_column = str(metadata.get("label_column") or "")
    if len(test_df) == 0:
        raise InputDataError("the test split has no rows: there are no rows to simulate from")
    types = _features(metadata, model, test_df, label_column)
    classes = metadata.get("classes")
    if task == CLASSIFICATION and classes is None and hasattr(model, "classes_"):
        classes = [_class_key(c) for c in model.classes_]
    base = test_df[list(types)].head(ROBUSTNESS_BASE_ROWS).reset_index(drop=True)

    checks = []
    for simulation in _simulations(base, types, test_df):
        description = _DESCRIPTIONS[simulation.rule].format(column=simulation.column)
        with warnings.catch_warnings():
            # Unknown-category and overflow warnings are expected on these rows; the outputs are judged.
            warnings.simplefilter("ignore")
            problem = _output_problem(model, simulation.rows, task, classes)
        rows = len(simulation.rows)
        if problem is None:
            status = PASSED
            message = f"{description}: one valid prediction for each of {rows} rows"
        else:
            text, row = problem
            status = FAILED
            variant = simulation.variants[row] if simulation.rule == EXTREME_VALUE else None
            example = f" (e.g. {simulation.column}={variant})" if variant else ""
            message = f"{description}{example}: {text}"
        checks.append(
            Check(
                kind=ROBUSTNESS,
                scope="simulated rows",
                rule=simulation.rule,
                status=status,
                message=message,
                rows=rows,
                column=simulation.column,
            )
        )
    return checks


# --- the decision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blessing:
    """The gate's decision and everything it rests on.

    candidate / baseline: {"uri", "version", "sha256"} (baseline also "pointer", the champion
    file); baseline is None on a first run.
    infra_validation: None when it did not run, else the serving code's result (passed, every check,
        latencies) and its Markdown "summary".
    """

    blessed: bool
    reasons: tuple[str, ...]
    checks: tuple[Check, ...]
    first_run: bool
    thresholds: dict[str, dict[str, float]]
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS
    candidate: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    infra_validation: dict[str, Any] | None = None

    @property
    def decision(self) -> str:
        return "blessed" if self.blessed else "not blessed"

    @property
    def counts(self) -> dict[str, int]:
        return {
            status: sum(c.status == status for c in self.checks) for status in (PASSED, FAILED, NOT_GATED)
        }

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAILED]

    @property
    def reason(self) -> str:
        """The reasons on one line (at most three, then how many more), for a parameter output."""
        shown = list(self.reasons[:3])
        if len(self.reasons) > 3:
            shown.append(f"and {len(self.reasons) - 3} more (see the blessing artifact)")
        return f"{self.decision}: " + "; ".join(shown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "blessed": self.blessed,
            "reasons": list(self.reasons),
            "first_run": self.first_run,
            "candidate": dict(self.candidate),
            "baseline": None if self.baseline is None else dict(self.baseline),
            "thresholds": {m: dict(r) for m, r in self.thresholds.items()},
            "min_slice_rows": self.min_slice_rows,
            "counts": self.counts,
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
            "infra_validation": self.infra_validation,
        }


def decide(
    checks: Sequence[Check],
    thresholds: Sequence[MetricThreshold],
    baseline_available: bool,
    *,
    candidate: Mapping[str, Any] | None = None,
    baseline: Mapping[str, Any] | None = None,
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS,
    notes: Sequence[str] = (),
) -> Blessing:
    """Bless when thresholds were given, at least one of them applies, and no gated check failed."""
    reasons: list[str] = []
    notes = list(notes)
    first_run = not baseline_available
    if first_run:
        reasons.append(FIRST_RUN_REASON)
        unapplied = [f"{t.metric} {rule} {bound:g}" for t in thresholds for rule, bound in t.change_rules()]
        if unapplied:
            notes.append(f"change thresholds not applied (no baseline): {', '.join(unapplied)}")
    failed = [c for c in checks if c.status == FAILED]
    applicable = [c for c in checks if c.kind == THRESHOLD]
    if not thresholds:
        reasons.insert(0, NO_THRESHOLDS_REASON)
    elif not applicable:
        reasons.insert(
            0,
            "no threshold applies: only change thresholds were given and there is no baseline to compare "
            "with; add an absolute threshold (min or max) so that a first model can be judged",
        )
    reasons += [c.message for c in failed]
    blessed = bool(thresholds) and bool(applicable) and not failed
    if blessed:
        gated = sum(c.status == PASSED for c in checks)
        robustness = sum(c.kind == ROBUSTNESS for c in checks)
        reasons.append(
            f"all {gated} gated checks passed ({gated - robustness} threshold, {robustness} robustness)"
        )
    not_gated = [c for c in checks if c.status == NOT_GATED]
    small = sorted(
        {c.scope for c in not_gated if c.rows is not None and c.rows < min_slice_rows and c.scope != OVERALL}
    )
    if small:
        notes.append(
            f"slice(s) with fewer than min_slice_rows={min_slice_rows} rows are reported but not gated: "
            + ", ".join(small)
        )
    return Blessing(
        blessed=blessed,
        reasons=tuple(reasons),
        checks=tuple(checks),
        first_run=first_run,
        thresholds={t.metric: t.to_dict() for t in thresholds},
        min_slice_rows=min_slice_rows,
        candidate=dict(candidate or {}),
        baseline=None if baseline is None else dict(baseline),
        notes=tuple(notes),
    )


# --- the baseline ------------------------------------------------------------------------------


def load_baseline(model_uri: str, directory: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Download the model directory at ``model_uri`` into ``directory`` and load it after checking
    its sha256 and that it was saved with this scikit-learn. Any failure is an InputDataError that
    names ``model_uri``: a baseline that cannot be loaded must stop the gate, not be skipped."""
    import sklearn
    from sklearn.exceptions import InconsistentVersionWarning

    from mlstages.components.common import storage
    from mlstages.components.common.artifacts import load_estimator, read_metadata

    fix = "fix the champion, or point it at a loadable version (registry.set_champion)"
    try:
        storage.download_dir(model_uri, directory)
        metadata = read_metadata(directory)
    except MlstagesError as exc:
        raise InputDataError(
            f"the champion {model_uri} cannot be loaded as the baseline: {exc}; {fix}"
        ) from exc
    saved_with = (metadata.get("versions") or {}).get("scikit-learn")
    if saved_with and saved_with != sklearn.__version__:
        raise InputDataError(
            f"the champion {model_uri} was saved with scikit-learn {saved_with}, but this image has "
            f"{sklearn.__version__}: a pickled model is only reliable with the version that saved it; "
            f"republish the champion with scikit-learn {sklearn.__version__} and make it the champion, or "
            "remove the champion pointer to judge on absolute thresholds only"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            model = load_estimator(directory, "model")
    except MlstagesError as exc:
        raise InputDataError(
            f"the champion {model_uri} cannot be loaded as the baseline: {exc}; {fix}"
        ) from exc
    except Exception as exc:  # unpickling can raise anything (missing module, changed class, ...)
        raise InputDataError(
            f"the champion {model_uri} cannot be loaded as the baseline: model.joblib fails to unpickle "
            f"({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    return model, metadata


def evaluate_baseline(
    model: Any,
    metadata: Mapping[str, Any],
    test_df: pd.DataFrame,
    config: BlessingConfig,
    slice_columns: Sequence[str],
    model_uri: str,
) -> EvaluationResult:
    """The baseline's metrics on the candidate's test split and slices, computed by evaluate."""
    from mlstages.components.evaluate.evaluate import evaluate, model_inputs

    try:
        classes, input_columns = model_inputs(metadata, config.label_column, config.task)
        return evaluate(
            model,
            test_df,
            config.label_column,
            config.task,
            slice_columns=tuple(slice_columns),
            classes=classes,
            input_columns=input_columns,
        )
    except MlstagesError as exc:
        raise InputDataError(
            f"the champion {model_uri} cannot be evaluated on this test split as the baseline: {exc}"
        ) from exc


# --- the whole gate ----------------------------------------------------------------------------


def _registry_version(uri: str, model_registry: str, model_name: str) -> str | None:
    """The version segment of ``uri`` when it is a version of ``model_name`` in the registry."""
    if not uri or not model_registry:
        return None
    prefix = f"{model_registry.rstrip('/')}/{model_name}/"
    rest = uri.rstrip("/")[len(prefix) :] if uri.startswith(prefix) else ""
    return rest if rest and "/" not in rest else None


def validate_model(
    model_dir: str | os.PathLike,
    test_df: pd.DataFrame,
    evaluation: EvaluationResult,
    config: BlessingConfig,
    *,
    model_registry: str = "",
    model_name: str = "model",
    candidate_uri: str = "",
    infra_validation: bool = True,
) -> Blessing:
    """Run the whole gate on the exported model in ``model_dir``.

    ``evaluation`` is evaluate's result for this model on ``test_df``. The baseline is the champion
    of ``model_name`` in ``model_registry`` (none when the registry is empty or has no champion).
    ``candidate_uri`` is where the candidate lives (its registry version, if published).
    With ``infra_validation``, a candidate that passed everything else is loaded and queried in the
    serving code; its failure raises InfraValidationFailed.
    """
    from mlstages.components.common.artifacts import load_estimator, read_metadata
    from mlstages.components.common.registry import champion_uri, check_model_name, read_champion
    from mlstages.components.evaluate.evaluate import model_inputs

    check_model_name(model_name)
    metadata = read_metadata(model_dir)
    model_inputs(metadata, config.label_column, config.task)
    if evaluation.task != config.task or (
        evaluation.label_column and evaluation.label_column != config.label_column
    ):
        raise InputDataError(
            f"the evaluation is of task={evaluation.task!r}, label_column={evaluation.label_column!r}, but "
            f"the gate has task={config.task!r}, label_column={config.label_column!r}: pass the evaluation "
            "of this model"
        )
    if evaluation.rows != len(test_df):
        raise InputDataError(
            f"the evaluation covers {evaluation.rows} rows but the test split has {len(test_df)}: pass "
            "the test split the model was evaluated on"
        )
    slices = gated_slices(evaluation, config.slice_columns)
    slice_columns = list(dict.fromkeys(s.column for s in slices))
    model = load_estimator(model_dir, "model")

    candidate = {
        "uri": candidate_uri or str(model_dir),
        "version": _registry_version(candidate_uri, model_registry, model_name),
        "sha256": metadata.get("sha256"),
    }
    baseline_info = None
    baseline_eval = None
    pointer = read_champion(model_registry, model_name) if model_registry.strip() else None
    notes = []
    if not model_registry.strip():
        notes.append("no model_registry is set, so there is no champion to compare with")
    if pointer is not None:
        with tempfile.TemporaryDirectory(prefix="mlstages-baseline-") as scratch:
            baseline_model, baseline_meta = load_baseline(pointer["model_uri"], Path(scratch) / "model")
            baseline_eval = evaluate_baseline(
                baseline_model, baseline_meta, test_df, config, slice_columns, pointer["model_uri"]
            )
        baseline_info = {
            "uri": pointer["model_uri"],
            "version": pointer.get("version"),
            "sha256": baseline_meta.get("sha256"),
            "pointer": champion_uri(model_registry, model_name),
        }
        if baseline_meta.get("sha256") and baseline_meta.get("sha256") == metadata.get("sha256"):
            notes.append("the candidate is the champion itself (same sha256)")
    elif model_registry.strip():
        notes.append(f"no champion at {champion_uri(model_registry, model_name)} yet")

    checks = check_thresholds(evaluation, baseline_eval, config.thresholds, config)
    checks += robustness_checks(model, test_df, metadata)
    blessing = decide(
        checks,
        config.thresholds,
        baseline_eval is not None,
        candidate=candidate,
        baseline=baseline_info,
        min_slice_rows=config.min_slice_rows,
        notes=notes,
    )
    if blessing.blessed and infra_validation:
        blessing = run_infra_validation(blessing, model_dir, test_df, metadata, config)
    return blessing


def run_infra_validation(
    blessing: Blessing,
    model_dir: str | os.PathLike,
    test_df: pd.DataFrame,
    metadata: Mapping[str, Any],
    config: BlessingConfig,
) -> Blessing:
    """Load and query the model in the serving code (KServe's model server, as on the cluster).
    Raises InfraValidationFailed when it cannot be served; returns the blessing with the result."""
    from dataclasses import replace

    from mlstages.components.serving.infra import infra_validate
    from mlstages.components.serving.infra import render_markdown as infra_markdown

    features = [str(f["name"]) for f in metadata.get("input_features") or []] or [
        c for c in test_df.columns if c != config.label_column
    ]
    sample = test_df[features].head(INFRA_SAMPLE_ROWS).reset_index(drop=True)
    result = infra_validate(str(model_dir), sample, name="candidate")
    result.raise_for_failure()
    record = result.to_dict()
    record["summary"] = infra_markdown(result)
    return replace(blessing, infra_validation=record)


# --- reports -----------------------------------------------------------------------------------


def _model_rows(blessing: Blessing) -> list[dict[str, Any]]:
    rows = [{"model": "candidate", **{k: blessing.candidate.get(k) for k in ("version", "uri", "sha256")}}]
    if blessing.baseline is None:
        rows.append({"model": "baseline", "version": "none (first run)", "uri": "", "sha256": ""})
    else:
        rows.append(
            {
                "model": "baseline (champion)",
                **{k: blessing.baseline.get(k) for k in ("version", "uri", "sha256")},
            }
        )
    return rows


def _threshold_rows(blessing: Blessing) -> list[dict[str, Any]]:
    return [
        {
            "scope": c.scope,
            "rows": c.rows,
            "metric": c.metric,
            "rule": c.rule,
            "threshold": c.threshold,
            "value": "n/a" if c.value is None else c.value,
            "baseline": c.baseline,
            "status": c.status,
        }
        for c in blessing.checks
        if c.kind == THRESHOLD
    ]


def _robustness_rows(blessing: Blessing) -> list[dict[str, Any]]:
    return [
        {
            "simulation": c.rule,
            "column": c.column or "(all)",
            "simulated rows": c.rows,
            "status": c.status,
            "detail": c.message,
        }
        for c in blessing.checks
        if c.kind == ROBUSTNESS
    ]


_THRESHOLD_COLUMNS = ["scope", "rows", "metric", "rule", "threshold", "value", "baseline", "status"]
_ROBUSTNESS_COLUMNS = ["simulation", "column", "simulated rows", "status", "detail"]


def _headline(blessing: Blessing) -> str:
    counts = blessing.counts
    return (
        f"{blessing.decision.upper()}: {counts[PASSED]} check(s) passed, {counts[FAILED]} failed, "
        f"{counts[NOT_GATED]} reported but not gated."
    )


def render_html(blessing: Blessing) -> str:
    """The gate's report: decision, reasons, models compared, every threshold and robustness check."""
    from mlstages.components.common.reports import html_list, html_page, html_paragraph, html_table

    sections = [
        (
            "Decision",
            html_paragraph(_headline(blessing), "ok" if blessing.blessed else "bad")
            + html_list(blessing.reasons),
        ),
        ("Models", html_table(_model_rows(blessing), ["model", "version", "uri", "sha256"])),
    ]
    thresholds = _threshold_rows(blessing)
    sections.append(
        (
            "Thresholds",
            html_table(thresholds, _THRESHOLD_COLUMNS)
            if thresholds
            else html_paragraph("No threshold was checked."),
        )
    )
    sections.append(("Robustness", html_table(_robustness_rows(blessing), _ROBUSTNESS_COLUMNS)))
    if blessing.notes:
        sections.append(("Notes", html_list(blessing.notes)))
    if blessing.infra_validation is not None:
        infra = blessing.infra_validation
        rows = [
            {"check": c["name"], "result": "pass" if c["passed"] else "FAIL", "detail": c["detail"]}
            for c in infra.get("checks", [])
        ]
        sections.append(
            (
                "Infra validation",
                html_paragraph(
                    f"The candidate was served by the model server on 127.0.0.1 and queried with "
                    f"{infra.get('rows')} test row(s): {'passed' if infra.get('passed') else 'FAILED'}."
                )
                + html_table(rows, ["check", "result", "detail"]),
            )
        )
    return html_page("Model validation", sections)


def render_markdown(blessing: Blessing) -> str:
    """The run summary: decision, reasons, models, failed checks and notes."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    lines = ["# Validate model", "", f"**{markdown_text(_headline(blessing))}**", ""]
    lines += [f"- {markdown_text(r)}" for r in blessing.reasons]
    lines += ["", markdown_table(_model_rows(blessing), ["model", "version", "uri", "sha256"]), ""]
    thresholds = _threshold_rows(blessing)
    if thresholds:
        lines += ["## Thresholds", "", markdown_table(thresholds, _THRESHOLD_COLUMNS), ""]
    lines += ["## Robustness", "", markdown_table(_robustness_rows(blessing), _ROBUSTNESS_COLUMNS), ""]
    if blessing.notes:
        lines += ["## Notes", ""] + [f"- {markdown_text(n)}" for n in blessing.notes] + [""]
    if blessing.infra_validation is not None:
        # The serving code's own summary, which leaves the heading to its caller.
        lines += ["## Infra validation", "", str(blessing.infra_validation.get("summary", "")), ""]
    return "\n".join(lines)
