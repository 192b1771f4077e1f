"""Columns whose type a reader guessed and a user should not trust without a look.

A CSV reader makes a column of "3,750" strings categorical, reads "00501" as the number 501, and a
unique customer id becomes a thousand-level one-hot encoding. None of that fails; the model is just
quietly worse. ``suspicious_columns`` finds those columns and says, with examples, what each looks
like and what to do: validate_data reports them as warnings, and ``id_columns`` feeds the default
exclusion of identifiers from the features. ``column_types`` (a parameter) overrides any guess.

The checks read values, so on a large dataset they see a sample of its rows; ``ColumnExtent`` then
says what the whole column holds (its rows, distinct values, range, the label's classes), so that a
column is called an identifier only when it is one over all its rows, and a rare spelling of a
class is not missed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlstages.components.common.errors import InputDataError, ParameterError, quoted
from mlstages.components.common.estimators.functions import (
    DECORATED_NUMBER,
    PLAIN_NUMBER,
    SEPARATED_NUMBER,
    parse_booleans,
    parse_numbers,
)
from mlstages.components.common.logical_types import LOGICAL_TYPES

# Kinds of suspicion, stable names for reports and tests.
NUMERIC_TEXT = "numeric_text"  # "3,750", "$1,200.50", "12%": numbers stored as text
MIXED_NUMERIC = "mixed_numeric"  # mostly numbers, plus a few junk strings ("n/a", "?", "-")
DATE_TEXT = "date_text"  # "2024-03-01" strings
ID_COLUMN = "id"  # one distinct value per row: an identifier, not a feature
LEADING_ZEROS = "leading_zeros"  # "00501": codes, whose zeros a numeric reading loses
NA_CATEGORY = "na_category"  # "NA" as a value of a column whose other values are words (North America?)
LABEL_VARIANTS = "label_variants"  # "yes" and "Yes " as two classes
FRACTIONAL_CLASS_ID = "fractional_class_id"  # class ids 0, 1, 2 and one 1.5

# column_types' value for a column that is neither validated nor a feature.
IGNORE = "ignore"

# A share of rows above which a pattern is "the column's", below which rows are "junk".
_MOSTLY = 0.9
_MIN_ROWS_FOR_ID = 20
_EXAMPLES = 3
_ISO_DATE = re.compile(r"^\s*\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*$")
_SLASH_DATE = re.compile(r"^\s*\d{1,4}[/.]\d{1,2}[/.]\d{1,4}\s*$")
_LEADING_ZERO_CODE = re.compile(r"^0\d+$")
_NA_STRINGS = {"NA", "N/A"}


@dataclass(frozen=True)
class ColumnExtent:
    """The whole column, when the checks see a sample of its rows: rows, missing values, distinct
    values (exact, or an estimate), minimum and maximum (numeric), and every distinct value when
    they were counted exactly (string columns), else None."""

    rows: int
    missing: int
    distinct: int
    distinct_exact: bool
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Suspicion:
    """One column whose guessed type is doubtful: which, what it looks like, and examples."""

    column: str
    kind: str
    message: str
    examples: tuple[str, ...] = ()


def _shown(columns: Any, limit: int = 30) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} columns)" if len(names) > limit else "")


def _examples(values: pd.Series) -> tuple[str, ...]:
    return tuple(quoted(v) for v in pd.unique(values)[:_EXAMPLES])


def _strings(series: pd.Series) -> pd.Series:
    """The column's non-missing values that are strings."""
    values = series.dropna()
    if values.empty or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.iloc[0:0]
    return values[values.map(lambda v: isinstance(v, str))]


def _text_suspicion(name: str, strings: pd.Series) -> Suspicion | None:
    if strings.empty:
        return None
    n = len(strings)
    separated = strings.str.match(SEPARATED_NUMBER) | strings.str.match(DECORATED_NUMBER)
    plain = strings.str.match(PLAIN_NUMBER)
    if separated.any() and (separated | plain).mean() >= _MOSTLY:
        return Suspicion(
            name,
            NUMERIC_TEXT,
            f"column {name!r} holds numbers written as text with separators or symbols (e.g. "
            f"{', '.join(_examples(strings[separated]))}); it is read as a category. Clean it to plain "
            f"numbers, or set column_types={{{name!r}: 'numeric'}}",
            _examples(strings[separated]),
        )
    if plain.all() and not strings.str.match(_LEADING_ZERO_CODE).any():
        # Text although every value is a number: integers past int64, or a reader told to keep text.
        return Suspicion(
            name,
            NUMERIC_TEXT,
            f"column {name!r} holds only numbers, but as text (e.g. {', '.join(_examples(strings))}; "
            "integers too large for 64 bits are kept as text); it is read as a category. Set "
            f"column_types={{{name!r}: 'numeric'}} to use them as numbers, or 'categorical' if they are codes",
            _examples(strings),
        )
    if plain.mean() >= _MOSTLY and not plain.all():
        junk = strings[~plain]
        return Suspicion(
            name,
            MIXED_NUMERIC,
            f"column {name!r} is numbers except {int((~plain).sum())} of {n} value(s) such as "
            f"{', '.join(_examples(junk))}; it is read as a category. Replace those with empty cells, "
            f"or set column_types={{{name!r}: 'numeric'}} to read them as missing",
            _examples(junk),
        )
    dates = strings.str.match(_ISO_DATE) | strings.str.match(_SLASH_DATE)
    if dates.mean() >= _MOSTLY:
        return Suspicion(
            name,
            DATE_TEXT,
            f"column {name!r} holds dates as text (e.g. {', '.join(_examples(strings[dates]))}); set "
            f"column_types={{{name!r}: 'datetime'}} to use them as dates, or derive date parts",
            _examples(strings[dates]),
        )
    zeros = strings.str.match(_LEADING_ZERO_CODE)
    if zeros.any() and (zeros | plain).mean() >= _MOSTLY:
        return Suspicion(
            name,
            LEADING_ZEROS,
            f"column {name!r} holds codes with leading zeros (e.g. {', '.join(_examples(strings[zeros]))}): "
            "they are kept as categories; reading them as numbers would merge '00501' and '501'",
            _examples(strings[zeros]),
        )
    na = strings.str.strip().str.upper().isin(_NA_STRINGS)
    if na.any() and not plain.any():
        return Suspicion(
            name,
            NA_CATEGORY,
            f"column {name!r} has the value 'NA' in {int(na.sum())} row(s) beside words such as "
            f"{', '.join(_examples(strings[~na]))}: if 'NA' is a category (North America, not "
            "applicable) keep it; if it means missing, leave those cells empty",
            ("'NA'",),
        )
    return None


def _is_id(series: pd.Series, whole: ColumnExtent | None = None) -> bool:
    """A unique, key-like value in every row: of ``series``, or of the whole column ``whole``
    describes when ``series`` is a sample of it."""
    values = series.dropna()
    if len(values) < _MIN_ROWS_FOR_ID or values.nunique() != len(series):
        return False
    if whole is not None and not _unique_whole(whole):
        return False
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_integer_dtype(values):
        # Consecutive or near-consecutive integers are row numbers or keys; spread-out unique integers
        # (amounts, counts) are measurements.
        if whole is not None and whole.minimum is not None and whole.maximum is not None:
            return bool(whole.maximum - whole.minimum < 2 * whole.rows)
        return bool(values.max() - values.min() < 2 * len(values))
    strings = _strings(values)
    # Unique short tokens (no spaces) that are not plain numbers: keys, not free text or amounts.
    return (
        len(strings) == len(values)
        and bool((~strings.str.contains(r"\s")).all())
        and not bool(strings.str.match(PLAIN_NUMBER).mean() >= _MOSTLY)
    )


# An estimated distinct count is "one per row" within this many relative standard errors of its
# sketch (column_statistics: 0.78%), so a key column is not missed for the sketch's noise.
_ESTIMATE_SLACK = 0.03


def _unique_whole(whole: ColumnExtent) -> bool:
    if whole.missing or whole.rows < _MIN_ROWS_FOR_ID:
        return False
    if whole.distinct_exact:
        return whole.distinct == whole.rows
    return whole.distinct >= (1 - _ESTIMATE_SLACK) * whole.rows


def id_columns(df: pd.DataFrame, exclude: tuple[str, ...] = ()) -> list[str]:
    """Columns with one distinct, key-like value per row (excluded from the features by default)."""
    return [str(c) for c in df.columns if str(c) not in exclude and _is_id(df[c])]


def label_suspicion(y: pd.Series, classes: tuple[str, ...] | None = None) -> Suspicion | None:
    """A label whose classes look like typos of each other, or whose class ids have one odd value;
    ``classes``: every class of the whole column, when ``y`` is a sample of it."""
    name = str(y.name)
    strings = _strings(y)
    if not strings.empty:
        distinct = list(classes) if classes is not None else pd.unique(strings)
        by_key: dict[str, list[str]] = {}
        for value in distinct:
            by_key.setdefault(value.strip().casefold(), []).append(value)
        variants = [group for group in by_key.values() if len(group) > 1]
        if variants:
            shown = "; ".join(" vs ".join(quoted(v) for v in group) for group in variants[:_EXAMPLES])
            return Suspicion(
                name,
                LABEL_VARIANTS,
                f"label column {name!r} has classes that differ only by case or surrounding spaces "
                f"({shown}): they are learned as different classes. Clean the labels upstream: one "
                "spelling per class, without surrounding spaces",
                tuple(quoted(v) for group in variants for v in group)[:_EXAMPLES],
            )
    values = y.dropna()
    if pd.api.types.is_float_dtype(values) and len(values):
        fractional = values[values != values.round()]
        distinct = values.nunique()
        if 0 < len(fractional) <= max(1, int(0.01 * len(values))) and distinct - fractional.nunique() <= 20:
            return Suspicion(
                name,
                FRACTIONAL_CLASS_ID,
                f"label column {name!r} looks like class ids but has {len(fractional)} fractional "
                f"value(s) ({', '.join(_examples(fractional))}), which make it a regression target. Fix "
                "those rows, or set task='regression' if the label really is continuous",
                _examples(fractional),
            )
    return None


def suspicious_columns(
    df: pd.DataFrame,
    label_column: str | None = None,
    column_types: Mapping[str, str] | None = None,
    *,
    whole: Mapping[str, ColumnExtent] | None = None,
) -> list[Suspicion]:
    """Every doubtful column of ``df``, in column order; columns named in ``column_types`` are the
    user's decision and are not second-guessed. When ``df`` is a sample of the data, ``whole``
    describes each whole column (see ``ColumnExtent``)."""
    decided = set(check_column_types(column_types or {}, df))
    found: list[Suspicion] = []
    for column in df.columns:
        name = str(column)
        if name in decided:
            continue
        series = df[column]
        extent = (whole or {}).get(name)
        if name == label_column:
            suspicion = label_suspicion(series, extent.categories if extent is not None else None)
        else:
            # Numbers or dates written as text say more than "unique per row" does.
            suspicion = _text_suspicion(name, _strings(series))
            if suspicion is None and _is_id(series, extent):
                suspicion = Suspicion(
                    name,
                    ID_COLUMN,
                    f"column {name!r} has a different value in every row (e.g. "
                    f"{', '.join(_examples(series.dropna()))}): an identifier, excluded from the features. "
                    f"Set column_types={{{name!r}: 'categorical'}} (or 'numeric') to use it",
                    _examples(series.dropna()),
                )
        if suspicion is not None:
            found.append(suspicion)
    return found


def check_column_types(column_types: Mapping[str, str], df: pd.DataFrame | None = None) -> dict[str, str]:
    """The ``column_types`` parameter, checked: known logical types (or 'ignore'), and, given the
    data, existing columns."""
    if not isinstance(column_types, Mapping):
        raise ParameterError(
            f"parameter column_types must map column names to a type, got {type(column_types).__name__}"
        )
    allowed = (*LOGICAL_TYPES, IGNORE)
    for name, kind in column_types.items():
        if kind not in allowed:
            raise ParameterError(
                f"parameter column_types[{name!r}]={kind!r} is not one of: {', '.join(allowed)}"
            )
    if df is not None:
        missing = [name for name in column_types if name not in df.columns]
        if missing:
            raise ParameterError(
                f"parameter column_types names column(s) {', '.join(map(repr, missing))} that the data "
                f"does not have; it has: {_shown(df.columns)} (names are case-sensitive)"
            )
    return {str(k): str(v) for k, v in column_types.items()}


# A declared numeric or boolean column must mostly read as one: below this share of its present
# values, the declaration is more likely a wrong column name than a column with some junk.
_MIN_PARSED_SHARE = 0.5


def check_declared_values(df: pd.DataFrame, column_types: Mapping[str, str]) -> None:
    """Refuse a column declared numeric or boolean whose present values mostly do not read as
    numbers or booleans, naming the column and examples."""
    parsers = {"numeric": (parse_numbers, "numbers"), "boolean": (parse_booleans, "true/false values")}
    for name, kind in column_types.items():
        if kind not in parsers or name not in df.columns:
            continue
        parse, what = parsers[kind]
        present = df[name].notna()
        if not present.any():
            continue
        parsed = parse(df[[name]])[name].notna()
        unread = present & ~parsed
        if parsed[present].mean() < _MIN_PARSED_SHARE:
            raise InputDataError(
                f"column {name!r} is declared {kind!r} in column_types, but {int(unread.sum())} of "
                f"{int(present.sum())} present values are not {what} (e.g. "
                f"{', '.join(_examples(df.loc[unread, name]))}); fix column_types[{name!r}] or the data"
            )


def apply_column_types(
    df: pd.DataFrame, column_types: Mapping[str, str], *, check_values: bool = True
) -> pd.DataFrame:
    """``df`` read as ``column_types`` declares, with the parsers the exported model's transformer
    uses: numeric and boolean text parsed (what does not parse becomes missing), categories and text
    as strings, dates as timestamps; 'ignore' columns dropped. Undeclared columns are unchanged.
    ``check_values`` False skips ``check_declared_values`` (a batch of data checked on a sample)."""
    types = check_column_types(column_types, df)
    if check_values:
        check_declared_values(df, types)
    out = df.drop(columns=[name for name, kind in types.items() if kind == IGNORE])
    for name, kind in types.items():
        if kind == "numeric":
            out[name] = parse_numbers(df[[name]])[name]
        elif kind == "boolean":
            out[name] = parse_booleans(df[[name]])[name].astype("boolean")
        elif kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(df[name]):
            out[name] = pd.to_datetime(df[name], errors="coerce", format="mixed")
        elif kind in ("categorical", "text"):
            strings = df[name].astype(object)
            out[name] = strings.map(str).where(strings.notna(), None)
    return out
