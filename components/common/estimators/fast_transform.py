"""The fast transform: a fitted preprocessor's arithmetic applied with numpy.

The fitted ColumnTransformer takes ~10 ms to transform ONE row, nearly all of it scikit-learn's
per-step overhead (input validation, tags, set_output wrapping, joblib dispatch) repeated over a
dozen nested steps; the arithmetic itself takes microseconds. PreprocessorPlan reads the fitted
steps' parameters once and applies the same operations, in the same order, with numpy, so that a
served model answers one row in well under a millisecond. The ColumnTransformer stays the fitted
object of record (fit, inspection, feature names); the plan is a read-only view of it. A block it
cannot compile is applied by the fitted sub-transformer itself."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
)

from mlstages.components.common.errors import InputDataError
from mlstages.components.common.estimators.functions import as_category_strings, as_float, missing_as_nan
from mlstages.components.common.estimators.outliers import OutlierClipper
from mlstages.components.common.estimators.scalers import apply_scaling, scaling_steps
from mlstages.components.common.estimators.text import TfidfColumn

NUMERIC_BLOCK = "numeric"


BOOLEAN_BLOCK = "boolean"


CATEGORICAL_BLOCK = "categorical"


TEXT_BLOCK = "text"


MISSING_BLOCK = "missing"
# A block applied by its own fitted sub-transformer (what the plan cannot compile).
FITTED_BLOCK = "fitted"


# Encoded categories are looked up in a dict row by row up to this many rows, and with a pandas
# hash index above it (which costs ~40 µs to call but is much faster per value).
_DICT_LOOKUP_ROWS = 256


class _NotCompilable(Exception):
    """The transformer is not one preprocessor_from_plan builds, so it has no plan."""


def impute(values: np.ndarray, statistics: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """``values`` (float64, changed in place) with each NaN replaced by its column's statistic,
    as a fitted ``SimpleImputer`` fills them; ``missing`` is ``np.isnan(values)`` when known."""
    if missing is None:
        missing = np.isnan(values)
    if missing.any():
        values[missing] = np.broadcast_to(statistics, values.shape)[missing]
    return values


def float_columns(X: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[bool]]:
    """The columns as one float64 matrix (a new array), converted as ``as_float`` converts them,
    and per column whether it was a numpy number or boolean column (in which a NaN of the matrix
    is exactly a missing value of the column)."""
    values = np.empty((len(X), len(columns)), dtype=np.float64)
    numpy_backed = []
    for j, name in enumerate(columns):
        series = X[name]
        # Series.astype costs ~50 µs even when there is nothing to convert; numpy's cast of a
        # numpy-backed column is the same conversion.
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf":
            values[:, j] = series.to_numpy(dtype=np.float64)
            numpy_backed.append(True)
        else:
            values[:, j] = series.astype("float64").to_numpy()
            numpy_backed.append(False)
    return values, numpy_backed


def _category_strings(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) as ``as_category_strings`` sees them: each present value as ``str(value)``."""
    values = series.to_numpy(dtype=object)
    missing = pd.isna(values)
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        values = np.array(
            [value if absent else str(value) for value, absent in zip(values, missing, strict=True)],
            dtype=object,
        )
    return values, missing


class PreprocessorPlan:
    """A fitted preprocessor's arithmetic, applied with numpy: the same numbers, fast on one row.

    Built by ``compile_preprocessor`` from the fitted steps of a transformer that
    ``preprocessor_from_plan`` made, through their fitted attributes: clipping bounds, imputation
    statistics, scaler parameters, encoder categories (with infrequent ones grouped), the TF-IDF
    columns themselves. Each operation is the one scikit-learn applies, in the same order, so the
    output equals the transformer's, value for value; ``plan_mismatch`` checks that on real rows.
    Unknown categories are encoded as the encoder does (one-hot: all zeros; ordinal: -1), without
    the encoder's "unknown categories" warning.

    input_columns: the raw columns the preprocessor was fitted on.
    blocks: (kind, parameters) per output block, in the transformer's output order; the
        parameters include the block's output ``width``.
    """

    def __init__(
        self, input_columns: tuple[str, ...], blocks: tuple[tuple[str, dict[str, Any]], ...]
    ) -> None:
        self.input_columns = input_columns
        self.blocks = blocks
        self.n_features_out = sum(block["width"] for _, block in blocks)

    def categorical_columns(self) -> list[str]:
        """The columns encoded as categories."""
        return [c for kind, block in self.blocks if kind == CATEGORICAL_BLOCK for c in block["columns"]]

    def transform(self, X: pd.DataFrame, out: np.ndarray | None = None) -> np.ndarray:
        """The preprocessed features of the raw rows ``X`` (a DataFrame with the input columns), as a
        float64 matrix in the preprocessor's output order; written into ``out`` when given (a
        float64 array of shape (rows, n_features_out), e.g. the first columns of a wider one)."""
        missing = [c for c in self.input_columns if c not in X.columns]
        if missing:
            raise InputDataError(
                f"the rows lack column(s) {', '.join(map(repr, missing))} that the preprocessor was fitted on"
            )
        if out is None:
            out = np.empty((len(X), self.n_features_out), dtype=np.float64)
        # Missing-value masks found by the blocks, for the indicator block (always last) to reuse.
        found: dict[str, np.ndarray] = {}
        start = 0
        for kind, block in self.blocks:
            _BLOCK_TRANSFORMS[kind](X, block, out[:, start : start + block["width"]], found)
            start += block["width"]
        return out


def _numeric_block(
    X: pd.DataFrame, block: dict[str, Any], out: np.ndarray, found: dict[str, np.ndarray]
) -> None:
    columns = block["columns"]
    values, numpy_backed = float_columns(X, columns)
    infinite = np.isinf(values)
    if infinite.any():
        row, column = np.argwhere(infinite)[0]
        # scikit-learn's input validation refuses it too; this message names the column.
        raise InputDataError(
            f"column {columns[column]!r} has an infinite value at row {row} (0-based); "
            "send a finite number, or a missing value"
        )
    missing = np.isnan(values)  # clipping keeps NaN where it is
    found.update((name, missing[:, j]) for j, name in enumerate(columns) if numpy_backed[j])
    if block["lower"] is not None:
        values = np.clip(values, block["lower"], block["upper"])
    out[:] = apply_scaling(impute(values, block["statistics"], missing), block["scaling"])


def _boolean_block(
    X: pd.DataFrame, block: dict[str, Any], out: np.ndarray, found: dict[str, np.ndarray]
) -> None:
    values, numpy_backed = float_columns(X, block["columns"])
    missing = np.isnan(values)
    found.update((name, missing[:, j]) for j, name in enumerate(block["columns"]) if numpy_backed[j])
    out[:] = impute(values, block["statistics"], missing)


def _codes(values: np.ndarray, missing: np.ndarray, table: dict[str, int], fill_code: int) -> np.ndarray:
    """Each value's code in ``table`` (-1: unknown); a missing value gets the imputed value's code."""
    if len(values) <= _DICT_LOOKUP_ROWS:
        codes = np.fromiter((table.get(v, -1) for v in values), dtype=np.intp, count=len(values))
    else:
        positions = pd.Index(list(table), dtype=object).get_indexer(values)
        codes = np.where(positions >= 0, np.fromiter(table.values(), dtype=np.intp)[positions], -1)
    codes[missing] = fill_code
    return codes


def _categorical_block(
    X: pd.DataFrame, block: dict[str, Any], out: np.ndarray, found: dict[str, np.ndarray]
) -> None:
    if block["onehot"]:
        out[:] = 0.0
    offset = 0
    for j, (name, table, fill_code, width) in enumerate(
        zip(block["columns"], block["tables"], block["fill_codes"], block["widths"], strict=True)
    ):
        values, missing = _category_strings(X[name])
        found[name] = missing
        codes = _codes(values, missing, table, fill_code)
        if block["onehot"]:
            rows = np.flatnonzero(codes >= 0)
            out[rows, offset + codes[rows]] = 1.0
            offset += width
        else:
            out[:, j] = np.where(codes >= 0, codes, block["unknown_value"])


def _text_block(
    X: pd.DataFrame, block: dict[str, Any], out: np.ndarray, found: dict[str, np.ndarray]
) -> None:
    # TfidfColumn's input handling, without its pandas round trips: missing → "", others str().
    values = X[block["column"]].to_numpy(dtype=object)
    missing = pd.isna(values)
    found[block["column"]] = missing
    texts = ["" if absent else str(value) for value, absent in zip(values, missing, strict=True)]
    out[:] = block["transformer"].vectorizer_.transform(texts).toarray()


def _missing_block(
    X: pd.DataFrame, block: dict[str, Any], out: np.ndarray, found: dict[str, np.ndarray]
) -> None:
    for j, name in enumerate(block["columns"]):
        missing = found.get(name)
        out[:, j] = pd.isna(X[name].to_numpy()) if missing is None else missing


_BLOCK_TRANSFORMS = {
    NUMERIC_BLOCK: _numeric_block,
    BOOLEAN_BLOCK: _boolean_block,
    CATEGORICAL_BLOCK: _categorical_block,
    TEXT_BLOCK: _text_block,
    MISSING_BLOCK: _missing_block,
}


def _steps(pipeline: Any, expected: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The steps of a fitted Pipeline, checked against ``expected`` (name, then a type, a tuple of
    types, or the function of a FunctionTransformer), in order; a step may be absent."""
    if not isinstance(pipeline, Pipeline):
        raise _NotCompilable
    steps = dict(pipeline.steps)
    if list(steps) != [name for name, _ in expected if name in steps]:
        raise _NotCompilable
    for name, kind in expected:
        step = steps.get(name)
        if step is None:
            continue
        if isinstance(kind, (type, tuple)):
            if not isinstance(step, kind):
                raise _NotCompilable
        elif type(step) is not FunctionTransformer or step.func is not kind or step.kw_args or step.validate:
            raise _NotCompilable
    return steps


def _imputer_statistics(imputer: SimpleImputer) -> np.ndarray:
    if imputer.add_indicator or not (
        isinstance(imputer.missing_values, float) and math.isnan(imputer.missing_values)
    ):
        raise _NotCompilable
    statistics = imputer.statistics_
    # A statistic SimpleImputer could not compute (an all-missing column) drops that column.
    if statistics.dtype.kind == "f" and np.isnan(statistics).any():
        raise _NotCompilable
    return statistics


def _category_table(encoder: Any, column: int) -> tuple[dict[str, int], int]:
    """{category: output code} of one encoder column, with infrequent categories grouped last, and
    the column's number of one-hot outputs (one per frequent category, plus one if any is infrequent)."""
    categories = list(encoder.categories_[column])
    infrequent = getattr(encoder, "infrequent_categories_", None)
    grouped = set() if infrequent is None or infrequent[column] is None else set(infrequent[column])
    frequent = [c for c in categories if c not in grouped]
    table = {c: i for i, c in enumerate(frequent)}
    table.update(dict.fromkeys(grouped, len(frequent)))
    if not all(isinstance(c, str) for c in table):
        raise _NotCompilable  # as_category_strings makes every category a string
    return table, len(frequent) + (1 if grouped else 0)


def _compile_block(name: str, transformer: Any, columns: Any) -> tuple[str, dict[str, Any]]:
    if name.startswith("text_") and isinstance(transformer, TfidfColumn) and isinstance(columns, str):
        width = len(transformer.get_feature_names_out())
        return TEXT_BLOCK, {"column": columns, "transformer": transformer, "width": width}
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise _NotCompilable
    columns = tuple(columns)
    if name == "num":
        steps = _steps(
            transformer,
            (
                ("as_float", as_float),
                ("clip", OutlierClipper),
                ("impute", SimpleImputer),
                ("scale", BaseEstimator),
            ),
        )
        clip = steps.get("clip")
        scaling = scaling_steps(steps.get("scale"))
        if scaling is None:  # a scaler whose arithmetic is not known: the block falls back
            raise _NotCompilable
        return NUMERIC_BLOCK, {
            "columns": columns,
            "width": len(columns),
            "lower": None if clip is None else np.asarray(clip.lower_, dtype=np.float64),
            "upper": None if clip is None else np.asarray(clip.upper_, dtype=np.float64),
            "statistics": _imputer_statistics(steps["impute"]).astype(np.float64),
            "scaling": scaling,
        }
    if name == "bool":
        steps = _steps(transformer, (("as_float", as_float), ("impute", SimpleImputer)))
        return BOOLEAN_BLOCK, {
            "columns": columns,
            "width": len(columns),
            "statistics": _imputer_statistics(steps["impute"]).astype(np.float64),
        }
    if name == "cat":
        steps = _steps(
            transformer,
            (
                ("as_str", as_category_strings),
                ("impute", SimpleImputer),
                ("encode", (OneHotEncoder, OrdinalEncoder)),
            ),
        )
        encoder = steps["encode"]
        onehot = isinstance(encoder, OneHotEncoder)
        if onehot and (
            encoder.handle_unknown != "ignore" or encoder.drop is not None or encoder.sparse_output
        ):
            raise _NotCompilable
        if not onehot and encoder.handle_unknown != "use_encoded_value":
            raise _NotCompilable
        if np.dtype(encoder.dtype) != np.float64:
            raise _NotCompilable
        fills = _imputer_statistics(steps["impute"])
        tables, widths = zip(*(_category_table(encoder, j) for j in range(len(columns))), strict=True)
        return CATEGORICAL_BLOCK, {
            "columns": columns,
            "width": sum(widths) if onehot else len(columns),
            "tables": tables,
            "widths": widths,
            "fill_codes": tuple(table.get(str(fill), -1) for table, fill in zip(tables, fills, strict=True)),
            "onehot": onehot,
            "unknown_value": None if onehot else float(encoder.unknown_value),
        }
    if name == "missing":
        steps = _steps(
            transformer,
            (("as_nan", missing_as_nan), ("indicate", MissingIndicator), ("as_float", as_float)),
        )
        indicator = steps["indicate"]
        if indicator.features != "all" or not (
            isinstance(indicator.missing_values, float) and math.isnan(indicator.missing_values)
        ):
            raise _NotCompilable
        return MISSING_BLOCK, {"columns": columns, "width": len(columns)}
    raise _NotCompilable


def _fitted_block(
    X: pd.DataFrame, block: dict[str, Any], out: np.ndarray, found: dict[str, np.ndarray]
) -> None:
    """A block the plan cannot compile: its fitted sub-transformer, called as it is."""
    columns = block["columns"]
    values = block["transformer"].transform(X[columns] if isinstance(columns, str) else X[list(columns)])
    if hasattr(values, "toarray"):
        values = values.toarray()
    out[:] = np.asarray(values, dtype=np.float64).reshape(len(X), block["width"])


_BLOCK_TRANSFORMS[FITTED_BLOCK] = _fitted_block


def _block_or_fallback(name: str, transformer: Any, columns: Any) -> tuple[str, dict[str, Any]]:
    try:
        return _compile_block(name, transformer, columns)
    except _NotCompilable:
        width = len(transformer.get_feature_names_out())
        return FITTED_BLOCK, {"name": name, "transformer": transformer, "columns": columns, "width": width}


def compile_preprocessor(preprocessor: Any) -> PreprocessorPlan | None:
    """The fitted ``preprocessor`` as a PreprocessorPlan; None if it is not a fitted ColumnTransformer
    (such a transformer is used as it is, with its own transform). A block it cannot compile (a step
    it does not know, a scaler without known arithmetic) is applied by its fitted sub-transformer."""
    if not isinstance(preprocessor, ColumnTransformer) or not hasattr(preprocessor, "transformers_"):
        return None
    if not hasattr(preprocessor, "feature_names_in_"):
        return None
    try:
        blocks = tuple(
            _block_or_fallback(name, transformer, columns)
            for name, transformer, columns in preprocessor.transformers_
            if not (isinstance(transformer, str) and transformer == "drop")
        )
    except (AttributeError, TypeError, ValueError):  # a sub-transformer without feature names out
        return None
    plan = PreprocessorPlan(tuple(str(c) for c in preprocessor.feature_names_in_), blocks)
    # The blocks must account for every output column, in the transformer's order of blocks.
    return plan if plan.n_features_out == len(preprocessor.get_feature_names_out()) else None


def _check_frames(plan: PreprocessorPlan, X: pd.DataFrame, max_rows: int) -> list[tuple[str, pd.DataFrame]]:
    """Rows to compare a plan with its transformer on: real rows, and the awkward cases."""
    sample = X if len(X) <= max_rows else X.sample(n=max_rows, random_state=0)
    frames = [("rows of the data", sample)]
    if len(X) == 0:
        return frames
    columns = list(plan.input_columns)
    frames.append(
        ("a row with every value missing", pd.DataFrame({c: [None] for c in columns}, dtype=object))
    )
    categorical = plan.categorical_columns()
    if categorical:
        first = sample.iloc[:1]
        frames.append(
            (
                "a row with unseen categories",
                first.assign(**dict.fromkeys(categorical, "__mlstages_unseen__")),
            )
        )
        known = {
            name: list(table)
            for kind, block in plan.blocks
            if kind == CATEGORICAL_BLOCK
            for name, table in zip(block["columns"], block["tables"], strict=True)
        }
        rows = min(max(len(v) for v in known.values()), max_rows)
        every = sample.iloc[[0] * rows].reset_index(drop=True)
        for name, categories in known.items():
            every[name] = pd.Series([categories[i % len(categories)] for i in range(rows)], dtype=object)
        frames.append(("rows with every known category", every))
    return frames


def plan_mismatch(
    plan: PreprocessorPlan, preprocessor: Any, X: pd.DataFrame, max_rows: int = 1000
) -> str | None:
    """Where ``plan`` and ``preprocessor.transform`` disagree on ``X`` (up to ``max_rows`` of its rows)
    or on awkward rows (every value missing, unseen categories, every known category); None when
    they give exactly the same numbers (or raise alike)."""
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    for label, frame in _check_frames(plan, X, max_rows):
        outcomes = []
        for transform in (plan.transform, preprocessor.transform):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # unknown categories, on purpose
                    outcomes.append(np.asarray(transform(frame), dtype=np.float64))
            except (ValueError, TypeError) as exc:
                outcomes.append(exc)
        got, expected = outcomes
        if isinstance(got, Exception) or isinstance(expected, Exception):
            if isinstance(got, Exception) and isinstance(expected, Exception):
                continue
            return f"{label}: the plan {'raised ' + repr(got) if isinstance(got, Exception) else 'did not raise'}, the transformer {'raised ' + repr(expected) if isinstance(expected, Exception) else 'did not raise'}"
        if got.shape != expected.shape:
            return f"{label}: the plan gives shape {got.shape}, the transformer {expected.shape}"
        different = np.argwhere(~((got == expected) | (np.isnan(got) & np.isnan(expected))))
        if len(different):
            row, column = different[0]
            return (
                f"{label}: feature {names[column]!r} of row {row}: the plan gives {got[row, column]!r}, "
                f"the transformer {expected[row, column]!r}"
            )
    return None
