"""What every reader's rows go through before they are written: one type per column.

Readers disagree on types at the edges: Parquet decimals arrive as Python ``Decimal`` objects (a
category to every later stage), JSON Lines can give a column numbers in some rows and strings in
others (Parquet cannot store that), nested Parquet columns hold lists and dicts (no stage can use
them, and the content hash fails on them), and shards of one dataset can give a column different
types. Each case is resolved here the way a user would expect, or refused naming the column.

Rows arrive a chunk at a time, so the decision is made from facts: each chunk's column gives
``ValueFacts`` (what its values are), merged over the whole source, and ``value_action`` turns
the merged facts into one action for every chunk of that column. The actions are those a read of
the whole table into one DataFrame would take (the suite's behaviour before it streamed).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError, quoted

VALUES_IN_MESSAGE = 3

# pandas' inferred kinds a column keeps as it is.
PLAIN_KINDS = frozenset({"string", "bytes", "datetime", "date", "time", "period"})
# What the values of a chunk of one plain kind are, in _value_category's words: a chunk of
# strings beside a chunk of numbers makes a mixed column.
_PLAIN_CATEGORY = {
    "string": "text",
    "bytes": "bytes",
    "datetime": "datetime",
    "date": "date",
    "time": "time",
    "period": "Period",
}
KEEP, TO_FLOAT, TO_TEXT, NESTED = "keep", "float", "text", "nested"
# Two arrow types in one column that pyarrow cannot write as one.
CONFLICT = "conflict"


@dataclass(frozen=True)
class ValueFacts:
    """What the values of one column are, over the chunks seen so far.

    kinds: pandas' inferred kind of each chunk's values (``infer_dtype``), "empty" left out.
    categories: ``_value_category`` of the values of chunks whose kind is not a plain one, and
        the plain kind's category for the others.
    nested: a chunk held lists, tuples, dicts or arrays.
    arrow: the arrow type the values take (None: none seen yet; CONFLICT: two that do not mix).
    first: the first value seen, for messages (not compared).
    """

    kinds: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    nested: bool = False
    arrow: Any = None
    first: Any = field(default=None, compare=False)

    def merge(self, other: ValueFacts) -> ValueFacts:
        return ValueFacts(
            kinds=self.kinds | other.kinds,
            categories=self.categories | other.categories,
            nested=self.nested or other.nested,
            arrow=merge_arrow(self.arrow, other.arrow),
            first=self.first if self.first is not None else other.first,
        )


def merge_arrow(left: Any, right: Any) -> Any:
    """The arrow type that holds values of both types: null gives way, int64 widens to double."""
    import pyarrow as pa

    if left is None or left == pa.null():
        return right if right is not None else left
    if right is None or right == pa.null() or right == left:
        return left
    if CONFLICT in (left, right):
        return CONFLICT
    if {str(left), str(right)} == {"int64", "double"}:
        return pa.float64()
    return CONFLICT


def value_facts(series: pd.Series) -> ValueFacts:
    """The facts of one chunk of a column (any dtype: a numeric chunk merged into a text column
    becomes objects)."""
    import pyarrow as pa

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        values = pd.Series(dtype.categories, dtype=object)
        facts = value_facts(values)
        present = series.dropna()
        return ValueFacts(
            facts.kinds if len(present) else frozenset(),
            facts.categories if len(present) else frozenset(),
            facts.nested,
            facts.arrow if len(present) else pa.null(),
            present.iloc[0] if len(present) else None,
        )
    if not pd.api.types.is_object_dtype(dtype):
        present = series.dropna()
        if not len(present):
            return ValueFacts(arrow=pa.null())
        kind, category = _dtype_kind(dtype)
        return ValueFacts(frozenset({kind}), frozenset({category}), False, None, present.iloc[0])
    values = series.dropna()
    if not len(values):
        return ValueFacts(arrow=pa.null())
    first = values.iloc[0]
    # pandas' C type inference first: a column of strings, the common case, costs no Python loop.
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "string":
        return ValueFacts(frozenset({inferred}), frozenset({"text"}), False, pa.string(), first)
    if inferred == "bytes":
        return ValueFacts(frozenset({inferred}), frozenset({"bytes"}), False, pa.binary(), first)
    if inferred == "decimal":
        return ValueFacts(frozenset({inferred}), frozenset({"Decimal"}), False, None, first)
    if inferred in PLAIN_KINDS:
        return ValueFacts(
            frozenset({inferred}), frozenset({_PLAIN_CATEGORY[inferred]}), False, _infer(values), first
        )
    if values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
        return ValueFacts(frozenset({inferred}), frozenset(), True, None, first)
    categories = frozenset(values.map(_value_category))
    arrow = pa.bool_() if inferred == "boolean" else _infer(values) if len(categories) == 1 else None
    return ValueFacts(frozenset({inferred}), categories, False, arrow, first)


def _infer(values: pd.Series) -> Any:
    import pyarrow as pa

    try:
        return pa.infer_type(values.to_numpy(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return CONFLICT


def dtype_facts(dtype: Any, missing: bool) -> ValueFacts:
    """The facts of a column known by its dtype alone (``missing``: it holds no value)."""
    import pyarrow as pa

    if missing:
        return ValueFacts(arrow=pa.null())
    kind, category = _dtype_kind(dtype)
    arrow = {"boolean": pa.bool_(), "integer": pa.int64(), "floating": pa.float64()}.get(kind)
    return ValueFacts(frozenset({kind}), frozenset({category}), False, arrow)


def _dtype_kind(dtype: Any) -> tuple[str, str]:
    """The inferred kind and category of the values of a non-object dtype, as objects."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean", "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer", "number"
    if pd.api.types.is_float_dtype(dtype):
        return "floating", "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime", "Timestamp"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta", "Timedelta"
    return str(dtype), str(dtype)


def value_action(facts: ValueFacts) -> str:
    """What an object column becomes, from the facts of all its values: KEEP, TO_FLOAT (decimals),
    TO_TEXT (numbers beside text, integers past int64) or NESTED (refused)."""
    kinds = facts.kinds
    if not kinds or (len(kinds) == 1 and next(iter(kinds)) in PLAIN_KINDS):
        return KEEP
    if kinds <= {"date", "datetime"}:
        return KEEP  # pandas calls dates beside datetimes dates
    if kinds == {"decimal"}:
        # Parquet DECIMAL: exact to the cent, but every model takes floats.
        return TO_FLOAT
    if facts.nested:
        return NESTED
    categories = facts.categories
    if len(categories) > 1 or categories == {"big integer"}:
        # Numbers beside text in one column (JSON Lines: 1 and "one"), or integers past int64:
        # text, as a CSV reader gives it, so that validate_data can name what is not a number.
        return TO_TEXT
    return KEEP


def refuse_nested(columns: Sequence[str], first_values: Mapping[str, Any], shown: str) -> None:
    """Raise the error naming the nested (list, dict) columns, if any."""
    if not columns:
        return
    examples = "; ".join(f"{name!r}: {quoted(first_values[name])}" for name in columns[:VALUES_IN_MESSAGE])
    raise InputDataError(
        f"{shown}: column(s) {', '.join(map(repr, columns))} hold lists or records (nested values: "
        f"{examples}); no stage can use them: flatten them into plain columns upstream, or drop them"
    )


def apply_action(series: pd.Series, action: str) -> pd.Series:
    """``series`` as ``action`` says (elementwise, so each chunk alike)."""
    if action == TO_FLOAT:
        values = series.dropna()
        return values.astype("float64").reindex(series.index)
    if action == TO_TEXT:
        return series.map(lambda v: v if v is None or isinstance(v, str) or v != v else str(v))
    return series


def normalize_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """One missing value in text columns whatever the format: CSV gives NaN where Parquet, JSON
    and SQL give None, and the content hash and statistics must not depend on that."""
    for name in frame.select_dtypes(include="object").columns:
        column = frame[name]
        if column.isna().any():
            frame[name] = column.where(column.notna(), np.nan)
    return frame


def _value_category(value: object) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return "big integer"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return type(value).__name__


def column_kind(dtype: Any, all_missing: bool) -> str:
    """numeric, boolean, datetime or text; '' for a column with no value (compatible with any)."""
    if all_missing:
        return ""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "text"


def check_shards(
    kinds: Sequence[Mapping[str, str]],
    names: Sequence[str],
    shown: str,
    example: Callable[[int, str], object],
) -> None:
    """Refuse shards that give one column types that do not mix (numbers in one shard, text in
    another), naming the column, the shards and an example value (``example(shard, column)``);
    numbers of different widths (int64, float64) and columns missing from a shard entirely mix."""
    first_seen: dict[str, tuple[str, str]] = {}
    for number, (shard_kinds, shard) in enumerate(zip(kinds, names, strict=True)):
        for column, kind in shard_kinds.items():
            if not kind:
                continue
            seen = first_seen.setdefault(column, (kind, shard))
            if seen[0] != kind:
                raise InputDataError(
                    f"column {column!r} of {shown} is {seen[0]} in shard {seen[1]} but {kind} in shard "
                    f"{shard} (e.g. {quoted(example(number, column))}); make its values one type in "
                    "every shard"
                )


def common_dtypes(shards: Sequence[tuple[Mapping[str, Any], Mapping[str, bool], int]]) -> dict[str, Any]:
    """The dtype of each column once the shards are put one after the other, as ``pd.concat``
    gives it: shards are given as (dtypes, all-missing columns, rows). pandas decides from the
    dtypes, which shards are empty and which columns hold no value, so a one-row stand-in of each
    shard gives the answer its whole rows would."""
    if len(shards) == 1:
        return dict(shards[0][0])
    frames = []
    for dtypes, missing, rows in shards:
        frames.append(
            pd.DataFrame(
                {name: _stand_in(dtype, missing.get(name, False), rows) for name, dtype in dtypes.items()}
            )
        )
    with warnings.catch_warnings():
        # pandas warns that all-missing columns will count in a future version; this one's rules
        # are the ones the data was read with before it streamed.
        warnings.simplefilter("ignore", FutureWarning)
        combined = pd.concat(frames, ignore_index=True)
    return {str(name): dtype for name, dtype in combined.dtypes.items()}


def _stand_in(dtype: Any, missing: bool, rows: int) -> pd.Series:
    if rows == 0:
        return pd.Series([], dtype=dtype)
    if missing:
        if pd.api.types.is_object_dtype(dtype):
            return pd.Series([np.nan], dtype=object)
        return pd.Series([None], dtype=dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical([dtype.categories[0]], dtype=dtype))
    if pd.api.types.is_bool_dtype(dtype):
        return pd.Series([True], dtype=dtype)
    if pd.api.types.is_numeric_dtype(dtype):
        return pd.Series([1], dtype=dtype)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return pd.Series([pd.Timestamp("2000-01-01", tz=getattr(dtype, "tz", None))], dtype=dtype)
    if pd.api.types.is_timedelta64_dtype(dtype):
        return pd.Series([pd.Timedelta(1)], dtype=dtype)
    if pd.api.types.is_object_dtype(dtype):
        return pd.Series(["x"], dtype=object)
    return pd.Series([None], dtype=dtype)


def to_dtype(series: pd.Series, dtype: Any) -> pd.Series:
    """``series`` as ``dtype`` (a no-op when it already is)."""
    if series.dtype == dtype:
        return series
    return series.astype(dtype)
