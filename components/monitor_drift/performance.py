"""Performance decay: the model on the labelled rows of the window against its test-set metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from mlstages.components.common.errors import MlstagesError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.monitor_drift.config import DriftConfig
from mlstages.components.monitor_drift.results import PerformanceCheck


def check_performance(
    model: Any,
    model_card: ModelCard | None,
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
    from mlstages.components.evaluate.metrics import LOWER_IS_BETTER

    reference_metrics = dict(reference_metrics or {})
    if model_card is None:
        return PerformanceCheck(False, "not computed: no model card (metadata.json) came with the model")
    task = model_card.task
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
        classes, input_columns = model_inputs(model_card, label_column, task)
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
