"""CSV and TSV files: checked record by record before pandas reads them.

pandas reads what it is given without complaint: a short row is padded with missing values, a
header of 100,000 columns takes a minute (its header parsing grows with the square of the
columns), a gzip file named ``.csv`` fails as "not valid utf-8", an HTML error page parses as a
one-column table. So, after ``compression_of`` has looked at the first bytes (a compressed file is
read as such whatever its name; Parquet or HTML is refused as what it is), and before pandas runs,
``scan`` reads the file once with the ``csv`` module and refuses, naming the line:

- a header with more than ``max_columns`` columns, a line longer than ``max_line_length``, a cell
  larger than ``max_cell_length`` (a 20 MB value used to reach the task's command line through
  artifact metadata);
- a record with more or fewer fields than the header.

The same pass notes the columns holding a value with a leading zero ("00501"): pandas reads it as
501, and the suite keeps such integer columns as text (``csv_source``), which it can only decide
from the text. How the file is then read, a chunk at a time, is ``csv_source``'s.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

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

# pandas' missing-value strings, without "NA": see csv_source.
MISSING_STRINGS = [
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
LEADING_ZERO = re.compile(r"^\s*0\d")
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


def _line_blocks(
    handle: IO[str], max_line_length: int, shown: str, on_block: Callable[[list[str]], None] | None = None
) -> Iterator[list[str]]:
    """The file's physical lines, refusing one longer than ``max_line_length`` characters.

    Lines come in blocks of about a megabyte (``readlines``' hint), each block checked with one
    C-level ``max``: a Python step per line would cost as much as the csv parsing itself.
    ``on_block`` sees each block before its lines are parsed."""
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
        if on_block is not None:
            on_block(block)
        number += len(block)
        yield block


_CELL_LEADING_ZERO = re.compile(r"\x00\s*0\d")
_CELL_NA = re.compile(r"\x00NA(?=\x00)")
RECORDS_PER_CHECK = 256
BYTES_PER_CHECK = 1 << 16


class CellMarks:
    """Which columns hold a value with a leading zero (``LEADING_ZERO``) and which the value "NA",
    seen as the scan passes: what the chunk reader needs to know about the whole file before it
    reads the first chunk.

    A block of lines without a quote character is checked with numpy on its bytes: cells start
    after a delimiter or a line end, and a cell's column is its count of delimiters since the line
    began. Once a quote appears, cells can hold delimiters and line ends, so from then on the
    parsed records are checked instead, in groups (the cells of the columns joined with NUL, a
    regular expression over them). On a 157 MB file of 25 columns the quote-free path took 0.55 s
    and the record path 1.2 s, beside 1.9 s for the csv module's pass.
    """

    def __init__(self, sep: str, width: int) -> None:
        self.sep = sep
        self.width = width
        self.zeros: set[int] = set()
        self.na: set[int] = set()
        self.by_records = len(sep.encode("utf-8")) != 1
        self._skip_header = True
        self._pending: list[list[str]] = []

    def block(self, lines: list[str]) -> None:
        if self.by_records:
            return
        if self._skip_header:
            # The header's names are not values; a quoted header turns to the record path anyway.
            lines = lines[1:]
            self._skip_header = False
        # About 64 KB at a time: arrays of a megabyte cost more in page faults than in the
        # comparisons themselves (0.5 s against 1.4 s on a 157 MB file).
        step = max(1, len(lines) * BYTES_PER_CHECK // max(1, sum(map(len, lines))))
        for at in range(0, len(lines), step):
            if self.by_records:
                return
            self._lines("".join(lines[at : at + step]))

    def _lines(self, text: str) -> None:
        if '"' in text or "\x00" in text:
            self.by_records = True
            return
        if "0" not in text and "NA" not in text:
            return
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        size = len(data)
        # Every byte goes through four comparisons and one nonzero; the rest works on the cells'
        # first bytes.
        newline = (data == ord("\n")) | (data == ord("\r"))
        bounds = np.flatnonzero(newline | (data == ord(self.sep)))
        starts = np.concatenate(([0], bounds + 1))
        starts = starts[starts < size]
        first = data[starts]
        second = data[np.minimum(starts + 1, size - 1)]
        third = data[np.minimum(starts + 2, size - 1)]
        zeros = (first == ord("0")) & (second >= ord("0")) & (second <= ord("9")) & (starts + 1 < size)
        ends = (starts + 2 >= size) | (third == ord(self.sep)) | (third == ord("\n")) | (third == ord("\r"))
        na = (first == ord("N")) & (second == ord("A")) & (starts + 1 < size) & ends
        # A cell opening with whitespace (or a non-ASCII byte, maybe Unicode whitespace) is matched
        # whole; there are few.
        odd = np.flatnonzero((first == 32) | (first == 9) | (first == 11) | (first == 12) | (first >= 128))
        cut = np.append(bounds, size)[np.searchsorted(bounds, starts[odd])]
        for cell, start, end in zip(odd.tolist(), starts[odd].tolist(), cut.tolist(), strict=True):
            if LEADING_ZERO.match(data[start:end].tobytes().decode("utf-8", "replace")):
                zeros[cell] = True
        if not zeros.any() and not na.any():
            return
        line_start = np.flatnonzero((starts == 0) | newline[np.maximum(starts - 1, 0)])
        for marks, found in ((zeros, self.zeros), (na, self.na)):
            cells = np.flatnonzero(marks)
            owner = line_start[np.searchsorted(line_start, cells, side="right") - 1]
            found.update(int(c) for c in np.unique(cells - owner) if c < self.width)

    def record(self, record: list[str]) -> None:
        """A record of the header's width, on the record path."""
        self._pending.append(record)
        if len(self._pending) >= RECORDS_PER_CHECK:
            self.flush()

    def flush(self) -> None:
        records, self._pending = self._pending, []
        if not records:
            return
        text = "\x00" + "\x00".join(itertools.chain.from_iterable(records)) + "\x00"
        for pattern, found in ((_CELL_LEADING_ZERO, self.zeros), (_CELL_NA, self.na)):
            seen = 0
            cell = 0
            for match in pattern.finditer(text):
                cell += text.count("\x00", seen, match.start())
                seen = match.start()
                found.add(cell % self.width)


@dataclass(frozen=True)
class Scan:
    """What the scan learnt: the header as written, and the 0-based positions of the columns
    holding a value with a leading zero and of those holding the value "NA"."""

    header: list[str]
    leading_zero: frozenset[int]
    na: frozenset[int]


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
) -> Scan:
    """The header and the marked columns (``CellMarks``), after checking every record of the file against
    the limits and against the header's field count; raises InputDataError naming the first
    offending lines."""
    previous_limit = csv.field_size_limit()
    csv.field_size_limit(max_cell_length)
    marks: CellMarks | None = None
    early: list[list[str]] = []  # blocks read before the header was known

    def on_block(block: list[str]) -> None:
        if marks is None:
            early.append(block)
        else:
            marks.block(block)

    try:
        with open_text(path, encoding, compression) as handle:
            blocks = _line_blocks(handle, max_line_length, shown, on_block)
            reader = csv.reader(itertools.chain.from_iterable(blocks), delimiter=sep)
            try:
                header = next(reader, None)
                if header is None:
                    raise InputDataError(f"{shown} has no columns (is it empty?)")
                if len(header) > max_columns:
                    raise InputDataError(
                        f"{shown} has {len(header):,} columns, more than max_columns={max_columns:,}; is "
                        f"the delimiter {sep!r} right? Raise max_columns if the table really is this wide"
                    )
                width = len(header)
                marks = CellMarks(sep, width)
                for block in early:
                    marks.block(block)
                ragged: list[tuple[int, int]] = []
                count = 0
                for record in reader:
                    if len(record) != width:
                        if record:
                            count += 1
                            if len(ragged) < RAGGED_IN_MESSAGE:
                                ragged.append((reader.line_num, len(record)))
                    elif marks.by_records:
                        marks.record(record)
                marks.flush()
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
    return Scan(header, frozenset(marks.zeros), frozenset(marks.na))
