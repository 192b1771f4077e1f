"""64-bit hashes of values and rows that are equal exactly when pandas calls the values equal.

Streamed statistics count distinct values and duplicate rows from hashes, a batch at a time, so a
hash must not depend on the batch: not on a categorical's category list, nor on which batch saw
a value first. And it must make equal what ``Series.nunique`` and ``DataFrame.duplicated`` make
equal: 0.0 and -0.0, every NaN, None and NaN in an object column (both missing), 1 and 1.0 and True
in an object column (Python equality), a list and another list with the same repr. Numbers and
timestamps are hashed with a bijection of their 64 bits (``sketches.mix64``), so distinct ones never
collide; strings with pandas' SipHash (a fixed key, so the same in every process), where two of n
distinct values collide with probability about n^2 / 2^65.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlstages.components.common.sketches import mix64

_U64 = np.uint64
# The hash of a missing cell in a row: any fixed value; a real value hashing to it is as unlikely
# as any other collision.
MISSING_HASH = _U64(0x6D697373696E6721)
_CANONICAL_NAN = np.float64("nan").view(_U64)


def number_bits(values: np.ndarray) -> np.ndarray:
    """The 64 bits of float values as uint64, with the values pandas calls equal (0.0 and -0.0,
    every NaN) given equal bits."""
    floats = values.astype(np.float64) + 0.0  # -0.0 becomes 0.0
    bits = floats.view(_U64).copy()
    bits[np.isnan(floats)] = _CANONICAL_NAN
    return bits


def numeric_hashes(values: np.ndarray) -> np.ndarray:
    """Hashes of numbers (a numpy array of ints, unsigned ints, floats or bools), equal for equal
    values whatever the dtype: an int64 column holds floats in a batch that has missing values, and
    a bool column objects, so 5 and 5.0, True and an object True must hash alike."""
    if values.dtype.kind == "b":
        return _BOOL_HASHES[values.astype(np.intp)]
    if values.dtype.kind in "iu":
        # Integers a float holds exactly hash as that float; larger ones by their own bits.
        wide = values.astype(np.int64) if values.dtype.kind == "i" else values.astype(_U64)
        as_float = wide.astype(np.float64)
        exact = np.abs(as_float) <= 2.0**53
        if exact.all():
            return mix64(number_bits(as_float))
        return mix64(np.where(exact, number_bits(as_float), wide.view(_U64)))
    return mix64(number_bits(values))


def string_hashes(strings: np.ndarray) -> np.ndarray:
    """SipHash of str values (an object array of str)."""
    if not len(strings):
        return np.empty(0, dtype=_U64)
    return pd.util.hash_array(strings.astype(object, copy=False), categorize=False)


def _canonical(value: object) -> str:
    """A text for an object-column value such that equal values (by Python's ==, as pandas
    compares them) get the same text: a string is itself (so it hashes as in a column of strings
    only), a number its value, anything else its type and repr, those two behind a NUL no real text
    starts with."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        number = float(value)
        if number.is_integer() and abs(number) < 2**63:
            return f"\x00n{int(value)}"
        return f"\x00n{number!r}"
    return f"\x00o{type(value).__name__}:{value!r}"


def value_hashes(present: pd.Series) -> np.ndarray:
    """Hashes of a column's non-missing values, for counting distinct values."""
    dtype = present.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        # Through the categories, so the hash of a value does not depend on the category list.
        categories = value_hashes(pd.Series(dtype.categories))
        return categories[present.cat.codes.to_numpy()]
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return mix64(present.astype("int64").to_numpy().view(_U64))
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        native = getattr(dtype, "numpy_dtype", dtype)  # a nullable Int64's int64
        return numeric_hashes(present.to_numpy(dtype=native))
    return object_hashes(present.to_numpy(dtype=object))


# A bool column with missing values is an object column of True, False and None: its bools hash
# the same in either form, by _canonical's text (True == 1 in Python, and so in pandas).
_BOOL_HASHES = pd.util.hash_array(np.array([_canonical(0), _canonical(1)], dtype=object), categorize=False)


def object_hashes(values: np.ndarray) -> np.ndarray:
    """Hashes of the non-missing values of an object column."""
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return string_hashes(values)
    return string_hashes(np.array([_canonical(v) for v in values], dtype=object))


def column_hashes(series: pd.Series) -> np.ndarray:
    """One hash per row of a column, missing values included (all the same)."""
    missing = series.isna().to_numpy()
    hashes = np.full(len(series), MISSING_HASH, dtype=_U64)
    if missing.all():
        return hashes
    present = series[~missing] if missing.any() else series
    hashes[~missing] = value_hashes(present)
    return hashes


def row_hashes(df: pd.DataFrame) -> np.ndarray:
    """One hash per row, from every column's value (and position in the row)."""
    combined = np.zeros(len(df), dtype=_U64)
    for position in range(df.shape[1]):
        column = column_hashes(df.iloc[:, position])
        # boost's hash_combine, then a full mix, so (a, b) and (b, a) differ.
        mixed = column + _U64(0x9E3779B97F4A7C15) + (combined << _U64(6)) + (combined >> _U64(2))
        combined = mix64(combined ^ mixed)
    return combined
