"""Data validation: statistics, a schema (inferred or given), and the anomalies between them.

The stage does what TFX's StatisticsGen, SchemaGen and ExampleValidator do, on one DataFrame:

- ``compute_statistics`` describes every column (type, missing values, distinct values, numeric
  moments and quantiles, IQR outliers, top categories) as plain JSON.
- ``infer_schema`` turns statistics into a schema: plain JSON a user can read, edit and feed back
  (types, whether a column may be missing, numeric ranges, category domains, the label).
- ``check_dataset`` compares data with a schema and returns ``Anomaly`` records; ``validate`` runs
  all three, and ``raise_for_anomalies`` applies the policy.

Row numbers in messages are 0-based positions in the dataset, whatever its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlstages.components.common.column_checks import apply_column_types
from mlstages.components.common.errors import (
    ValidationFailed,
)
from mlstages.components.validate_data.anomalies import Anomaly, check_dataset
from mlstages.components.validate_data.config import ERROR, WARNING, ValidationConfig
from mlstages.components.validate_data.schema import infer_schema, validate_schema
from mlstages.components.validate_data.statistics import _with_text_column_names, compute_statistics


@dataclass(frozen=True)
class ValidationResult:
    """Statistics, the schema they were checked against, the anomalies, and the decision.

    ``passed`` is False when any anomaly has error severity, whatever the policy.
    """

    statistics: dict[str, Any]
    schema: dict[str, Any]
    anomalies: tuple[Anomaly, ...]
    passed: bool
    schema_source: str
    policy: str = "fail"

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == ERROR]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == WARNING]

    @property
    def decision(self) -> str:
        """One line for reports: passed, passed with warnings, or failed (and what follows)."""
        warnings = f"{len(self.warnings)} warning(s)"
        if self.passed:
            return f"passed with {warnings}" if self.warnings else "passed"
        outcome = "the task fails" if self.policy == "fail" else "the pipeline continues"
        return f"failed: {len(self.errors)} error(s), {warnings}; policy {self.policy!r}: {outcome}"

    def summary_metadata(self) -> dict[str, Any]:
        """Counts recorded on the output artifacts."""
        dataset = self.statistics["dataset"]
        return {
            "rows": dataset["rows"],
            "columns": dataset["columns"],
            "duplicate_rows": dataset["duplicate_rows"],
            "passed": self.passed,
            "policy": self.policy,
            "schema_source": self.schema_source,
            "anomaly_count": len(self.anomalies),
            "error_count": len(self.errors),
            "warning_count": len(self.warnings),
        }


def validate(
    df: pd.DataFrame, config: ValidationConfig, schema: dict[str, Any] | None = None
) -> ValidationResult:
    """Statistics of ``df``, checked against ``schema`` (or a schema inferred from ``df``).

    Never raises for anomalies: call ``raise_for_anomalies`` to apply the policy. An inferred schema
    only finds problems visible in the data alone (missing values, duplicates, constant columns,
    the label); a given one also checks types, ranges, domains and columns.
    """
    df = apply_column_types(_with_text_column_names(df), config.column_types)
    statistics = compute_statistics(df)
    if schema is not None:
        schema = validate_schema(schema)
        source = "given"
    else:
        label = config.label_column if config.label_column in df.columns else None
        schema = infer_schema(df, statistics, label, max_domain_size=config.max_domain_size)
        source = "inferred"
    anomalies = tuple(check_dataset(df, schema, statistics, config))
    passed = not any(a.severity == ERROR for a in anomalies)
    return ValidationResult(statistics, schema, anomalies, passed, source, config.policy)


def raise_for_anomalies(result: ValidationResult) -> None:
    """Raise ValidationFailed listing every error, one a line, when the policy is "fail"."""
    if result.policy != "fail" or result.passed:
        return
    lines = [f"- {a.kind}: {a.message}" for a in result.errors]
    raise ValidationFailed(
        f"data validation failed with {len(lines)} error(s) (policy 'fail'; set policy='warn' to "
        f"continue with a report, or fix the data or the schema):\n" + "\n".join(lines),
        anomalies=result.errors,
    )
