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

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from mlstages.components.common.engine import Engine
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.common.reference import (
    CATEGORICAL_KIND,
    NUMERIC_KIND,
)
from mlstages.components.monitor_drift.config import (
    AUTO,
    CHISQUARE,
    JENSEN_SHANNON,
    KS,
    NOT_TESTED,
    PSI,
    WASSERSTEIN,
    Z_TEST,
    DriftConfig,
    FeatureRule,
)
from mlstages.components.monitor_drift.decision import _retrain_reasons, _warnings
from mlstages.components.monitor_drift.performance import check_performance
from mlstages.components.monitor_drift.results import DriftResult, PerformanceCheck
from mlstages.components.monitor_drift.tests_by_type import compare_column
from mlstages.components.monitor_drift.window import WindowAccumulator

# The labelled rows the performance check scores: every one while the window fits this share of
# the task's memory, else a seeded sample of that many rows.
PERFORMANCE_MEMORY_SHARE = 0.2
PERFORMANCE_SEED = 0


def is_prediction_log_column(name: str) -> bool:
    """Columns the model server's prediction log adds beside the features: not new features."""
    from mlstages.components.serving.log_format import LOG_COLUMNS, PREDICTION_COLUMN, PROBABILITY_PREFIX

    return name == PREDICTION_COLUMN or name in LOG_COLUMNS or name.startswith(PROBABILITY_PREFIX)


def detect_drift(
    reference: Mapping[str, Any],
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    *,
    model: Any = None,
    model_card: ModelCard | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` (from ``reference.load_reference``) and decide.

    ``model`` (the exported Pipeline) and its ``model_card`` are optional; with them and labels
    in the window, performance is checked too.
    """
    config = config or DriftConfig()
    if len(current) == 0:
        raise InputDataError("the current window has no rows: there is nothing to compare with the reference")
    columns = [str(c) for c in current.columns]
    label_column = _prepare(reference, config, model_card)
    window = WindowAccumulator(reference, columns, label_column)
    window.update(current.set_axis(columns, axis=1), start=0)
    performance = None
    if model is not None:
        performance = check_performance(
            model, model_card, current, label_column or "", reference.get("metrics"), config
        )
    return _decide(reference, window, config, label_column, performance, model)


def detect_drift_dataset(
    reference: Mapping[str, Any],
    path: str | os.PathLike,
    config: DriftConfig | None = None,
    *,
    model: Any = None,
    model_card: ModelCard | None = None,
    batch_rows: int | None = None,
    engine: Engine | None = None,
) -> DriftResult:
    """``detect_drift`` of the window at ``path`` (a folder of Parquet parts or one file), read a
    batch at a time (see ``window``). Performance is measured on every labelled row of a window
    that fits the task's memory, else on a seeded sample of its rows (the result says so).
    ``engine``: an open ``common.engine.Engine``; a distributed one summarises the parts on its
    workers."""
    from mlstages.components.common.dataset_files import (
        DEFAULT_BATCH_ROWS,
        bytes_per_row,
        dataset_columns,
        dataset_rows,
        iter_batches,
        part_starts,
        read_dataset_head,
    )
    from mlstages.components.common.dataset_positions import sample_rows
    from mlstages.components.common.memory import rows_within

    what = "current window"
    config = config or DriftConfig()
    rows = dataset_rows(path, what=what)
    if rows == 0:
        raise InputDataError("the current window has no rows: there is nothing to compare with the reference")
    columns = dataset_columns(path, what=what)
    label_column = _prepare(reference, config, model_card)
    window = WindowAccumulator(reference, columns, label_column)
    if window.needed_columns and engine is not None and engine.distributed:
        # Each part summarised on a worker, merged here in part order: the same summaries.
        parts = engine.imap(
            window_part,
            part_starts(path, what=what),
            reference=reference,
            columns=columns,
            label_column=label_column,
            sample_values=window.sample_values,
            batch_rows=batch_rows or DEFAULT_BATCH_ROWS,
            what=what,
        )
        for part in parts:
            window.merge(part)
    elif window.needed_columns:
        for batch in iter_batches(
            path, batch_rows=batch_rows or DEFAULT_BATCH_ROWS, columns=window.needed_columns, what=what
        ):
            window.update(batch, start=int(batch.index[0]))
    else:
        window.rows = rows
    performance = None
    if model is not None:
        if label_column and label_column in columns:
            size = rows_within(PERFORMANCE_MEMORY_SHARE, bytes_per_row(path, what=what))
            labelled = sample_rows(path, size, PERFORMANCE_SEED, what=what).reset_index(drop=True)
        else:
            labelled = read_dataset_head(path, 0, what=what)
        performance = check_performance(
            model, model_card, labelled, label_column or "", reference.get("metrics"), config
        )
        if len(labelled) < rows and performance.computed:
            performance = replace(
                performance,
                message=f"{performance.message} (on a seeded sample of {len(labelled):,} of the window's "
                f"{rows:,} rows)",
            )
    return _decide(reference, window, config, label_column, performance, model)


def window_part(
    shard: tuple[str, int],
    *,
    reference: Mapping[str, Any],
    columns: list[str],
    label_column: str | None,
    sample_values: int,
    batch_rows: int,
    what: str,
) -> WindowAccumulator:
    """The window summary of one part (its file and first row's position); runs on a worker, with
    the task's ``sample_values``."""
    from mlstages.components.common.dataset_files import iter_part_batches

    file, start = shard
    window = WindowAccumulator(reference, columns, label_column, sample_values)
    for batch in iter_part_batches(
        file, start, batch_rows=batch_rows, columns=window.needed_columns, what=what
    ):
        window.update(batch, start=int(batch.index[0]))
    return window


def _prepare(reference: Mapping[str, Any], config: DriftConfig, model_card: ModelCard | None) -> str | None:
    """Check the configuration against the reference; the label column to compare, if any."""
    features = [str(f) for f in reference["features"]]
    unknown = [f for f in config.feature_thresholds if f not in features]
    if unknown:
        raise ParameterError(
            f"parameter feature_thresholds names {', '.join(map(repr, unknown))}, not feature(s) of the "
            f"reference; its features are: {', '.join(features)}"
        )
    _check_explicit_methods(reference, config)
    return _label_column(reference, config, model_card)


def _decide(
    reference: Mapping[str, Any],
    window: WindowAccumulator,
    config: DriftConfig,
    label_column: str | None,
    performance: PerformanceCheck | None,
    model: Any,
) -> DriftResult:
    features = [str(f) for f in reference["features"]]
    results = [
        compare_column(
            name,
            reference["columns"][name],
            window.summary(name),
            config.rule(name),
            config.max_missing_increase,
        )
        for name in features
    ]
    known = set(features) | ({label_column} if label_column else set())
    new_columns = [c for c in window.columns if c not in known and not is_prediction_log_column(c)]

    checked = [f for f in results if f.status != NOT_TESTED]
    drifted = [f for f in checked if f.drifted]
    share = len(drifted) / len(checked) if checked else 0.0
    dataset_drift = bool(checked) and share >= config.drift_share

    label = None
    if label_column and reference.get("label") and label_column in window.columns:
        label = compare_column(
            label_column,
            reference["label"],
            window.summary(label_column),
            FeatureRule(),
            config.max_missing_increase,
        )

    warnings = _warnings(results, checked, window.columns, label_column, performance, model)
    reasons = _retrain_reasons(config, dataset_drift, share, drifted, checked, performance)
    return DriftResult(
        rows=window.rows,
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
    reference: Mapping[str, Any], config: DriftConfig, model_card: ModelCard | None
) -> str | None:
    recorded = reference.get("label_column") or (model_card.label_column if model_card else None)
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
