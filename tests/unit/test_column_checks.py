"""Columns whose guessed type is doubtful: each kind found with examples, and none on clean tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstages.components.common import column_checks as checks
from mlstages.components.common.errors import ParameterError

ROWS = 40


def _kinds(df: pd.DataFrame, label: str | None = None, **kwargs) -> dict[str, str]:
    return {s.column: s.kind for s in checks.suspicious_columns(df, label, **kwargs)}


def test_clean_public_tables_raise_no_suspicion():
    import palmerpenguins
    from sklearn.datasets import load_diabetes, load_wine

    assert _kinds(palmerpenguins.load_penguins(), "species") == {}
    assert _kinds(load_wine(as_frame=True).frame, "target") == {}
    assert _kinds(load_diabetes(as_frame=True).frame, "target") == {}


def test_numbers_with_thousands_separators_are_named_with_examples():
    df = pd.DataFrame({"mass": [f"{3000 + 50 * i:,}" for i in range(ROWS)], "y": range(ROWS)})
    [suspicion] = checks.suspicious_columns(df, "y")
    assert suspicion.kind == checks.NUMERIC_TEXT
    assert "'3,000'" in suspicion.message and "column_types" in suspicion.message


def test_numbers_mixed_with_junk_are_named():
    values = [str(i * 1.5) for i in range(ROWS - 2)] + ["n/a", "?"]
    kinds = _kinds(pd.DataFrame({"x": values}))
    assert kinds == {"x": checks.MIXED_NUMERIC}
    assert "'n/a'" in checks.suspicious_columns(pd.DataFrame({"x": values}))[0].message


def test_dates_stored_as_text_are_named():
    dates = pd.date_range("2024-01-01", periods=ROWS, freq="7D").strftime("%Y-%m-%d")
    df = pd.DataFrame({"day": list(dates) * 2})
    assert _kinds(df) == {"day": checks.DATE_TEXT}


def test_an_identifier_column_is_named_and_listed_for_exclusion():
    df = pd.DataFrame(
        {
            "customer": [f"C{1000 + i}" for i in range(ROWS)],
            "row": np.arange(ROWS),
            "amount": np.linspace(0, 1e6, ROWS) ** 1.3,  # unique, but a measurement
            "city": ["a", "b"] * (ROWS // 2),
        }
    )
    assert checks.id_columns(df) == ["customer", "row"]
    assert _kinds(df) == {"customer": checks.ID_COLUMN, "row": checks.ID_COLUMN}
    # A small table has no reliable notion of "unique per row".
    assert checks.id_columns(df.head(5)) == []


def test_codes_with_leading_zeros_are_named():
    codes = [f"{i:05d}" for i in range(ROWS // 2)] * 2
    assert _kinds(pd.DataFrame({"zip": codes})) == {"zip": checks.LEADING_ZEROS}


def test_na_as_a_category_is_named():
    regions = ["EU", "APAC", "NA", "LATAM"] * (ROWS // 4)
    assert _kinds(pd.DataFrame({"region": regions})) == {"region": checks.NA_CATEGORY}


def test_labels_that_differ_by_case_or_spaces_are_named():
    y = pd.Series(["yes", "no", "Yes ", "no"] * 10, name="churn")
    suspicion = checks.label_suspicion(y)
    assert suspicion is not None and suspicion.kind == checks.LABEL_VARIANTS
    assert "'yes' vs 'Yes '" in suspicion.message


def test_class_ids_with_one_fractional_value_are_named():
    y = pd.Series([0.0, 1.0, 2.0] * 100 + [1.5], name="grade")
    suspicion = checks.label_suspicion(y)
    assert suspicion is not None and suspicion.kind == checks.FRACTIONAL_CLASS_ID
    assert "1.5" in suspicion.message
    # A real continuous label is not a suspicion.
    assert checks.label_suspicion(pd.Series(np.linspace(0, 10, 301), name="price")) is None


def test_column_types_overrides_the_guess_and_is_checked():
    df = pd.DataFrame({"mass": [f"{3000 + 50 * i:,}" for i in range(ROWS)]})
    assert _kinds(df, column_types={"mass": "numeric"}) == {}
    with pytest.raises(ParameterError, match=r"column_types\['mass'\]='number'"):
        checks.suspicious_columns(df, column_types={"mass": "number"})
    with pytest.raises(ParameterError, match="'weight'"):
        checks.suspicious_columns(df, column_types={"weight": "numeric"})
