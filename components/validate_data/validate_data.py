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

import html
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import (
    BOOLEAN,
    CATEGORICAL,
    DATETIME,
    LOGICAL_TYPES,
    NUMERIC,
    TEXT,
    logical_type,
)
from mlstages.components.common.errors import (
    InputDataError,
    ParameterError,
    ValidationFailed,
    require_choice,
)
from mlstages.components.common.labels import CLASSIFICATION, REGRESSION, detect_task
from mlstages.components.common.reports import (
    format_value,
    html_page,
    html_paragraph,
    html_table,
    markdown_table,
    markdown_text,
)

SCHEMA_VERSION = 1
POLICIES = ("fail", "warn")
ERROR = "error"
WARNING = "warning"
LABEL_KINDS = (CLASSIFICATION, REGRESSION)

TOP_CATEGORIES = 20
HISTOGRAM_BINS = 20
IQR_FACTOR = 1.5
OUTLIER_RULE = (
    f"IQR rule: a value is an outlier when it is below Q1 - {IQR_FACTOR} x IQR or above "
    f"Q3 + {IQR_FACTOR} x IQR (Q1, Q3: 25th and 75th percentiles, IQR = Q3 - Q1); "
    "not applied when IQR is 0"
)
# Added to the missing share observed in the reference data, so a new batch of similar data with a
# few more gaps is not an anomaly; the absolute cap is ValidationConfig.max_missing_share.
MISSING_SHARE_MARGIN = 0.05
# How many row numbers an anomaly keeps, and how many its message names.
MAX_ROW_EXAMPLES = 20
ROWS_IN_MESSAGE = 5
VALUES_IN_MESSAGE = 5

# String columns move between these two logical types with their distinct share and word count,
# which change from one batch to the next; either is a string column, so neither is a wrong type.
_STRING_TYPES = frozenset({CATEGORICAL, TEXT})
_DOMAIN_TYPES = frozenset({CATEGORICAL, BOOLEAN})
_COLUMN_KEYS = frozenset({"type", "may_be_missing", "max_missing_share", "range", "domain"})


# --- configuration and results -----------------------------------------------------------------


@dataclass(frozen=True)
class ValidationConfig:
    """What counts as an anomaly, and what to do about it.

    label_column: the label; "" for unlabeled data (serving or monitoring batches), in which case a
        label column named by a given schema may be absent.
    policy: "fail" raises ValidationFailed when any error-severity anomaly is found; "warn" reports.
    max_missing_share: a column with a larger share of missing values is an error.
    max_duplicate_share: a larger share of rows that repeat an earlier row is an error.
    range_tolerance: numeric values may lie outside the schema range by this fraction of the range.
    check_outliers: warn when a numeric column has more IQR outliers than max_outlier_share.
    max_outlier_share: see check_outliers.
    max_domain_size: an inferred schema lists the categories of a column with at most this many
        distinct values; columns with more get no category check.
    """

    label_column: str = ""
    policy: str = "fail"
    max_missing_share: float = 0.5
    # Real tabular data has some exact repeats (coarse features, repeated measurements), so a few
    # are normal; more than 5% usually means a join fanned out or a file was ingested twice, and the
    # repeats then leak between the train and test splits.
    max_duplicate_share: float = 0.05
    # The observed range of one sample is narrower than the population's: a new batch's extremes
    # fall a little outside it. 10% of the range lets those through and still catches unit changes
    # (grams for kilograms) and sentinel values (-999).
    range_tolerance: float = 0.1
    check_outliers: bool = True
    max_outlier_share: float = 0.05
    max_domain_size: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str):
            raise ParameterError(
                f"parameter label_column must be a column name (text), got {self.label_column!r}"
            )
        require_choice("policy", self.policy, POLICIES)
        for name in ("max_missing_share", "max_duplicate_share", "max_outlier_share"):
            _require_share(name, getattr(self, name))
        value = self.range_tolerance
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ParameterError(
                f"parameter range_tolerance={value!r} must be a number >= 0 "
                "(a fraction of the schema's range, e.g. 0.1 for 10%)"
            )
        if not isinstance(self.check_outliers, bool):
            raise ParameterError(f"parameter check_outliers={self.check_outliers!r} must be true or false")
        size = self.max_domain_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ParameterError(f"parameter max_domain_size={size!r} must be a whole number >= 1")


def _require_share(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ParameterError(f"parameter {name}={value!r} must be a share between 0 and 1 (e.g. 0.05 for 5%)")


@dataclass(frozen=True)
class Anomaly:
    """One finding. ``rows`` holds up to MAX_ROW_EXAMPLES 0-based row numbers that show it."""

    column: str | None
    kind: str
    severity: str
    message: str
    rows: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["rows"] = list(self.rows)
        return record


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


# --- statistics --------------------------------------------------------------------------------


def compute_statistics(df: pd.DataFrame) -> dict[str, Any]:
    """Describe ``df``: dataset-level counts and per-column statistics, as plain JSON values.

    Numeric columns: min, max, mean, std (pandas' sample std), quantiles p01..p99, share of zeros,
    IQR outliers (see OUTLIER_RULE) and a histogram; moments and quantiles use finite values only
    and ``infinite`` counts the rest. String, categorical and boolean columns: the top
    TOP_CATEGORIES values with their counts (text also its mean length in words). Datetime
    columns: min and max. Values that are undefined (no data) are None, never NaN.
    """
    df = _with_text_column_names(df)
    rows = len(df)
    duplicates = int(_comparable(df).duplicated().sum()) if rows else 0
    return {
        "dataset": {
            "rows": rows,
            "columns": int(df.shape[1]),
            "duplicate_rows": duplicates,
            "duplicate_share": duplicates / rows if rows else None,
        },
        "outlier_rule": OUTLIER_RULE,
        "columns": {str(name): _column_statistics(df[name]) for name in df.columns},
    }


def _column_statistics(series: pd.Series) -> dict[str, Any]:
    kind = logical_type(series)
    total = len(series)
    present = series.dropna()
    missing = total - len(present)
    stats: dict[str, Any] = {
        "logical_type": kind,
        "dtype": str(series.dtype),
        "count": len(present),
        "missing": missing,
        "missing_share": missing / total if total else None,
    }
    if kind == NUMERIC:
        stats["distinct"] = int(present.nunique())
        stats.update(_numeric_statistics(present))
    elif kind == DATETIME:
        stats["distinct"] = int(present.nunique())
        stats["min"] = present.min().isoformat() if len(present) else None
        stats["max"] = present.max().isoformat() if len(present) else None
    else:
        labels = category_labels(present)
        stats["distinct"] = int(labels.nunique())
        stats["top_values"] = _top_values(labels)
        if kind == TEXT:
            stats["mean_words"] = _float(labels.str.split().str.len().mean())
    return stats


def _numeric_statistics(present: pd.Series) -> dict[str, Any]:
    values = present.to_numpy(dtype="float64")
    finite = values[np.isfinite(values)]
    stats: dict[str, Any] = {"infinite": int(len(values) - len(finite))}
    if not len(finite):
        stats.update(
            min=None,
            max=None,
            mean=None,
            std=None,
            quantiles=None,
            zeros_share=None,
            outliers=None,
            outlier_share=None,
            outlier_bounds=None,
            histogram=None,
        )
        return stats
    q01, q25, q50, q75, q99 = (float(q) for q in np.quantile(finite, [0.01, 0.25, 0.5, 0.75, 0.99]))
    stats.update(
        min=float(finite.min()),
        max=float(finite.max()),
        mean=_float(finite.mean()),
        std=_float(finite.std(ddof=1)) if len(finite) > 1 else None,
        quantiles={"p01": q01, "p25": q25, "p50": q50, "p75": q75, "p99": q99},
        zeros_share=float((finite == 0).sum() / len(values)),
    )
    iqr = q75 - q25
    if iqr > 0:
        lower, upper = q25 - IQR_FACTOR * iqr, q75 + IQR_FACTOR * iqr
        outliers = int(((values < lower) | (values > upper)).sum())
        stats.update(
            outliers=outliers,
            outlier_share=outliers / len(values),
            outlier_bounds={"lower": lower, "upper": upper},
        )
    else:
        stats.update(outliers=None, outlier_share=None, outlier_bounds=None)
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    stats["histogram"] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
    return stats


def _top_values(labels: pd.Series) -> list[dict[str, Any]]:
    counts = labels.value_counts()
    # value_counts breaks ties arbitrarily; sort them by value so the statistics are deterministic.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
    return [{"value": value, "count": int(count)} for value, count in ordered]


def category_labels(values: pd.Series) -> pd.Series:
    """Non-numeric values as the strings a schema domain holds (``str`` of each value)."""
    return values.map(str).astype(object)


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with unhashable cells (lists, dicts from Parquet) replaced by their repr."""
    result = df
    for name in df.columns:
        column = df[name]
        if column.dtype == object and not column.map(_is_hashable).all():
            if result is df:
                result = df.copy()
            result[name] = column.map(lambda v: v if _is_hashable(v) else repr(v))
    return result


def _is_hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _with_text_column_names(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with column names as strings (schemas are JSON), which must be unique."""
    names = pd.Index([str(c) for c in df.columns])
    duplicated = sorted(set(names[names.duplicated()]))
    if duplicated:
        raise InputDataError(
            f"the dataset has duplicate column names: {', '.join(map(repr, duplicated))}; "
            "rename them so every column has its own name"
        )
    if all(isinstance(c, str) for c in df.columns):
        return df
    return df.set_axis(list(names), axis=1)


# --- schema ------------------------------------------------------------------------------------


def label_kind(series: pd.Series) -> str:
    """classification or regression, by the rule every stage uses (common.labels.detect_task):
    numeric labels are regression unless they look like class ids."""
    return detect_task(series)


def infer_schema(
    df: pd.DataFrame,
    statistics: dict[str, Any] | None = None,
    label_column: str | None = None,
    *,
    max_domain_size: int = 100,
    missing_margin: float = MISSING_SHARE_MARGIN,
) -> dict[str, Any]:
    """A schema that ``df`` satisfies, from its statistics (computed when not given).

    Per column: its logical type; ``may_be_missing`` (missing values were seen) and
    ``max_missing_share`` (the share seen plus ``missing_margin``); numeric columns their observed
    ``range``; categorical and boolean columns with at most ``max_domain_size`` distinct values their
    ``domain`` (other columns get ``domain: null``, meaning no category check). The label, when
    named, is recorded with its kind. Edit the result freely and pass it back to ``validate``.
    """
    df = _with_text_column_names(df)
    if statistics is None:
        statistics = compute_statistics(df)
    columns: dict[str, Any] = {}
    for name, stats in statistics["columns"].items():
        spec: dict[str, Any] = {
            "type": stats["logical_type"],
            "may_be_missing": stats["missing"] > 0,
            "max_missing_share": _ceil6(min(1.0, (stats["missing_share"] or 0.0) + missing_margin)),
        }
        if stats["logical_type"] == NUMERIC:
            spec["range"] = {"min": stats["min"], "max": stats["max"]} if stats["min"] is not None else None
        elif stats["logical_type"] in _DOMAIN_TYPES:
            spec["domain"] = (
                sorted(category_labels(df[name].dropna()).unique().tolist())
                if stats["distinct"] <= max_domain_size
                else None
            )
        columns[name] = spec
    label = None
    if label_column:
        if label_column not in df.columns:
            raise InputDataError(
                f"label_column {label_column!r} is not in the dataset; it has: {_names(df.columns)}"
            )
        label = {"column": label_column, "kind": label_kind(df[label_column])}
    return {"version": SCHEMA_VERSION, "label": label, "columns": columns}


def _ceil6(value: float) -> float:
    # Rounded up, so the data the schema was inferred from always satisfies it; the inner round
    # drops float noise (0.1 + 0.05 is 0.15000000000000002) that would otherwise round up too.
    return math.ceil(round(value * 1e6, 3)) / 1e6


def validate_schema(schema: Any, source: str = "schema") -> dict[str, Any]:
    """Return ``schema`` if it is a well-formed schema; else raise InputDataError naming ``source``
    and the faulty entry."""

    def fail(where: str, problem: str) -> InputDataError:
        return InputDataError(f"{source}: {where} {problem}")

    if not isinstance(schema, dict):
        raise fail("the document", f"must be a JSON object, got {type(schema).__name__}")
    if schema.get("version") != SCHEMA_VERSION:
        raise fail("version", f"must be {SCHEMA_VERSION}, got {schema.get('version')!r}")
    columns = schema.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise fail("columns", "must be a non-empty object mapping column names to their specs")
    for name, spec in columns.items():
        where = f"columns.{name}"
        if not isinstance(spec, dict):
            raise fail(where, "must be an object")
        unknown = sorted(set(spec) - _COLUMN_KEYS)
        if unknown:
            raise fail(
                where,
                f"has unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_COLUMN_KEYS))}",
            )
        if spec.get("type") not in LOGICAL_TYPES:
            raise fail(
                f"{where}.type", f"must be one of {', '.join(LOGICAL_TYPES)}, got {spec.get('type')!r}"
            )
        if "may_be_missing" in spec and not isinstance(spec["may_be_missing"], bool):
            raise fail(f"{where}.may_be_missing", f"must be true or false, got {spec['may_be_missing']!r}")
        share = spec.get("max_missing_share")
        if share is not None and (not _is_number(share) or not 0 <= share <= 1):
            raise fail(f"{where}.max_missing_share", f"must be a number between 0 and 1, got {share!r}")
        bounds = spec.get("range")
        if bounds is not None:
            if not isinstance(bounds, dict) or set(bounds) - {"min", "max"}:
                raise fail(f"{where}.range", 'must be null or an object with "min" and "max"')
            for end in ("min", "max"):
                if bounds.get(end) is not None and not _is_number(bounds[end]):
                    raise fail(f"{where}.range.{end}", f"must be a number or null, got {bounds[end]!r}")
            low, high = bounds.get("min"), bounds.get("max")
            if low is not None and high is not None and low > high:
                raise fail(f"{where}.range", f"has min {low} greater than max {high}")
        domain = spec.get("domain")
        if domain is not None and (
            not isinstance(domain, list) or not all(isinstance(v, str) for v in domain)
        ):
            raise fail(
                f"{where}.domain",
                'must be null or a list of strings (quote numbers: ["1", "2"])',
            )
    label = schema.get("label")
    if label is not None:
        if not isinstance(label, dict) or not isinstance(label.get("column"), str):
            raise fail("label", 'must be null or an object with "column" and "kind"')
        if label["column"] not in columns:
            raise fail("label.column", f"{label['column']!r} is not one of the schema's columns")
        if label.get("kind") not in LABEL_KINDS:
            raise fail("label.kind", f"must be one of {', '.join(LABEL_KINDS)}, got {label.get('kind')!r}")
    return schema


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_schema(path: str | os.PathLike) -> dict[str, Any]:
    """Read a schema written by ``save_schema`` (or edited by hand) from a JSON file, or from a
    directory holding ``schema.json``."""
    target = Path(path)
    if target.is_dir():
        target = target / "schema.json"
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputDataError(f"schema file {target}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise InputDataError(f"schema file {target} is not UTF-8 text: {exc.reason}") from exc
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputDataError(
            f"schema file {target} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    return validate_schema(schema, source=f"schema file {target}")


def save_schema(schema: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``schema`` as indented JSON; the file appears whole or not at all."""
    validate_schema(schema)
    write_json(schema, path)


def write_json(document: Any, path: str | os.PathLike) -> None:
    """Write ``document`` as indented JSON beside its final name, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, allow_nan=False)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(text + "\n", encoding="utf-8")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


# --- checks ------------------------------------------------------------------------------------


def check_dataset(
    df: pd.DataFrame,
    schema: dict[str, Any],
    statistics: dict[str, Any],
    config: ValidationConfig,
) -> list[Anomaly]:
    """Compare ``df`` (described by ``statistics``) with ``schema``; errors first, then warnings.

    The label is checked when ``config.label_column`` is set. With it unset the data is taken as
    unlabeled, so the schema's label column may be absent.
    """
    validate_schema(schema)
    df = _with_text_column_names(df)
    anomalies: list[Anomaly] = []
    rows = statistics["dataset"]["rows"]
    if rows == 0:
        anomalies.append(Anomaly(None, "empty_dataset", ERROR, "the dataset has no rows"))
    else:
        anomalies += _check_duplicates(df, statistics, config)
    label = config.label_column
    schema_label = (schema.get("label") or {}).get("column")
    if label:
        anomalies += _check_label(df, schema, statistics, config)
    for name, spec in schema["columns"].items():
        if name not in df.columns:
            if name == label or (name == schema_label and not label):
                continue  # reported as label_missing, or absent from unlabeled data as expected
            anomalies.append(
                Anomaly(
                    name,
                    "missing_column",
                    ERROR,
                    f"column {name!r} is in the schema but not in the dataset; the dataset has: "
                    f"{_names(df.columns)}",
                )
            )
            continue
        if rows:
            kind = _label_kind_for(df, schema, name) if name == label else None
            anomalies += _check_column(df[name], spec, statistics["columns"][name], config, kind)
    for name in df.columns:
        if name not in schema["columns"]:
            anomalies.append(
                Anomaly(
                    name,
                    "unexpected_column",
                    WARNING,
                    f"column {name!r} is in the dataset but not in the schema: add it to the schema "
                    "or drop it upstream",
                )
            )
    return sorted(anomalies, key=lambda a: a.severity != ERROR)


def _check_duplicates(
    df: pd.DataFrame, statistics: dict[str, Any], config: ValidationConfig
) -> list[Anomaly]:
    dataset = statistics["dataset"]
    if not dataset["duplicate_rows"] or dataset["duplicate_share"] <= config.max_duplicate_share:
        return []
    comparable = _comparable(df)
    repeats = np.flatnonzero(comparable.duplicated().to_numpy())
    hashes = pd.util.hash_pandas_object(comparable, index=False).to_numpy()
    first_seen: dict[int, int] = {}
    for position, value in enumerate(hashes):
        first_seen.setdefault(int(value), position)
    pairs = ", ".join(f"row {r} repeats row {first_seen[int(hashes[r])]}" for r in repeats[:ROWS_IN_MESSAGE])
    return [
        Anomaly(
            None,
            "duplicate_rows",
            ERROR,
            f"{dataset['duplicate_rows']} of {dataset['rows']} rows ({dataset['duplicate_share']:.1%}) "
            f"repeat an earlier row, more than max_duplicate_share={config.max_duplicate_share}: "
            f"{pairs}; drop the duplicates upstream or raise max_duplicate_share",
            _examples(repeats),
        )
    ]


def _check_label(
    df: pd.DataFrame, schema: dict[str, Any], statistics: dict[str, Any], config: ValidationConfig
) -> list[Anomaly]:
    name = config.label_column
    if name not in df.columns:
        return [
            Anomaly(
                name,
                "label_missing",
                ERROR,
                f"label column {name!r} (parameter label_column) is not in the dataset; it has: "
                f"{_names(df.columns)}",
            )
        ]
    found: list[Anomaly] = []
    series = df[name]
    missing = np.flatnonzero(series.isna().to_numpy())
    if len(missing):
        found.append(
            Anomaly(
                name,
                "label_has_missing",
                ERROR,
                f"label column {name!r} is missing in {len(missing)} row(s), first rows (0-based): "
                f"{_row_list(missing)}; drop or fix these rows before training",
                _examples(missing),
            )
        )
    if _label_kind_for(df, schema, name) == CLASSIFICATION:
        classes = statistics["columns"][name]["distinct"]
        if classes < 2:
            seen = (
                f"only one class ({_value_list(category_labels(series.dropna()).unique()[:1])})"
                if classes
                else "no non-missing values"
            )
            found.append(
                Anomaly(
                    name,
                    "single_class_label",
                    ERROR,
                    f"classification label column {name!r} has {seen} in {len(series)} row(s); a "
                    "classifier needs at least two classes: check the filter that produced the data",
                )
            )
    return found


def _label_kind_for(df: pd.DataFrame, schema: dict[str, Any], name: str) -> str:
    """The schema's kind for the label when the schema names the same label, else inferred."""
    schema_label = schema.get("label") or {}
    return schema_label["kind"] if schema_label.get("column") == name else label_kind(df[name])


def _check_column(
    series: pd.Series,
    spec: dict[str, Any],
    stats: dict[str, Any],
    config: ValidationConfig,
    label: str | None,
) -> list[Anomaly]:
    """Checks of one column present in the data; ``label`` is the label's kind when it is the label."""
    is_label = label is not None
    name = str(series.name)
    expected, actual = spec["type"], stats["logical_type"]
    if stats["count"] == 0:
        if is_label:
            return []  # label_has_missing covers it
        return [
            Anomaly(
                name,
                "all_missing",
                ERROR,
                f"column {name!r} is entirely missing (all {stats['missing']} values): fix the "
                "source or drop the column",
            )
        ]
    if expected != actual and not _compatible_types(series, expected, actual):
        return [_wrong_type(series, expected, actual)]
    found: list[Anomaly] = []
    if not is_label:
        found += _check_missing(series, spec, stats, config)
    if actual == NUMERIC and spec.get("range"):
        found += _check_range(series, spec["range"], config.range_tolerance)
    if actual in _DOMAIN_TYPES | {TEXT} and spec.get("domain") is not None:
        found += _check_domain(series, spec["domain"])
    # A one-class classification label is reported as single_class_label.
    if stats["distinct"] == 1 and stats["count"] > 1 and label != CLASSIFICATION:
        only = stats["top_values"][0]["value"] if "top_values" in stats else stats["min"]
        found.append(
            Anomaly(
                name,
                "constant_column",
                WARNING,
                f"column {name!r} has the same value ({_value_list([only])}) in every non-missing row: "
                "it carries no information for a model",
            )
        )
    if config.check_outliers and actual == NUMERIC and stats["outliers"]:
        if stats["outlier_share"] > config.max_outlier_share:
            found.append(_outliers(series, stats, config))
    return found


def _compatible_types(series: pd.Series, expected: str, actual: str) -> bool:
    if {expected, actual} <= _STRING_TYPES:
        return True
    # A boolean column with missing values is stored as objects (True, False, None): still boolean.
    if expected == BOOLEAN and actual == CATEGORICAL:
        return bool(series.dropna().map(lambda v: isinstance(v, (bool, np.bool_))).all())
    return False


def _wrong_type(series: pd.Series, expected: str, actual: str) -> Anomaly:
    name = str(series.name)
    message = f"column {name!r} should be {expected} (per the schema) but is {actual} (dtype {series.dtype})"
    rows: np.ndarray = np.array([], dtype=int)
    if expected == NUMERIC and actual in _STRING_TYPES:
        present = series.notna().to_numpy()
        not_numbers = present & pd.to_numeric(series, errors="coerce").isna().to_numpy()
        rows = np.flatnonzero(not_numbers)
        if len(rows):
            message += (
                f"; {len(rows)} value(s) are not numbers, e.g. "
                f"{_value_list(series.iloc[rows[:VALUES_IN_MESSAGE]].map(str))} at rows (0-based) "
                f"{_row_list(rows)}"
            )
    message += "; fix the data or the schema's type"
    return Anomaly(name, "wrong_type", ERROR, message, _examples(rows))


def _check_missing(
    series: pd.Series, spec: dict[str, Any], stats: dict[str, Any], config: ValidationConfig
) -> list[Anomaly]:
    name = str(series.name)
    share, missing = stats["missing_share"], stats["missing"]
    if not missing:
        return []
    rows = np.flatnonzero(series.isna().to_numpy())
    seen = f"{share:.1%} of values are missing ({missing} of {len(series)}, first rows (0-based): {_row_list(rows)})"
    if share > config.max_missing_share:
        return [
            Anomaly(
                name,
                "too_many_missing",
                ERROR,
                f"column {name!r}: {seen}, more than max_missing_share={config.max_missing_share}",
                _examples(rows),
            )
        ]
    allowed = spec.get("max_missing_share")
    if allowed is not None and share > allowed:
        return [
            Anomaly(
                name,
                "too_many_missing",
                ERROR,
                f"column {name!r}: {seen}, more than the schema allows for it "
                f"(max_missing_share {allowed}); fix the source or edit the schema",
                _examples(rows),
            )
        ]
    if spec.get("may_be_missing") is False:
        return [
            Anomaly(
                name,
                "unexpected_missing",
                WARNING,
                f"column {name!r}: {seen}, and the schema says it had none (may_be_missing false)",
                _examples(rows),
            )
        ]
    return []


def _check_range(series: pd.Series, bounds: Mapping[str, Any], tolerance: float) -> list[Anomaly]:
    name = str(series.name)
    low, high = bounds.get("min"), bounds.get("max")
    if low is not None and high is not None and high > low:
        slack = tolerance * (high - low)
    else:
        # A one-sided or zero-width range has no width to take a fraction of: use the magnitude.
        slack = tolerance * max(abs(low or 0.0), abs(high or 0.0), 1.0)
    lower = -math.inf if low is None else low - slack
    upper = math.inf if high is None else high + slack
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        outside = (values < lower) | (values > upper)
    rows = np.flatnonzero(outside)
    if not len(rows):
        return []
    allowed = f"[{format_value(lower)}, {format_value(upper)}]"
    return [
        Anomaly(
            name,
            "out_of_range",
            ERROR,
            f"column {name!r}: {len(rows)} value(s) outside the schema range "
            f"[{format_value(low)}, {format_value(high)}] (with range_tolerance={tolerance}: {allowed}), "
            f"first rows (0-based): {_row_list(rows)}, values: "
            f"{', '.join(format_value(float(v)) for v in values[rows[:VALUES_IN_MESSAGE]])}",
            _examples(rows),
        )
    ]


def _check_domain(series: pd.Series, domain: list[str]) -> list[Anomaly]:
    name = str(series.name)
    labels = category_labels(series)
    unseen_mask = series.notna().to_numpy() & ~labels.isin(set(domain)).to_numpy()
    rows = np.flatnonzero(unseen_mask)
    if not len(rows):
        return []
    counts = _top_values(labels[unseen_mask])
    shown = ", ".join(f"{c['value']!r} ({c['count']})" for c in counts[:VALUES_IN_MESSAGE])
    more = f" and {len(counts) - VALUES_IN_MESSAGE} more" if len(counts) > VALUES_IN_MESSAGE else ""
    return [
        Anomaly(
            name,
            "out_of_domain",
            ERROR,
            f"column {name!r}: {len(rows)} value(s) not in the schema's domain: {shown}{more}; "
            f"first rows (0-based): {_row_list(rows)}; add them to the domain if they are valid",
            _examples(rows),
        )
    ]


def _outliers(series: pd.Series, stats: dict[str, Any], config: ValidationConfig) -> Anomaly:
    name = str(series.name)
    lower, upper = stats["outlier_bounds"]["lower"], stats["outlier_bounds"]["upper"]
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero((values < lower) | (values > upper))
    return Anomaly(
        name,
        "outliers",
        WARNING,
        f"column {name!r}: {stats['outliers']} value(s) ({stats['outlier_share']:.1%}) are outliers by "
        f"the IQR rule (outside [{format_value(lower)}, {format_value(upper)}] = "
        f"[Q1 - {IQR_FACTOR} x IQR, Q3 + {IQR_FACTOR} x IQR]), more than "
        f"max_outlier_share={config.max_outlier_share}; first rows (0-based): {_row_list(rows)}",
        _examples(rows),
    )


def _examples(rows: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(r) for r in list(rows)[:MAX_ROW_EXAMPLES])


def _row_list(rows: Any) -> str:
    rows = list(rows)
    shown = ", ".join(str(int(r)) for r in rows[:ROWS_IN_MESSAGE])
    return shown + (", ..." if len(rows) > ROWS_IN_MESSAGE else "")


def _value_list(values: Iterable[Any]) -> str:
    return ", ".join(repr(str(v)) for v in values)


def _names(columns: Iterable[Any]) -> str:
    names = [str(c) for c in columns]
    shown = ", ".join(names[:30])
    return shown + (f", ... ({len(names)} columns)" if len(names) > 30 else "") if names else "(no columns)"


# --- the whole stage ---------------------------------------------------------------------------


def validate(
    df: pd.DataFrame, config: ValidationConfig, schema: dict[str, Any] | None = None
) -> ValidationResult:
    """Statistics of ``df``, checked against ``schema`` (or a schema inferred from ``df``).

    Never raises for anomalies: call ``raise_for_anomalies`` to apply the policy. An inferred schema
    only finds problems visible in the data alone (missing values, duplicates, constant columns,
    the label); a given one also checks types, ranges, domains and columns.
    """
    df = _with_text_column_names(df)
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


# --- reports -----------------------------------------------------------------------------------


def _column_rows(statistics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, stats in statistics["columns"].items():
        top = stats.get("top_values") or []
        rows.append(
            {
                "column": name,
                "type": stats["logical_type"],
                "dtype": stats["dtype"],
                "missing": stats["missing"],
                "missing %": None if stats["missing_share"] is None else 100 * stats["missing_share"],
                "distinct": stats["distinct"],
                "min": stats.get("min"),
                "max": stats.get("max"),
                "mean": stats.get("mean"),
                "std": stats.get("std"),
                "outliers": stats.get("outliers"),
                "top values": ", ".join(f"{t['value']} ({t['count']})" for t in top[:5]),
            }
        )
    return rows


_COLUMN_TABLE = (
    "column",
    "type",
    "dtype",
    "missing",
    "missing %",
    "distinct",
    "min",
    "max",
    "mean",
    "std",
    "outliers",
    "top values",
)


def render_html(result: ValidationResult, title: str = "Data validation") -> str:
    """A self-contained HTML report: overview, anomalies, column statistics, numeric histograms."""
    dataset = result.statistics["dataset"]
    overview = html_table(
        [
            {"item": "rows", "value": dataset["rows"]},
            {"item": "columns", "value": dataset["columns"]},
            {"item": "duplicate rows", "value": dataset["duplicate_rows"]},
            {"item": "schema", "value": result.schema_source},
            {"item": "policy", "value": result.policy},
        ],
        ["item", "value"],
    )
    css = "ok" if result.passed and not result.warnings else ("warn" if result.passed else "bad")
    decision = html_paragraph(f"Decision: {result.decision}", css)
    anomalies = (
        _anomaly_table(result.anomalies) if result.anomalies else html_paragraph("No anomalies.", "ok")
    )
    figures = [
        _histogram_figure(name, stats["histogram"])
        for name, stats in result.statistics["columns"].items()
        if stats.get("histogram")
    ]
    sections = [
        ("Overview", decision + overview),
        ("Anomalies", anomalies),
        ("Column statistics", html_table(_column_rows(result.statistics), _COLUMN_TABLE)),
    ]
    if figures:
        sections.append(("Numeric distributions", '<div class="figures">' + "".join(figures) + "</div>"))
    sections.append(("Outlier rule", html_paragraph(result.statistics["outlier_rule"])))
    return html_page(title, sections)


def _anomaly_table(anomalies: Iterable[Anomaly]) -> str:
    # reports.html_table has no per-cell classes; this table styles the severity cell, and escapes
    # every cell the same way.
    head = "".join(f"<th>{c}</th>" for c in ("severity", "kind", "column", "message"))
    body = []
    for anomaly in anomalies:
        css = "bad" if anomaly.severity == ERROR else "warn"
        cells = [
            f'<td class="{css}">{html.escape(anomaly.severity)}</td>',
            f"<td>{html.escape(anomaly.kind)}</td>",
            f"<td>{html.escape(format_value(anomaly.column))}</td>",
            f"<td>{html.escape(anomaly.message)}</td>",
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _histogram_figure(name: str, histogram: dict[str, Any], width: int = 240, height: int = 60) -> str:
    return (
        '<figure style="display:inline-block;margin:4px 12px 4px 0">'
        f"<figcaption>{html.escape(name)}</figcaption>"
        f"{histogram_svg(histogram['edges'], histogram['counts'], label=name, width=width, height=height)}"
        "</figure>"
    )


def histogram_svg(
    edges: list[float], counts: list[int], label: str = "", width: int = 240, height: int = 60
) -> str:
    """An inline SVG bar chart of a histogram, with the first and last edges as axis labels."""
    tallest = max(counts) if counts else 0
    bar_width = width / max(len(counts), 1)
    bars = []
    for index, count in enumerate(counts):
        bar_height = 0.0 if not tallest else height * count / tallest
        tip = f"[{format_value(edges[index])}, {format_value(edges[index + 1])}]: {count}"
        bars.append(
            f'<rect x="{index * bar_width:.2f}" y="{height - bar_height:.2f}" '
            f'width="{max(bar_width - 1, 0.5):.2f}" height="{bar_height:.2f}" fill="#1a73e8">'
            f"<title>{html.escape(tip)}</title></rect>"
        )
    axis_y = height + 12
    low, high = html.escape(format_value(edges[0])), html.escape(format_value(edges[-1]))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16}" '
        f'viewBox="0 0 {width} {height + 16}" role="img" '
        f'aria-label="{html.escape("histogram of " + label, quote=True)}">'
        f"{''.join(bars)}"
        f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#5f6368" stroke-width="1"/>'
        f'<text x="0" y="{axis_y}" font-size="10" fill="#5f6368">{low}</text>'
        f'<text x="{width}" y="{axis_y}" font-size="10" fill="#5f6368" text-anchor="end">{high}</text>'
        "</svg>"
    )


def render_markdown(result: ValidationResult) -> str:
    """A short Markdown summary for the Kubeflow UI: decision, anomalies, per-column table."""
    dataset = result.statistics["dataset"]
    lines = [
        "# Data validation",
        "",
        f"**Decision: {markdown_text(result.decision)}**",
        "",
        f"{dataset['rows']:,} rows, {dataset['columns']} columns, {dataset['duplicate_rows']} duplicate "
        f"row(s); schema {result.schema_source}.",
        "",
        "## Anomalies",
        "",
    ]
    if result.anomalies:
        lines += [
            f"- **{a.severity}** `{a.kind}`: {markdown_text(a.message).replace(chr(10), ' ')}"
            for a in result.anomalies
        ]
    else:
        lines.append("None.")
    columns = ("column", "type", "missing", "missing %", "distinct", "min", "max", "mean")
    lines += ["", "## Columns", "", markdown_table(_column_rows(result.statistics), columns), ""]
    return "\n".join(lines)


__all__ = [
    "OUTLIER_RULE",
    "SCHEMA_VERSION",
    "Anomaly",
    "ValidationConfig",
    "ValidationResult",
    "category_labels",
    "check_dataset",
    "compute_statistics",
    "histogram_svg",
    "infer_schema",
    "label_kind",
    "load_schema",
    "raise_for_anomalies",
    "render_html",
    "render_markdown",
    "save_schema",
    "validate",
    "validate_schema",
    "write_json",
]
