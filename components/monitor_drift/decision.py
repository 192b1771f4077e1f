"""The retrain decision and its reasons, and the warnings that go with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlstages.components.monitor_drift.config import NOT_TESTED, DriftConfig
from mlstages.components.monitor_drift.results import FeatureDrift, PerformanceCheck, _names


def _warnings(
    results: list[FeatureDrift],
    checked: list[FeatureDrift],
    current_columns: Sequence[str],
    label_column: str | None,
    performance: PerformanceCheck | None,
    model: Any,
) -> list[str]:
    warnings = []
    if not checked:
        warnings.append("no feature could be tested (every reference column is of an untested type)")
    if performance is not None and not performance.computed:
        warnings.append(f"performance {performance.message}")
    if model is None and label_column and label_column in current_columns:
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
