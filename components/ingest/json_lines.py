"""JSON Lines files, read a chunk of lines at a time and typed as ``pd.read_json(lines=True)``
types the whole file.

pandas builds a column from the values JSON gives (integers, floats, booleans, strings, None),
then converts it: text that is all numbers becomes float64, floats that are all whole numbers
(with no missing value) become int64, and a column named like a date ("date", "*_at",
"*_time", "modified", "timestamp*") becomes datetime64 when every value converts (epoch numbers
past 1971, or text in the "ns" unit's parsing). Each of those is a property of every value of the
column, so each chunk is read raw (no conversion) and leaves its share of the facts: its values'
type, whether they all convert to float, to whole numbers, to dates in each unit. The column is
then converted as those facts say, a chunk at a time.

A file with an integer past 64 bits is one pandas' JSON parser refuses; it is read with Python's
``json`` module instead, with no conversion (as before), and those integers become text.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError
from mlstages.components.ingest.column_values import ValueFacts, dtype_facts, value_facts
from mlstages.components.ingest.csv_source import decode_error_message
from mlstages.components.ingest.delimited import compression_of, open_text
from mlstages.components.ingest.shards import Shard, ShardPlan, check_column_names

_UNITS = ("s", "ms", "us", "ns")
# pandas' earliest epoch number taken for a date, in the "s" unit it tries first (31 Dec 1970).
_MIN_STAMP = 31536000


def is_date_name(name: str) -> bool:
    """pandas' default date columns (``keep_default_dates``)."""
    lower = name.lower()
    return (
        lower.endswith(("_at", "_time"))
        or lower in ("modified", "date", "datetime")
        or lower.startswith("timestamp")
    )


@dataclass
class _Facts:
    """One column's facts over the chunks read so far."""

    kinds: set[str] = field(default_factory=set)  # int, uint, float, bool, boolna, object
    missing: bool = False  # a row without a value
    low: int | None = None
    to_float: bool = True  # every value converts to float64
    to_int: bool = True  # ... to a whole float64 number within int64, none missing
    # A chunk pandas made float64 held whole numbers: some may have been written as integers,
    # which an object column keeps as they were (4, not 4.0).
    lossy: bool = False
    values: ValueFacts = field(default_factory=ValueFacts)
    # Date-like columns only: pandas tries the whole column as int64 first (then the epoch numbers
    # must be after 1970), else as the values are; each way is a fact of every value.
    overflow: bool = False  # a value overflows int64: no date at all
    as_int: bool = True  # every value converts to int64
    int_dates: _Dates = field(default_factory=lambda: _Dates())  # ... and those int64 as dates
    raw_dates: _Dates = field(default_factory=lambda: _Dates())  # the values as they are, as dates
    object_dates: _Dates = field(default_factory=lambda: _Dates())  # ... as objects, as dates


@dataclass
class _Dates:
    """Whether every chunk's values (taken one way) are epoch numbers after 1970 and which units
    parse them all, with the datetime dtypes they gave."""

    in_range: bool = True
    units: set[str] = field(default_factory=lambda: set(_UNITS))
    stamps: set[str] = field(default_factory=set)

    def add(self, values: pd.Series, check_range: bool) -> None:
        if not self.units:
            return
        if check_range:
            numbers = values.to_numpy(dtype="float64", na_value=np.nan)
            if not (np.isnan(numbers) | (numbers > _MIN_STAMP)).all():
                self.in_range = False
                return
        for unit in list(self.units):
            try:
                self.stamps.add(str(pd.to_datetime(values, errors="raise", unit=unit).dtype))
            except (ValueError, OverflowError, TypeError):
                self.units.discard(unit)

    def unit(self) -> str:
        """The first unit that parsed every chunk ('' for none)."""
        if not self.in_range:
            return ""
        return next((u for u in _UNITS if u in self.units), "")

    def dtype(self) -> str:
        return next(iter(self.stamps)) if len(self.stamps) == 1 else "datetime64[ns]"


@dataclass(frozen=True)
class Rule:
    """How one column is typed: ``raw`` (the dtype the values give), ``dtype`` (after pandas'
    conversions), ``unit`` (a date column's epoch unit) and ``dates`` (how the values become
    dates: "int" as int64, "object" as objects, "raw" as they are)."""

    raw: str
    dtype: str
    unit: str = ""
    dates: str = ""
    objects: bool = False  # an object column read as the JSON values are, integers apart from floats


def raw_kind(series: pd.Series) -> str:
    dtype = series.dtype
    if dtype == np.int64:
        return "int"
    if dtype == np.uint64:
        return "uint"
    if dtype == np.bool_:
        return "bool"
    if dtype == np.float64:
        return "float" if series.notna().any() else "missing"
    present = series.dropna()
    if not len(present):
        return "missing"
    if all(isinstance(v, (bool, np.bool_)) for v in present.iloc[:16]) and present.map(type).eq(bool).all():
        return "boolna"
    return "object"


def _floats(series: pd.Series) -> pd.Series | None:
    try:
        return series.astype("float64")
    except (TypeError, ValueError):
        return None


def _whole(floats: pd.Series) -> bool:
    values = floats.to_numpy()
    if not np.isfinite(values).all():
        return False
    with np.errstate(invalid="ignore"):
        return bool((values.astype(np.int64) == values).all())


def observe(facts: _Facts, series: pd.Series, date: bool, exact: bool) -> None:
    """Add one raw chunk of a column to its facts."""
    kind = raw_kind(series)
    facts.values = facts.values.merge(value_facts(series))
    if kind == "missing":
        facts.missing = True
        facts.to_int = False
        return
    facts.kinds.add(kind)
    if series.isna().any():
        facts.missing = True
    if kind in ("int", "uint"):
        low = int(series.min())
        facts.low = low if facts.low is None else min(facts.low, low)
    if kind == "float" and not facts.lossy:
        values = series.to_numpy()
        with np.errstate(invalid="ignore"):
            facts.lossy = bool((values == np.floor(values)).any())
    if exact:
        return
    if kind not in ("int", "uint") and (facts.to_float or facts.to_int):
        floats = _floats(series)
        if floats is None:
            facts.to_float = facts.to_int = False
        elif facts.to_int:
            facts.to_int = _whole(floats)
    if date:
        _observe_date(facts, series, kind)


def _observe_date(facts: _Facts, series: pd.Series, kind: str) -> None:
    if facts.overflow:
        return
    numeric = kind in ("int", "uint", "float")
    facts.raw_dates.add(series, check_range=numeric)
    facts.object_dates.add(series.astype(object), check_range=False)
    if not facts.as_int:
        return
    try:
        ints = series.astype("int64")
    except OverflowError:
        facts.overflow = True
        return
    except (TypeError, ValueError):
        facts.as_int = False
        return
    facts.int_dates.add(ints, check_range=True)


def decide(name: str, f: _Facts, exact: bool) -> Rule:
    """The column's rule from the facts of all its chunks."""
    kinds = f.kinds
    if not kinds:
        raw = "object"
    elif kinds <= {"int", "uint"}:
        if "uint" in kinds and (f.low or 0) < 0:
            raw = "object"
        else:
            raw = "float64" if f.missing else ("uint64" if "uint" in kinds else "int64")
    elif kinds <= {"int", "uint", "float"}:
        raw = "float64"
    elif kinds == {"bool"} and not f.missing:
        raw = "bool"
    else:
        raw = "object"
    objects = raw == "object" and f.lossy
    if exact:
        return Rule(raw, raw, objects=objects)
    if is_date_name(name) and not kinds:
        return Rule(raw, "datetime64[ns]", "s", "raw")  # no value: pandas' dates of nothing, NaT
    if is_date_name(name) and kinds and not f.overflow:
        if raw != "object":
            way, dates = "raw", f.raw_dates
        elif f.as_int and not f.missing:
            way, dates = "int", f.int_dates
        else:
            way, dates = "object", f.object_dates
        if dates.unit():
            return Rule(raw, dates.dtype(), dates.unit(), way)
    if raw == "object":
        if f.to_float:
            return Rule(raw, "int64" if f.to_int else "float64")
        return Rule(raw, "object", objects=objects)
    if raw == "float64":
        return Rule(raw, "int64" if f.to_int else "float64")
    return Rule(raw, raw)


def convert(series: pd.Series, rule: Rule) -> pd.Series | None:
    """One raw chunk of a column as ``rule`` types it; None when the chunk's floats may hide
    integers the column keeps as they were written."""
    if rule.objects and series.dtype == np.float64:
        return None
    if rule.unit:
        new = {"int": lambda: series.astype("int64"), "object": lambda: series.astype(object)}.get(
            rule.dates, lambda: series
        )()
        return pd.to_datetime(new, errors="raise", unit=rule.unit).astype(rule.dtype)
    if rule.dtype == "object":
        return series.astype(object)
    if rule.dtype == "int64" and rule.raw in ("object", "float64"):
        return series.astype("float64").astype("int64")
    return series.astype(rule.dtype)


class JsonLinesShard(Shard):
    """One JSON Lines file."""

    def __init__(self, path: Path, shown: str, *, encoding: str = "utf-8", batch_rows: int) -> None:
        super().__init__(path.name, shown)
        self.path = path
        self.encoding = encoding
        self.batch_rows = batch_rows
        self.compression: str | None = None
        self.exact = False
        self.columns: list[str] = []
        self.facts: dict[str, _Facts] = {}
        self.rows = 0

    def open(self) -> None:
        self.compression = compression_of(self.path, self.shown, "jsonl")

    def _raw(self) -> Iterator[pd.DataFrame]:
        if self.exact:
            yield from self._exact()
            return
        try:
            reader = pd.read_json(
                self.path,
                lines=True,
                chunksize=self.batch_rows,
                encoding=self.encoding,
                compression=self.compression,
                dtype=False,
                convert_dates=False,
                convert_axes=False,
            )
            with reader:
                yield from reader
        except UnicodeDecodeError as exc:
            raise InputDataError(
                decode_error_message(self.path, self.shown, self.encoding, exc, self.compression)
            ) from exc
        except ValueError as exc:
            if "too big" in str(exc):
                raise _TooBig from exc
            raise InputDataError(
                f"{self.shown} is not valid JSON Lines (one JSON object per line): {exc}"
            ) from exc

    def _exact(self) -> Iterator[pd.DataFrame]:
        records: list[Any] = []
        try:
            with open_text(self.path, self.encoding, self.compression) as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        records.append(json.loads(line))
                    except ValueError as exc:
                        raise InputDataError(
                            f"{self.shown} is not valid JSON Lines: line {number}: {exc}"
                        ) from exc
                    if len(records) >= self.batch_rows:
                        yield pd.DataFrame.from_records(records)
                        records = []
        except UnicodeDecodeError as exc:
            raise InputDataError(
                decode_error_message(self.path, self.shown, self.encoding, exc, self.compression)
            ) from exc
        if records:
            yield pd.DataFrame.from_records(records)

    def first_pass(self) -> Iterator[pd.DataFrame]:
        while True:
            self.columns, self.facts, self.rows = [], {}, 0
            try:
                for chunk in self._raw():
                    self._observe(chunk)
                    yield chunk
            except _TooBig:
                # pandas' JSON parser stops at integers past 64 bits; Python's reads them.
                self.exact = True
                continue
            break
        # A JSON object cannot repeat a key (the parser keeps the last), but a key can be "".
        check_column_names(self.columns, self.shown)

    def _observe(self, chunk: pd.DataFrame) -> None:
        names = [str(c) for c in chunk.columns]
        if not self.columns:
            check_column_names(names, self.shown)
        for name in names:
            if name not in self.facts:
                self.columns.append(name)
                self.facts[name] = _Facts(missing=self.rows > 0, to_int=self.rows == 0)
        chunk.columns = names
        for name in self.columns:
            if name in chunk.columns:
                observe(self.facts[name], chunk[name], is_date_name(name), self.exact)
            elif len(chunk):
                self.facts[name].missing = True
                self.facts[name].to_int = False
        self.rows += len(chunk)

    def plan(self) -> ShardPlan:
        rules = tuple(decide(name, self.facts[name], self.exact) for name in self.columns)
        dtypes, missing, values = [], [], []
        for name, rule in zip(self.columns, rules, strict=True):
            f = self.facts[name]
            dtype = pd.api.types.pandas_dtype(rule.dtype)
            empty = not f.kinds
            dtypes.append(dtype)
            missing.append(empty)
            values.append(f.values if rule.dtype == "object" else dtype_facts(dtype, empty))
        return ShardPlan(
            tuple(self.columns), tuple(dtypes), tuple(missing), tuple(values), (self.exact, rules), self.rows
        )

    def convert(self, chunk: pd.DataFrame, plan: ShardPlan) -> pd.DataFrame | None:
        _, rules = plan.detail
        columns = {}
        for name, rule in zip(plan.columns, rules, strict=True):
            column = chunk[name] if name in chunk.columns else pd.Series(np.nan, index=chunk.index)
            converted = convert(column, rule)
            if converted is None:
                return None
            columns[name] = converted
        return pd.DataFrame(columns, index=chunk.index)

    def final_pass(self, plan: ShardPlan) -> Iterator[pd.DataFrame]:
        self.exact, rules = plan.detail
        wanted = [name for name, rule in zip(plan.columns, rules, strict=True) if rule.objects]
        values = self._values(wanted) if wanted else None
        for chunk in self._raw():
            chunk.columns = [str(c) for c in chunk.columns]
            if values is not None:
                # The same lines, parsed again: these columns as the JSON values are.
                for name, column in next(values).items():
                    column.index = chunk.index
                    chunk[name] = column
            converted = self.convert(
                chunk, dataclasses.replace(plan, detail=(self.exact, _objects_read(rules)))
            )
            assert converted is not None
            yield converted

    def _values(self, columns: list[str]) -> Iterator[dict[str, pd.Series]]:
        """``columns`` of each chunk of lines as object Series of the values JSON gives (no
        pandas inference, which would make the integers of a column with floats floats)."""
        from pandas._libs.json import ujson_loads

        parse = json.loads if self.exact else (lambda line: ujson_loads(line, precise_float=False))
        records: list[Any] = []
        with open_text(self.path, self.encoding, self.compression) as handle:
            for line in handle:
                if not line.strip():
                    continue
                records.append(parse(line))
                if len(records) >= self.batch_rows:
                    yield {c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns}
                    records = []
        if records:
            yield {c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns}


def _objects_read(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The rules once the object columns were read as the JSON values are."""
    return tuple(dataclasses.replace(rule, objects=False) for rule in rules)


class _TooBig(Exception):
    """An integer past 64 bits: the file is read again with Python's json module."""
