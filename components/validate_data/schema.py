"""The schema: inferred from statistics, read, checked and written as plain JSON (as TFX's SchemaGen)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mlstages.components.common.datasets import (
    NUMERIC,
)
from mlstages.components.common.errors import (
    InputDataError,
)
from mlstages.components.common.labels import detect_task
from mlstages.components.common.logical_types import LOGICAL_TYPES
from mlstages.components.validate_data.config import (
    _COLUMN_KEYS,
    _DOMAIN_TYPES,
    LABEL_KINDS,
    MISSING_SHARE_MARGIN,
    SCHEMA_VERSION,
    _names,
)
from mlstages.components.validate_data.statistics import (
    _with_text_column_names,
    category_labels,
    compute_statistics,
)


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
    if label_column and label_column not in df.columns:
        raise InputDataError(
            f"label_column {label_column!r} is not in the dataset; it has: {_names(df.columns)}"
        )
    return schema_from_statistics(
        statistics,
        lambda name: sorted(category_labels(df[name].dropna()).unique().tolist()),
        label_column,
        lambda name: label_kind(df[name]),
        max_domain_size=max_domain_size,
        missing_margin=missing_margin,
    )


def schema_from_statistics(
    statistics: dict[str, Any],
    categories: Callable[[str], list[str] | None],
    label_column: str | None,
    label_kind_of: Callable[[str], str],
    *,
    max_domain_size: int = 100,
    missing_margin: float = MISSING_SHARE_MARGIN,
) -> dict[str, Any]:
    """``infer_schema`` from the statistics alone, for data that is not held: ``categories(name)``
    gives a column's distinct values as text, sorted (None when they were not counted exactly:
    the column then gets no domain), ``label_kind_of(name)`` the label's kind."""
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
            spec["domain"] = categories(name) if stats["distinct"] <= max_domain_size else None
        columns[name] = spec
    label = None
    if label_column:
        if label_column not in statistics["columns"]:
            raise InputDataError(
                f"label_column {label_column!r} is not in the dataset; it has: {_names(statistics['columns'])}"
            )
        label = {"column": label_column, "kind": label_kind_of(label_column)}
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
