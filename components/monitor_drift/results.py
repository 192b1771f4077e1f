"""What the drift monitor found: per feature, for performance, and for the whole window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlstages.components.monitor_drift.config import MAX_NAMES_SHOWN


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


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f}%"


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    more = len(names) - MAX_NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")
