"""The anomalies between a dataset and its schema (as TFX's ExampleValidator)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.datasets import (
    BOOLEAN,
    CATEGORICAL,
    NUMERIC,
    TEXT,
)
from mlstages.components.common.errors import quoted
from mlstages.components.common.labels import CLASSIFICATION
from mlstages.components.common.reports import (
    format_value,
)
from mlstages.components.validate_data.config import (
    _DOMAIN_TYPES,
    _STRING_TYPES,
    ERROR,
    IQR_FACTOR,
    MAX_ROW_EXAMPLES,
    ROWS_IN_MESSAGE,
    VALUES_IN_MESSAGE,
    WARNING,
    ValidationConfig,
    _names,
)
from mlstages.components.validate_data.schema import label_kind, validate_schema
from mlstages.components.validate_data.statistics import (
    _comparable,
    _top_values,
    _with_text_column_names,
    category_labels,
)


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
    if rows:
        anomalies += _doubtful_types(df, label, config.column_types)
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


def _doubtful_types(df: pd.DataFrame, label: str | None, declared: Mapping[str, str]) -> list[Anomaly]:
    """Columns whose guessed type a user should check (numbers or dates as text, identifiers, codes
    with leading zeros, "NA" as a category, label variants): warnings with examples, never a failure."""
    from mlstages.components.common.column_checks import suspicious_columns

    return [
        Anomaly(found.column, found.kind, WARNING, found.message)
        for found in suspicious_columns(
            df, label or None, {name: kind for name, kind in declared.items() if name in df.columns}
        )
    ]


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
        dropped = config.unlabelled_rows == "drop" and len(missing) < len(series)
        found.append(
            Anomaly(
                name,
                "label_has_missing",
                WARNING if dropped else ERROR,
                f"label column {name!r} is missing in {len(missing)} of {len(series)} row(s), first rows "
                f"(0-based): {_row_list(missing)}; "
                + (
                    "preprocess drops them (unlabelled_rows='drop'); fill the label upstream to keep them"
                    if dropped
                    else "fill the label, or set unlabelled_rows='drop' to train without those rows"
                    if len(missing) < len(series)
                    else "no row has a label: check label_column, or fill the label upstream"
                ),
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
    shown = ", ".join(f"{quoted(c['value'])} ({c['count']})" for c in counts[:VALUES_IN_MESSAGE])
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
    return ", ".join(quoted(str(v)) for v in values)
