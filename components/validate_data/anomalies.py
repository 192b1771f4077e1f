"""The anomalies between a dataset and its schema (as TFX's ExampleValidator).

The checks read the dataset's statistics first: most anomalies (missing values, duplicates, a
constant column, a single-class label, outliers) are decided by them alone. The rows and values a
message names come from ``evidence.scan``, a second pass that reads only the columns of the
failing checks and stops once it has its examples; a given schema's range, domain and type checks
are skipped when the statistics prove the data satisfies them (its exact minimum and maximum lie
in the range, every category it has is in the domain). The checks of a column's guessed type
(numbers as text, identifiers, leading zeros, "NA" as a category, label variants) read a seeded
sample of the rows (``DatasetView.sample``), with the whole column's counts for identifiers and
the label's complete list of classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from mlstages.components.validate_data.column_statistics import ColumnFacts
from mlstages.components.validate_data.config import (
    _DOMAIN_TYPES,
    _STRING_TYPES,
    ERROR,
    IQR_FACTOR,
    MAX_ROW_EXAMPLES,
    ROWS_IN_MESSAGE,
    TOP_CATEGORIES,
    VALUES_IN_MESSAGE,
    WARNING,
    ValidationConfig,
    _names,
)
from mlstages.components.validate_data.evidence import CountWhere, RepeatedRows, Request, RowsWhere, scan
from mlstages.components.validate_data.schema import validate_schema
from mlstages.components.validate_data.statistics import _with_text_column_names
from mlstages.components.validate_data.streaming import StatisticsAccumulator


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
class DatasetView:
    """What the checks read of a dataset.

    columns: its columns; statistics: its statistics document; facts: per column, what the
    statistics accumulator knows beyond the document; batches: reads the data again, a batch at a
    time, with only the columns asked for (None: all), typed as the statistics saw them; sample:
    the rows the type checks look at (every row, or a seeded sample); repeated_keys: the hashes of
    the rows that repeat (``streaming.RowDuplicates.repeated_keys``).
    """

    columns: list[str]
    statistics: dict[str, Any]
    facts: Mapping[str, ColumnFacts]
    batches: Callable[[Sequence[str] | None], Iterable[pd.DataFrame]]
    sample: pd.DataFrame
    repeated_keys: np.ndarray


@dataclass
class _Deferred:
    """An anomaly whose message needs rows from the data: ``build`` makes it once ``request`` has
    them (None when the evidence shows nothing)."""

    request: Request
    build: Callable[[], Anomaly | None]


_Found = Anomaly | _Deferred


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
    df = _with_text_column_names(df)
    accumulator = StatisticsAccumulator()
    accumulator.update(df, start=0)
    return find_anomalies(frame_view(df, accumulator, statistics), schema, config)


def frame_view(
    df: pd.DataFrame, accumulator: StatisticsAccumulator, statistics: dict[str, Any]
) -> DatasetView:
    """The view of a table held in memory, ``accumulator`` having seen all of it; every row is
    both the data the evidence comes from and the sample of the type checks."""
    return DatasetView(
        columns=list(df.columns),
        statistics=statistics,
        facts=accumulator.facts(),
        batches=lambda columns: [df if columns is None else df[list(columns)]],
        sample=df,
        repeated_keys=accumulator.duplicates.repeated_keys(),
    )


def find_anomalies(view: DatasetView, schema: dict[str, Any], config: ValidationConfig) -> list[Anomaly]:
    """Every anomaly of the dataset ``view`` describes against ``schema``; errors first."""
    validate_schema(schema)
    statistics = view.statistics
    found: list[_Found] = []
    rows = statistics["dataset"]["rows"]
    if rows == 0:
        found.append(Anomaly(None, "empty_dataset", ERROR, "the dataset has no rows"))
    else:
        found += _check_duplicates(view, config)
    label = config.label_column
    schema_label = (schema.get("label") or {}).get("column")
    if label:
        found += _check_label(view, schema, config)
    for name, spec in schema["columns"].items():
        if name not in view.columns:
            if name == label or (name == schema_label and not label):
                continue  # reported as label_missing, or absent from unlabeled data as expected
            found.append(
                Anomaly(
                    name,
                    "missing_column",
                    ERROR,
                    f"column {name!r} is in the schema but not in the dataset; the dataset has: "
                    f"{_names(view.columns)}",
                )
            )
            continue
        if rows:
            kind = _label_kind_for(view, schema, name) if name == label else None
            found += _check_column(view, name, spec, config, kind)
    if rows:
        found += _doubtful_types(view, label, config.column_types)
    for name in view.columns:
        if name not in schema["columns"]:
            found.append(
                Anomaly(
                    name,
                    "unexpected_column",
                    WARNING,
                    f"column {name!r} is in the dataset but not in the schema: add it to the schema "
                    "or drop it upstream",
                )
            )
    scan(view.batches, [f.request for f in found if isinstance(f, _Deferred)])
    anomalies = [f if isinstance(f, Anomaly) else f.build() for f in found]
    return sorted((a for a in anomalies if a is not None), key=lambda a: a.severity != ERROR)


def _doubtful_types(view: DatasetView, label: str | None, declared: Mapping[str, str]) -> list[Anomaly]:
    """Columns whose guessed type a user should check (numbers or dates as text, identifiers, codes
    with leading zeros, "NA" as a category, label variants): warnings with examples, never a failure."""
    from mlstages.components.common.column_checks import ColumnExtent, suspicious_columns

    sample = view.sample
    extents = None
    if len(sample) < view.statistics["dataset"]["rows"]:
        extents = {
            name: ColumnExtent(
                rows=facts.rows,
                missing=facts.missing,
                distinct=facts.distinct,
                distinct_exact=facts.distinct_exact,
                minimum=facts.minimum,
                maximum=facts.maximum,
                categories=facts.categories if facts.all_str else None,
            )
            for name, facts in view.facts.items()
            if name in sample.columns
        }
    return [
        Anomaly(found.column, found.kind, WARNING, found.message)
        for found in suspicious_columns(
            sample,
            label or None,
            {name: kind for name, kind in declared.items() if name in sample.columns},
            whole=extents,
        )
    ]


def _check_duplicates(view: DatasetView, config: ValidationConfig) -> list[_Found]:
    dataset = view.statistics["dataset"]
    if not dataset["duplicate_rows"] or dataset["duplicate_share"] <= config.max_duplicate_share:
        return []
    request = RepeatedRows(view.repeated_keys)

    def build() -> Anomaly:
        pairs = ", ".join(f"row {r} repeats row {first}" for r, first in request.repeats[:ROWS_IN_MESSAGE])
        estimated = "about " if "estimates" in dataset else ""
        return Anomaly(
            None,
            "duplicate_rows",
            ERROR,
            f"{estimated}{dataset['duplicate_rows']} of {dataset['rows']} rows "
            f"({dataset['duplicate_share']:.1%}) repeat an earlier row, more than max_duplicate_share="
            f"{config.max_duplicate_share}: {pairs}; drop the duplicates upstream or raise "
            "max_duplicate_share",
            _examples(r for r, _ in request.repeats),
        )

    return [_Deferred(request, build)]


def _missing(series: pd.Series) -> np.ndarray:
    return series.isna().to_numpy()


def _check_label(view: DatasetView, schema: dict[str, Any], config: ValidationConfig) -> list[_Found]:
    name = config.label_column
    if name not in view.columns:
        return [
            Anomaly(
                name,
                "label_missing",
                ERROR,
                f"label column {name!r} (parameter label_column) is not in the dataset; it has: "
                f"{_names(view.columns)}",
            )
        ]
    found: list[_Found] = []
    stats = view.statistics["columns"][name]
    rows, missing = view.statistics["dataset"]["rows"], stats["missing"]
    if missing:
        dropped = config.unlabelled_rows == "drop" and missing < rows
        request = RowsWhere(name, _missing)

        def build() -> Anomaly:
            return Anomaly(
                name,
                "label_has_missing",
                WARNING if dropped else ERROR,
                f"label column {name!r} is missing in {missing} of {rows} row(s), first rows "
                f"(0-based): {_row_list(request.rows, missing)}; "
                + (
                    "preprocess drops them (unlabelled_rows='drop'); fill the label upstream to keep them"
                    if dropped
                    else "fill the label, or set unlabelled_rows='drop' to train without those rows"
                    if missing < rows
                    else "no row has a label: check label_column, or fill the label upstream"
                ),
                _examples(request.rows),
            )

        found.append(_Deferred(request, build))
    if _label_kind_for(view, schema, name) == CLASSIFICATION:
        classes = stats["distinct"]
        if classes < 2:
            seen = (
                f"only one class ({_value_list([_only_value(view, name)])})"
                if classes
                else "no non-missing values"
            )
            found.append(
                Anomaly(
                    name,
                    "single_class_label",
                    ERROR,
                    f"classification label column {name!r} has {seen} in {rows} row(s); a "
                    "classifier needs at least two classes: check the filter that produced the data",
                )
            )
    return found


def _only_value(view: DatasetView, name: str) -> str:
    """The text of the one value of a column with one distinct value, as ``category_labels``
    writes it."""
    stats = view.statistics["columns"][name]
    if "top_values" in stats:
        return stats["top_values"][0]["value"]
    if stats["logical_type"] == NUMERIC:
        value = stats["min"]
        return str(int(value)) if view.facts[name].integer else str(value)
    return str(pd.Timestamp(stats["min"]))


def _label_kind_for(view: DatasetView, schema: dict[str, Any], name: str) -> str:
    """The schema's kind for the label when the schema names the same label, else inferred."""
    schema_label = schema.get("label") or {}
    return schema_label["kind"] if schema_label.get("column") == name else view.facts[name].label_kind


def _check_column(
    view: DatasetView,
    name: str,
    spec: dict[str, Any],
    config: ValidationConfig,
    label: str | None,
) -> list[_Found]:
    """Checks of one column present in the data; ``label`` is the label's kind when it is the label."""
    is_label = label is not None
    stats = view.statistics["columns"][name]
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
    if expected != actual and not _compatible_types(view.facts[name], expected, actual):
        return [_wrong_type(name, stats, expected, actual)]
    found: list[_Found] = []
    if not is_label:
        found += _check_missing(view, name, spec, config)
    if actual == NUMERIC and spec.get("range"):
        found += _check_range(name, stats, spec["range"], config.range_tolerance)
    if actual in _DOMAIN_TYPES | {TEXT} and spec.get("domain") is not None:
        found += _check_domain(name, view.facts[name], spec["domain"])
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
            found.append(_outliers(name, stats, config))
    return found


def _compatible_types(facts: ColumnFacts, expected: str, actual: str) -> bool:
    if {expected, actual} <= _STRING_TYPES:
        return True
    # A boolean column with missing values is stored as objects (True, False, None): still boolean.
    if expected == BOOLEAN and actual == CATEGORICAL:
        return facts.all_bool
    return False


def _not_numbers(series: pd.Series) -> np.ndarray:
    return series.notna().to_numpy() & pd.to_numeric(series, errors="coerce").isna().to_numpy()


def _wrong_type(name: str, stats: dict[str, Any], expected: str, actual: str) -> _Found:
    message = (
        f"column {name!r} should be {expected} (per the schema) but is {actual} (dtype {stats['dtype']})"
    )
    if not (expected == NUMERIC and actual in _STRING_TYPES):
        return Anomaly(name, "wrong_type", ERROR, message + "; fix the data or the schema's type")
    request = CountWhere(name, _not_numbers)

    def build() -> Anomaly:
        text = message
        if request.count:
            text += (
                f"; {request.count} value(s) are not numbers, e.g. "
                f"{_value_list(str(v) for v in request.values)} at rows (0-based) "
                f"{_row_list(request.rows, request.count)}"
            )
        return Anomaly(
            name, "wrong_type", ERROR, text + "; fix the data or the schema's type", _examples(request.rows)
        )

    return _Deferred(request, build)


def _check_missing(
    view: DatasetView, name: str, spec: dict[str, Any], config: ValidationConfig
) -> list[_Found]:
    stats = view.statistics["columns"][name]
    rows = view.statistics["dataset"]["rows"]
    share, missing = stats["missing_share"], stats["missing"]
    if not missing:
        return []
    allowed = spec.get("max_missing_share")
    if share > config.max_missing_share:
        kind, severity, why = (
            "too_many_missing",
            ERROR,
            f"more than max_missing_share={config.max_missing_share}",
        )
    elif allowed is not None and share > allowed:
        kind, severity = "too_many_missing", ERROR
        why = f"more than the schema allows for it (max_missing_share {allowed}); fix the source or edit the schema"
    elif spec.get("may_be_missing") is False:
        kind, severity, why = (
            "unexpected_missing",
            WARNING,
            "and the schema says it had none (may_be_missing false)",
        )
    else:
        return []
    request = RowsWhere(name, _missing)

    def build() -> Anomaly:
        seen = (
            f"{share:.1%} of values are missing ({missing} of {rows}, first rows (0-based): "
            f"{_row_list(request.rows, missing)})"
        )
        return Anomaly(name, kind, severity, f"column {name!r}: {seen}, {why}", _examples(request.rows))

    return [_Deferred(request, build)]


def _range_limits(bounds: Mapping[str, Any], tolerance: float) -> tuple[float, float]:
    low, high = bounds.get("min"), bounds.get("max")
    if low is not None and high is not None and high > low:
        slack = tolerance * (high - low)
    else:
        # A one-sided or zero-width range has no width to take a fraction of: use the magnitude.
        slack = tolerance * max(abs(low or 0.0), abs(high or 0.0), 1.0)
    return (-math.inf if low is None else low - slack), (math.inf if high is None else high + slack)


def _outside(lower: float, upper: float) -> Callable[[pd.Series], np.ndarray]:
    def test(series: pd.Series) -> np.ndarray:
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return (values < lower) | (values > upper)

    return test


def _check_range(
    name: str, stats: dict[str, Any], bounds: Mapping[str, Any], tolerance: float
) -> list[_Found]:
    lower, upper = _range_limits(bounds, tolerance)
    # The exact minimum and maximum of the finite values, and the infinities, settle most ranges.
    finite_inside = stats["min"] is None or (stats["min"] >= lower and stats["max"] <= upper)
    if finite_inside and not (stats["infinite"] and (lower > -math.inf or upper < math.inf)):
        return []
    low, high = bounds.get("min"), bounds.get("max")
    request = CountWhere(name, _outside(lower, upper))

    def build() -> Anomaly | None:
        if not request.count:
            return None
        allowed = f"[{format_value(lower)}, {format_value(upper)}]"
        return Anomaly(
            name,
            "out_of_range",
            ERROR,
            f"column {name!r}: {request.count} value(s) outside the schema range "
            f"[{format_value(low)}, {format_value(high)}] (with range_tolerance={tolerance}: {allowed}), "
            f"first rows (0-based): {_row_list(request.rows, request.count)}, values: "
            f"{', '.join(format_value(float(v)) for v in request.values)}",
            _examples(request.rows),
        )

    return [_Deferred(request, build)]


def _check_domain(name: str, facts: ColumnFacts, domain: list[str]) -> list[_Found]:
    allowed = set(domain)
    if facts.categories is not None and allowed.issuperset(facts.categories):
        return []

    def unseen(series: pd.Series) -> np.ndarray:
        return series.notna().to_numpy() & ~series.map(str).isin(allowed).to_numpy()

    request = CountWhere(name, unseen, count_labels=True)

    def build() -> Anomaly | None:
        if not request.count:
            return None
        counts = request.labels.top(TOP_CATEGORIES)
        shown = ", ".join(f"{quoted(value)} ({count})" for value, count in counts[:VALUES_IN_MESSAGE])
        more = f" and {len(counts) - VALUES_IN_MESSAGE} more" if len(counts) > VALUES_IN_MESSAGE else ""
        return Anomaly(
            name,
            "out_of_domain",
            ERROR,
            f"column {name!r}: {request.count} value(s) not in the schema's domain: {shown}{more}; "
            f"first rows (0-based): {_row_list(request.rows, request.count)}; add them to the domain "
            "if they are valid",
            _examples(request.rows),
        )

    return [_Deferred(request, build)]


def _outliers(name: str, stats: dict[str, Any], config: ValidationConfig) -> _Found:
    lower, upper = stats["outlier_bounds"]["lower"], stats["outlier_bounds"]["upper"]
    request = RowsWhere(name, _outside(lower, upper))
    estimated = "about " if "outliers" in stats.get("estimates", {}) else ""

    def build() -> Anomaly:
        return Anomaly(
            name,
            "outliers",
            WARNING,
            f"column {name!r}: {estimated}{stats['outliers']} value(s) ({stats['outlier_share']:.1%}) are "
            f"outliers by the IQR rule (outside [{format_value(lower)}, {format_value(upper)}] = "
            f"[Q1 - {IQR_FACTOR} x IQR, Q3 + {IQR_FACTOR} x IQR]), more than "
            f"max_outlier_share={config.max_outlier_share}; first rows (0-based): "
            f"{_row_list(request.rows, stats['outliers'])}",
            _examples(request.rows),
        )

    return _Deferred(request, build)


def _examples(rows: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(r) for r in list(rows)[:MAX_ROW_EXAMPLES])


def _row_list(rows: Sequence[int], total: int) -> str:
    """The first rows of ``total`` (the rows hold up to MAX_ROW_EXAMPLES of them)."""
    shown = ", ".join(str(int(r)) for r in rows[:ROWS_IN_MESSAGE])
    return shown + (", ..." if max(total, len(rows)) > ROWS_IN_MESSAGE else "")


def _value_list(values: Iterable[Any]) -> str:
    return ", ".join(quoted(str(v)) for v in values)
