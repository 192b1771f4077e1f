"""CSV and TSV files: checked record by record before pandas reads them, then read with the
suite's rules for missing values and codes.

pandas reads what it is given without complaint: a short row is padded with missing values, a
header of 100,000 columns takes a minute (its header parsing grows with the square of the
columns), a gzip file named ``.csv`` fails as "not valid utf-8", an HTML error page parses as a
one-column table, "00501" becomes 501 and "NA" (North America) becomes missing. So, after
``compression_of`` has looked at the first bytes (a compressed file is read as such whatever its
name; Parquet or HTML is refused as what it is), and before pandas runs, ``scan`` reads the file
once with the ``csv`` module and refuses, naming the line:

- a header with more than ``max_columns`` columns, a line longer than ``max_line_length``, a cell
  larger than ``max_cell_length`` (a 20 MB value used to reach the task's command line through
  artifact metadata);
- a record with more or fewer fields than the header.

Then ``read_delimited`` reads it with pandas and two rules of its own: integer columns holding
codes with leading zeros stay text, and "NA" means missing only in a column whose other values
are numbers (R's convention) or words; among upper-case codes it is a value (North America), and
validate_data warns about it.

The price: reading a 160 MB, 1M-row CSV took 3.1 s against 1.4 s for pandas alone (two runs of
three, on this 2-core machine), the csv module's pass being most of the difference.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from mlstages.components.common.errors import InputDataError

DEFAULT_MAX_COLUMNS = 10_000


DEFAULT_MAX_CELL_LENGTH = 1 << 20


DEFAULT_MAX_LINE_LENGTH = 16 << 20


# The first bytes of files that are not text: what they are, and how pandas opens the compressed ones.
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"PK\x03\x04", "zip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PAR1", "parquet"),
)
_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)

# pandas' missing-value strings, without "NA": see read_delimited.
_MISSING_STRINGS = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]
_LEADING_ZERO = re.compile(r"^\s*0\d")
_CODE = re.compile(r"^[A-Z]{2,4}$")
RAGGED_IN_MESSAGE = 5


def sniff(path: Path) -> str:
    """What the file's first bytes say it is: a compression, 'parquet', 'html', or '' (text)."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if _HTML_START.match(head.removeprefix(b"\xef\xbb\xbf")):
        return "html"
    return ""


def compression_of(path: Path, shown: str, fmt: str) -> str | None:
    """The compression to open ``path`` with (from its name, or else from its bytes), or None;
    an error for a file that is Parquet or HTML rather than ``fmt``."""
    kind = sniff(path)
    label = fmt.upper()
    if kind == "parquet":
        raise InputDataError(
            f"{shown} is a Parquet file, not {label}: set source_format='parquet' or name it .parquet"
        )
    if kind == "html":
        raise InputDataError(
            f"{shown} is an HTML page, not {label} (a sign-in or error page served instead of the "
            "data?): check the URI and its access"
        )
    by_name = next((c for suffix, c in _COMPRESSIONS.items() if shown.lower().endswith(suffix)), None)
    # A compressed file whose name does not say so is read as what its bytes say it is.
    return by_name or (kind or None)


@contextmanager
def open_text(path: Path, encoding: str, compression: str | None) -> Iterator[IO[str]]:
    """The file as text, decompressed as ``compression`` says (None: as it is)."""
    if compression is None:
        with open(path, encoding=encoding, newline="") as handle:
            yield handle
        return
    with _decompressed(path, compression) as raw:
        yield io.TextIOWrapper(raw, encoding=encoding, newline="")


@contextmanager
def _decompressed(path: Path, compression: str) -> Iterator[IO[bytes]]:
    """The decompressed bytes of ``path``, as pandas would open them."""
    if compression == "zip":
        import zipfile

        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise InputDataError(
                    f"{path.name} is a zip archive of {len(members)} files; it must hold exactly one"
                )
            with archive.open(members[0]) as raw:
                yield raw
        return
    if compression == "zstd":
        try:
            import zstandard
        except ImportError as exc:
            raise InputDataError(
                f"{path.name} is zstd-compressed, and reading it needs the zstandard package"
            ) from exc
        with open(path, "rb") as handle, zstandard.ZstdDecompressor().stream_reader(handle) as raw:
            yield raw
        return
    import bz2
    import gzip
    import lzma

    opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[compression]
    with opener(path, "rb") as raw:
        yield raw


def _line_blocks(handle: IO[str], max_line_length: int, shown: str) -> Iterator[list[str]]:
    """The file's physical lines, refusing one longer than ``max_line_length`` characters.

    Lines come in blocks of about a megabyte (``readlines``' hint), each block checked with one
    C-level ``max``: a Python step per line would cost as much as the csv parsing itself."""
    number = 0
    while True:
        block = handle.readlines(1 << 20)
        if not block:
            return
        longest = max(map(len, block))
        if longest > max_line_length + 2:  # the line ending is not content
            at = number + next(i for i, line in enumerate(block, start=1) if len(line) == longest)
            raise InputDataError(
                f"{shown}: line {at} is {longest - 1:,} characters long, more than max_line_length="
                f"{max_line_length:,}; are the line endings right? Raise max_line_length if the lines "
                "are meant to be this long"
            )
        number += len(block)
        yield block


def scan(
    path: Path,
    sep: str,
    encoding: str,
    compression: str | None,
    shown: str,
    *,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    max_cell_length: int = DEFAULT_MAX_CELL_LENGTH,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
) -> list[str]:
    """The header as written, after checking every record of the file against the limits and
    against the header's field count; raises InputDataError naming the first offending lines."""
    previous_limit = csv.field_size_limit()
    csv.field_size_limit(max_cell_length)
    try:
        with open_text(path, encoding, compression) as handle:
            lines = itertools.chain.from_iterable(_line_blocks(handle, max_line_length, shown))
            reader = csv.reader(lines, delimiter=sep)
            try:
                header = next(reader, None)
                if header is None:
                    raise InputDataError(f"{shown} has no columns (is it empty?)")
                if len(header) > max_columns:
                    raise InputDataError(
                        f"{shown} has {len(header):,} columns, more than max_columns={max_columns:,}; is "
                        f"the delimiter {sep!r} right? Raise max_columns if the table really is this wide"
                    )
                ragged: list[tuple[int, int]] = []
                count = 0
                for record in reader:
                    if len(record) != len(header) and record:
                        count += 1
                        if len(ragged) < RAGGED_IN_MESSAGE:
                            ragged.append((reader.line_num, len(record)))
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise InputDataError(
                        f"{shown}: line {reader.line_num} has a value larger than max_cell_length="
                        f"{max_cell_length:,} characters (or an unclosed quote); fix the file, or raise "
                        "max_cell_length if values are meant to be this large"
                    ) from exc
                raise InputDataError(
                    f"{shown} is not valid {sep!r}-separated text at line {reader.line_num}: {exc}"
                ) from exc
    finally:
        csv.field_size_limit(previous_limit)
    if count:
        shown_lines = ", ".join(f"line {line} has {fields}" for line, fields in ragged)
        raise InputDataError(
            f"{shown}: {count:,} row(s) do not have the header's {len(header)} fields ({shown_lines}); "
            "fix those rows (a missing delimiter, an unquoted delimiter in a value?) so every row has "
            "one field per column"
        )
    return header


def read_delimited(path: Path, sep: str, encoding: str, compression: str | None) -> pd.DataFrame:
    """The checked file as pandas reads it, with leading-zero codes kept as text and "NA" read as
    missing only in numeric columns."""
    df = pd.read_csv(
        path,
        sep=sep,
        encoding=encoding,
        compression=compression,
        low_memory=False,
        keep_default_na=False,
        na_values=_MISSING_STRINGS,
    )
    df = _resolve_na(df)
    codes = _leading_zero_columns(path, sep, encoding, compression, df)
    for name in codes:
        df[name] = codes[name]
    return df


def _resolve_na(df: pd.DataFrame) -> pd.DataFrame:
    """ "NA" as missing, as R writes it, except where it is a code among codes.

    A column of numbers and "NA" is R's missing value, and then so is "NA" everywhere in the file.
    Otherwise, in a column whose other values are upper-case codes ("EU", "APAC"), "NA" is one of
    them (North America, Namibia) and stays a value, which validate_data points out; beside words
    ("male", "female") it is missing.
    """
    with_na = [name for name in df.select_dtypes(include="object").columns if df[name].eq("NA").any()]
    written_by_r = False
    undecided = []
    for name in with_na:
        column = df[name]
        rest = column[column.notna() & column.ne("NA")]
        if len(rest) and pd.to_numeric(rest, errors="coerce").notna().all():
            df[name] = pd.to_numeric(column.where(column.ne("NA")), errors="coerce")
            written_by_r = True
        else:
            undecided.append(name)
    for name in undecided:
        column = df[name]
        others = pd.unique(column[column.notna() & column.ne("NA")])
        codes = len(others) > 0 and all(isinstance(v, str) and _CODE.match(v) for v in others)
        if written_by_r or not codes:
            df[name] = column.where(column.ne("NA"), np.nan)
    return df


def _leading_zero_columns(
    path: Path, sep: str, encoding: str, compression: str | None, df: pd.DataFrame
) -> dict[str, pd.Series]:
    """The integer columns whose text has codes with leading zeros ("00501"), as that text."""
    integers = [name for name in df.columns if pd.api.types.is_integer_dtype(df[name])]
    if not integers:
        return {}
    # Positions, not names: usecols by name would trip on names pandas renamed.
    positions = [df.columns.get_loc(name) for name in integers]
    raw = pd.read_csv(
        path,
        sep=sep,
        encoding=encoding,
        compression=compression,
        usecols=positions,
        dtype=str,
        keep_default_na=False,
        na_values=_MISSING_STRINGS,
    )
    found = {}
    for name, raw_name in zip(integers, raw.columns, strict=True):
        text = raw[raw_name]
        if text.str.match(_LEADING_ZERO).any():
            found[name] = text.str.strip()
    return found
