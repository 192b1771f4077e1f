"""The functions behind the FunctionTransformers of the exported model (stable import paths:
saved models pickle them by name)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def as_float(X: Any) -> pd.DataFrame:
    """Numbers and booleans (nullable ones included) as float64, missing values as NaN."""
    return pd.DataFrame(X).astype("float64")


def missing_as_nan(X: Any) -> pd.DataFrame:
    """Object columns whose missing values (None, pd.NA, NaN, NaT) are all NaN.

    scikit-learn's imputers and MissingIndicator only recognise NaN, but Parquet and nullable
    dtypes give None and pd.NA.
    """
    frame = pd.DataFrame(X).astype(object)
    return frame.where(frame.notna(), np.nan)


def as_category_strings(X: Any) -> pd.DataFrame:
    """Category values as strings (encoders need one type per column), missing values as NaN."""
    frame = pd.DataFrame(X).astype(object)
    present = frame.notna()
    return frame.map(str).where(present, np.nan)


def output_feature_name(transformer_name: str, feature_name: str) -> str:
    """``<path>__<feature>``, as scikit-learn names it, minus MissingIndicator's long prefix."""
    if transformer_name == "missing":
        feature_name = feature_name.removeprefix("missingindicator_")
    return f"{transformer_name}__{feature_name}"
