"""Robustness: the model on rows with missing values, unseen categories and extreme values."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError, require_choice
from mlstages.components.common.model_card import ModelCard
from mlstages.components.evaluate.metrics import CLASSIFICATION, REGRESSION, TASKS
from mlstages.components.validate_model.thresholds import (
    ALL_MISSING,
    EXTREME_VALUE,
    FAILED,
    MISSING,
    PASSED,
    ROBUSTNESS,
    UNSEEN_CATEGORY,
    Check,
)

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


def _features(card: ModelCard, test_df: pd.DataFrame) -> dict[str, str]:
    """Raw input column -> logical type, in the model's input order (from its card)."""
    columns = card.input_columns
    missing = [c for c in columns if c not in test_df.columns]
    if missing:
        raise InputDataError(
            f"the test split lacks the model's input column(s) {', '.join(map(repr, missing))}: pass the "
            "test split the model was evaluated on"
        )
    return columns


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


def robustness_checks(model: Any, test_df: pd.DataFrame, card: ModelCard) -> list[Check]:
    """Predict on rows simulated from the first test rows: each feature missing in turn, every
    feature missing, an unseen category in each categorical (and text) column, extreme values of
    each numeric column. Each passes when predict gives one prediction per row, finite (regression)
    or one of the known classes, and predict_proba rows are finite, within [0, 1] and sum to 1.

    ``card`` is the model's card: task, classes, input features and their types.
    """
    task = card.task
    require_choice("task", task, TASKS)
    if len(test_df) == 0:
        raise InputDataError("the test split has no rows: there are no rows to simulate from")
    types = _features(card, test_df)
    classes = list(card.classes) if card.classes is not None else None
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
