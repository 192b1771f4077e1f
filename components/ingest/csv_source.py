"""CSV and TSV files, read a chunk at a time with pandas and typed as a read of the whole file is.

After ``delimited.scan`` has checked every record (and noted the columns holding a leading-zero
code or the value "NA"), pandas reads the file with the suite's rules for missing values and
codes:

- "NA" means missing only in a column whose other values are numbers (R's convention, and then
  "NA" is missing in every column of the file) or words; among upper-case codes it is a value
  (North America), and validate_data warns about it.
- integer columns holding codes with leading zeros ("00501") stay text.

pandas types each chunk from that chunk's rows alone: a column of integers whose first missing
value is a million rows down, or of numbers whose first word is, gets another type in each chunk.
So each chunk leaves facts (the type pandas gave each column, its smallest and largest integer,
whether "NA" and which other values appeared), and ``decide`` types every column from all of
them as pandas types the whole file: integers beside floats or missing values are floats,
anything beside text is text (and read again as text, since pandas' numbers have lost the
written form), booleans beside missing values are objects, integers past int64 beside negative
ones are text. Read differently from pandas' whole-file read, on purpose: integers past int64
beside floats or missing values are text (pandas gives float64 or text depending on which of
them comes first in the file), and in a column of upper-case codes with a chunk of nothing but
"TRUE" (which pandas parses as booleans, their text gone) "NA" is missing.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError
from mlstages.components.ingest.column_values import ValueFacts, dtype_facts, to_dtype
from mlstages.components.ingest.delimited import (
    DEFAULT_MAX_CELL_LENGTH,
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_LINE_LENGTH,
    MISSING_STRINGS,
    compression_of,
    scan,
)
from mlstages.components.ingest.shards import Shard, ShardPlan, check_column_names

_CODE = re.compile(r"^[A-Z]{2,4}$")
# Values looked at before a whole chunk is: a column of words shows it is not numbers (or codes)
# in its first values.
_PROBE = 16


@dataclass
class _Facts:
    """One column's facts over the chunks read so far."""

    kinds: set[str] = field(default_factory=set)  # int, uint, float, bool, boolna, text
    missing: bool = False  # a chunk had no value in this column
    low: int | None = None
    high: int | None = None
    na: bool = False  # the value "NA" appeared
    rest: bool = False  # a value other than "NA" and missing appeared
    rest_numeric: bool = True  # ... and every such value is a number
    rest_codes: bool = True  # ... and every such value is an upper-case code
    big: bool = False  # an integer past int64 appeared


@dataclass(frozen=True)
class Rule:
    """How one column is typed.

    dtype: int64, uint64, float64, bool or object.
    text: read as text (pandas parsed some chunk otherwise, and only the text is right).
    na: "missing" ("NA" is a missing value), "number" (numbers with "NA" for missing) or "".
    strip: leading-zero integer codes, kept as their text without surrounding blanks.
    bools: an object column of booleans and missing values.
    missing_text: the missing-value strings ("nan", "NULL") are missing even where pandas left
        them as text (it does in a column holding integers past 64 bits).
    """

    dtype: str
    text: bool = False
    na: str = ""
    strip: bool = False
    bools: bool = False
    missing_text: bool = False


def chunk_kind(series: pd.Series) -> str:
    """The type pandas gave a column in one chunk: int, uint, float, bool, boolna (booleans and
    missing values), text, or missing (no value)."""
    dtype = series.dtype
    if dtype == np.int64:
        return "int"
    if dtype == np.uint64:
        return "uint"
    if dtype == np.bool_:
        return "bool"
    if dtype == np.float64:
        return "float" if series.notna().any() else "missing"
    values = series.to_numpy()
    # pandas never mixes booleans and strings in a column, so one value tells; the first usually
    # is one (a whole column's missing-value scan costs more than the rest of the chunk's facts).
    first = values[0] if len(values) else None
    if first is None or (isinstance(first, float) and first != first):
        at = series.first_valid_index()
        if at is None:
            return "missing"
        first = series[at]
    return "boolna" if isinstance(first, (bool, np.bool_)) else "text"


def _all_numbers(values: pd.Series) -> bool:
    if pd.to_numeric(values.iloc[:_PROBE], errors="coerce").isna().any():
        return False
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def _has_big_integer(numbers: pd.Series) -> bool:
    """Whether text that is all numbers writes an integer past int64 (19 digits or more)."""
    long = numbers[numbers.str.len() >= 19]
    return any(_INTEGER.fullmatch(text) and not -(2**63) <= int(text) < 2**63 for text in long.tolist())


def _numbers_left_as_text(series: pd.Series) -> bool:
    """Whether a text chunk holds only numbers (bar missing-value strings): what pandas gives a
    column with an integer past 64 bits. Its first values tell for a column of words."""

    def numbers(values: pd.Series) -> bool:
        values = values.dropna()
        return _all_numbers(values[~values.isin(MISSING_STRINGS)])

    return numbers(series.iloc[: 4 * _PROBE]) and numbers(series)


def _all_codes(values: pd.Series) -> bool:
    def codes(items: Any) -> bool:
        return all(isinstance(v, str) and _CODE.match(v) for v in items)

    return codes(values.iloc[:_PROBE]) and codes(pd.unique(values))


def observe(facts: _Facts, series: pd.Series, has_na: bool) -> None:
    """Add one chunk of a column to its facts; ``has_na``: the scan saw "NA" in this column."""
    kind = chunk_kind(series)
    if kind == "missing":
        facts.missing = True
        return
    facts.kinds.add(kind)
    if kind in ("int", "uint"):
        low, high = int(series.min()), int(series.max())
        facts.low = low if facts.low is None else min(facts.low, low)
        facts.high = high if facts.high is None else max(facts.high, high)
        facts.big = facts.big or kind == "uint"
    elif kind == "float" and not facts.big:
        values = series.to_numpy()
        with np.errstate(invalid="ignore"):
            facts.big = bool(((np.abs(values) >= 2.0**63) & (values == np.floor(values))).any())
    elif kind == "text" and not facts.big and not has_na:
        # Numbers pandas left as text: an integer past 64 bits among them (pandas then leaves the
        # missing-value strings as text too).
        facts.big = _numbers_left_as_text(series)
    if kind != "text":
        facts.rest = True
        facts.rest_codes = False
        if kind in ("bool", "boolna"):
            facts.rest_numeric = False
        return
    if not has_na:
        facts.rest = True
        facts.rest_codes = facts.rest_numeric = False  # a text chunk without "NA": words
        return
    is_na = series.eq("NA")
    facts.na = facts.na or bool(is_na.any())
    rest = series[~is_na].dropna()
    if len(rest):
        facts.rest = True
        facts.rest_numeric = facts.rest_numeric and _all_numbers(rest)
        facts.rest_codes = facts.rest_codes and _all_codes(rest)
        if facts.rest_numeric and not facts.big:
            facts.big = _has_big_integer(rest)


def decide(facts: dict[str, _Facts], zeros: set[str], rows: int) -> dict[str, Rule]:
    """Each column's rule, from the facts of all its chunks, as pandas and the suite's rules type
    the whole file (``zeros``: the columns with a leading-zero value)."""
    rules: dict[str, Rule] = {}
    for name, f in facts.items():
        kinds = f.kinds
        if f.big and not (kinds <= {"int", "uint"} and not f.missing):
            # Integers past int64 beside anything but integers: pandas' type then depends on which
            # odd value comes first in the file (float64 or text); text, whatever the order.
            rules[name] = Rule("object", text=True, missing_text=True)
        elif not kinds:
            # No value at all: pandas gives float64, and object to a file with no rows.
            rules[name] = Rule("float64" if rows else "object")
        elif kinds <= {"int", "uint"}:
            if f.missing:
                rules[name] = Rule("float64")
            elif "uint" in kinds and (f.low or 0) < 0:
                rules[name] = Rule("object", text=True)  # past int64 and negative: neither fits
            else:
                rules[name] = Rule("uint64" if "uint" in kinds else "int64")
        elif kinds <= {"int", "uint", "float"}:
            rules[name] = Rule("float64")
        elif kinds <= {"bool", "boolna"}:
            bools = f.missing or "boolna" in kinds
            rules[name] = Rule("object", bools=True) if bools else Rule("bool")
        else:
            rules[name] = Rule("object", text=kinds != {"text"})
    with_na = [name for name, f in facts.items() if f.na and rules[name].dtype == "object"]
    numbers = [
        name for name in with_na if facts[name].rest and facts[name].rest_numeric and not facts[name].big
    ]
    # A column of numbers and "NA" is R's missing value, and then so is "NA" everywhere in the file.
    for name in numbers:
        rules[name] = Rule("float64", text=True, na="number")
    for name in with_na:
        if name in numbers:
            continue
        codes = facts[name].rest and facts[name].rest_codes
        if numbers or not codes:
            rules[name] = dataclasses.replace(rules[name], na="missing")
    for name in zeros:
        if rules[name].dtype in ("int64", "uint64"):
            rules[name] = Rule("object", text=True, strip=True)
    return rules


# Integers past 2**53 do not all have a float64 of their own: pandas' parser, reading a column of
# floats, rounds their text otherwise than a cast of the integer does.
_EXACT_FLOAT = 2**53


def _beyond_exact(series: pd.Series) -> pd.Series:
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return pd.Series(np.abs(values) > _EXACT_FLOAT, index=series.index)


def _parsed_as_floats(values: pd.Series) -> np.ndarray:
    """Integers as pandas' parser gives them in a column of floats (their text, parsed beside a
    float)."""
    text = "x\n" + "\n".join(str(v) for v in values.tolist()) + "\n0.5\n"
    return pd.read_csv(io.StringIO(text))["x"].to_numpy()[:-1]


def convert(series: pd.Series, rule: Rule, text: pd.Series | None = None) -> pd.Series | None:
    """One chunk of a column as ``rule`` types it; None when it cannot be done from what pandas
    parsed (``text``: the column read as text, when it was)."""
    kind = chunk_kind(series)
    if rule.strip:
        source = text if text is not None else series if kind == "text" else None
        return None if source is None else source.str.strip()
    if rule.na == "number":
        if kind == "text":
            return pd.to_numeric(series.where(series.ne("NA")), errors="coerce").astype("float64")
        if kind in ("bool", "boolna") or _beyond_exact(series).any():
            return None  # to_numeric of the text is the rule; read it again as text
        return series.astype("float64")
    if rule.dtype != "object":
        if kind in ("text", "boolna"):
            return None
        out = to_dtype(series, np.dtype(rule.dtype))
        if rule.dtype == "float64" and kind in ("int", "uint"):
            big = _beyond_exact(series)
            if big.any():
                out[big] = _parsed_as_floats(series[big])
        return out
    if rule.bools:
        return series.astype(object)
    if kind == "missing":
        series = series.astype(object)
    elif kind != "text":
        return None
    if rule.na == "missing":
        series = series.where(series.ne("NA"), np.nan)
    if rule.missing_text:
        series = series.where(~series.isin(MISSING_STRINGS), np.nan)
    return series


class CsvShard(Shard):
    """One CSV or TSV file."""

    def __init__(
        self,
        path: Path,
        shown: str,
        fmt: str,
        *,
        delimiter: str = "",
        encoding: str = "utf-8",
        batch_rows: int,
        max_columns: int = DEFAULT_MAX_COLUMNS,
        max_cell_length: int = DEFAULT_MAX_CELL_LENGTH,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    ) -> None:
        super().__init__(path.name, shown)
        self.path = path
        self.fmt = fmt
        self.sep = delimiter.replace("\\t", "\t") or ("\t" if fmt == "tsv" else ",")
        self.encoding = encoding
        self.batch_rows = batch_rows
        self.limits = {
            "max_columns": max_columns,
            "max_cell_length": max_cell_length,
            "max_line_length": max_line_length,
        }
        self.compression: str | None = None
        self.columns: list[str] = []
        self.zeros: set[str] = set()
        self.na: set[str] = set()
        self.facts: dict[str, _Facts] = {}
        self.rows = 0
        self._text: pd.DataFrame | None = None

    def open(self) -> None:
        self.compression = compression_of(self.path, self.shown, self.fmt)
        try:
            found = scan(self.path, self.sep, self.encoding, self.compression, self.shown, **self.limits)
        except UnicodeDecodeError as exc:
            raise InputDataError(
                decode_error_message(self.path, self.shown, self.encoding, exc, self.compression)
            ) from exc
        # Before pandas reads it: pandas renames duplicates ("x.1") and empty names ("Unnamed: 5").
        check_column_names(found.header, self.shown)
        if len(found.header) == 1:
            header = found.header[0]
            for candidate in (";", "\t", "|", ","):
                if candidate != self.sep and candidate in header:
                    raise InputDataError(
                        f"{self.shown} parsed as a single column {header[:60]!r} with delimiter {self.sep!r}; "
                        f"the header contains {candidate!r}: set delimiter={candidate!r}"
                    )
        self.columns = list(found.header)
        self.zeros = {self.columns[i] for i in found.leading_zero}
        self.na = {self.columns[i] for i in found.na}
        self.facts = {name: _Facts() for name in self.columns}
        self.rows = 0

    def _chunks(self, **options: Any) -> Iterator[pd.DataFrame]:
        try:
            reader = pd.read_csv(
                self.path,
                sep=self.sep,
                encoding=self.encoding,
                compression=self.compression,
                chunksize=self.batch_rows,
                low_memory=False,
                keep_default_na=False,
                na_values=MISSING_STRINGS,
                **options,
            )
            with reader:
                yield from reader
        except UnicodeDecodeError as exc:
            raise InputDataError(
                decode_error_message(self.path, self.shown, self.encoding, exc, self.compression)
            ) from exc
        except pd.errors.EmptyDataError as exc:
            raise InputDataError(f"{self.shown} has no columns (is it empty?)") from exc
        except pd.errors.ParserError as exc:
            raise InputDataError(
                f"{self.shown} is not valid {self.fmt.upper()} with delimiter {self.sep!r}: {exc}"
            ) from exc

    def first_pass(self) -> Iterator[pd.DataFrame]:
        texts: Iterator[pd.DataFrame] | None = None
        for number, chunk in enumerate(self._chunks()):
            if number == 0:
                # Integer columns with a leading-zero code become their text: read it beside them
                # (a column that is not integers in the first chunk never is).
                wanted = [
                    n for n in self.columns if n in self.zeros and chunk_kind(chunk[n]) in ("int", "uint")
                ]
                if wanted:
                    positions = [self.columns.index(n) for n in wanted]
                    texts = self._chunks(usecols=positions, dtype=str)
            self._text = next(texts) if texts is not None else None
            for name in self.columns:
                observe(self.facts[name], chunk[name], name in self.na)
            self.rows += len(chunk)
            yield chunk
        self._text = None

    def plan(self) -> ShardPlan:
        rules = decide(self.facts, self.zeros, self.rows)
        dtypes, missing, values = [], [], []
        for name in self.columns:
            rule, f = rules[name], self.facts[name]
            empty = not f.kinds or (rule.na == "missing" and not f.rest)
            dtype = np.dtype(rule.dtype)
            dtypes.append(dtype)
            missing.append(empty)
            if rule.dtype != "object":
                values.append(dtype_facts(dtype, empty))
            elif empty:
                values.append(dtype_facts(dtype, True))
            elif rule.bools:
                values.append(dtype_facts(np.dtype(bool), False))
            else:
                values.append(ValueFacts(frozenset({"string"}), frozenset({"text"}), False, _string()))
        detail = tuple(rules[name] for name in self.columns)
        return ShardPlan(tuple(self.columns), tuple(dtypes), tuple(missing), tuple(values), detail, self.rows)

    def convert(self, chunk: pd.DataFrame, plan: ShardPlan) -> pd.DataFrame | None:
        changed = {}
        for name, rule in zip(plan.columns, plan.detail, strict=True):
            text = self._text[name] if self._text is not None and name in self._text else None
            original = chunk[name]
            column = convert(original, rule, text)
            if column is None:
                return None
            if column is not original:
                changed[name] = column
        # Only the columns that changed are replaced: a new frame would copy every block.
        for name, column in changed.items():
            chunk[name] = column
        return chunk

    def final_pass(self, plan: ShardPlan) -> Iterator[pd.DataFrame]:
        as_text = {name: str for name, rule in zip(plan.columns, plan.detail, strict=True) if rule.text}
        for chunk in self._chunks(dtype=as_text or None):
            converted = self.convert(chunk, plan)
            if converted is None:
                raise AssertionError(f"{self.shown}: a chunk read as text did not convert")
            yield converted


def _string() -> Any:
    import pyarrow as pa

    return pa.string()


def decode_error_message(
    path: Path, shown: str, encoding: str, exc: UnicodeDecodeError, compression: str | None = None
) -> str:
    """The message for a file that is not valid text in ``encoding``, naming the line (of a
    plain file: a compressed file's bytes are not its lines)."""
    # UnicodeDecodeError positions are relative to the chunk that was decoded, so find the first
    # bad byte in the file itself.
    line, offset = (None, None) if compression else _first_undecodable(path, encoding)
    where = f" at line {line} (byte offset {offset})" if line else ""
    return (
        f"{shown} is not valid {encoding} text{where}: {exc.reason}; "
        "set the encoding parameter (for example latin-1) or fix the file"
    )


def _first_undecodable(path: Path, encoding: str) -> tuple[int | None, int | None]:
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                return number, offset + exc.start
            offset += len(raw)
    return None, None
