"""Feature engineering: derived features and feature selection, fitted on the train split only.

The result is one fitted scikit-learn Pipeline that takes RAW rows (the preprocessor's input
columns) and yields the selected features:

    Pipeline([
        ("union", CandidateFeatures(
            FrozenEstimator(<fitted preprocessor>),                     # never refitted
            DerivedFeatures(derived, scaling),                          # fitted on train
        )),
        ("select", SelectedColumns(<kept names>)),
    ]).set_output(transform="pandas")

``CandidateFeatures`` computes what ``FeatureUnion([preprocessed, derived])`` would, as one array:
the preprocessor through its compiled plan (``preprocess.compile_preprocessor``, checked against
the preprocessor's own transform when fitted), so that one row takes well under a millisecond
instead of the ~15 ms that scikit-learn's per-step overhead costs a FeatureUnion of
ColumnTransformers. ``SelectedColumns`` keeps the selected columns by position. The output is a
DataFrame with the raw rows' index; the train stage's exported model sets the pipeline to arrays.

Derived features are computed from raw values (a ratio of raw values, not of scaled ones), then
imputed with their train median and scaled the way the preprocessor scales numeric columns.

Selection scores every candidate feature on the train split, keeps those that pass the method's
rule, and at most ``max_features`` of them by score. The ``select`` step then keeps exactly those
columns, so the report and the pipeline cannot disagree.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.feature_selection import chi2, mutual_info_classif, mutual_info_regression
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LassoCV, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.validation import check_is_fitted

from mlstages.components.common.datasets import BOOLEAN, NUMERIC, column_types, logical_type
from mlstages.components.common.errors import InputDataError, ParameterError, require_choice
from mlstages.components.common.estimators.fast_transform import (
    FITTED_BLOCK,
    PreprocessorPlan,
    compile_preprocessor,
    impute,
    plan_mismatch,
)
from mlstages.components.common.estimators.scalers import (
    SCALINGS,
    make_scaler,
    scale,
    scaling_name,
    scaling_steps,
)
from mlstages.components.common.labels import CLASSIFICATION, REGRESSION, check_label, resolve_task

DERIVED_KINDS = ("ratio", "log", "date_parts", "bin", "interaction")
DATE_PARTS = ("year", "month", "day", "dayofweek", "hour")
SELECTIONS = ("none", "variance", "mutual_info", "chi2", "l1")
TASKS = (CLASSIFICATION, REGRESSION)
DEFAULT_BINS = 5
# SelectFromModel's default threshold for L1-penalised models: a coefficient this small is zero.
L1_ZERO = 1e-5
L1_C = 1.0
L1_MAX_ITER = 5000

# The keys each derived kind accepts besides name, kind and columns.
_OPTIONAL_KEYS = {
    "ratio": (),
    "log": (),
    "date_parts": ("parts",),
    "bin": ("n_bins",),
    "interaction": ("pairwise",),
}
_COLUMN_COUNTS = {
    "ratio": (2, 2),
    "log": (1, 1),
    "date_parts": (1, 1),
    "bin": (1, 1),
    "interaction": (2, None),
}
_SCORE_NAMES = {
    "none": "variance",
    "variance": "variance",
    "mutual_info": "mutual information",
    "chi2": "chi-squared",
    "l1": "|L1 coefficient|",
}


# --- the derived-feature spec ------------------------------------------------------------------


def _entry_label(index: int, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"derived_features[{index}]" + (f" ({name!r})" if isinstance(name, str) and name else "")


def validate_derived(derived: Any) -> tuple[dict[str, Any], ...]:
    """Check the derived-feature spec and return it normalised (defaults filled in).

    Each entry is a JSON-able dict: ``{"name": ..., "kind": ..., "columns": [...]}`` plus, per
    kind, ``parts`` (date_parts), ``n_bins`` (bin) or ``pairwise`` (interaction). Every error
    names the offending entry by index and name. Whole-number floats are accepted for ``n_bins``,
    because KFP passes the numbers inside list parameters as floats.
    """
    if derived is None:
        return ()
    if isinstance(derived, (str, dict)) or not isinstance(derived, (list, tuple)):
        raise ParameterError(
            f"parameter derived_features must be a list of feature specs (dicts), got {type(derived).__name__}"
        )
    normalised = []
    for index, entry in enumerate(derived):
        label = _entry_label(index, entry)
        if not isinstance(entry, dict):
            raise ParameterError(
                f"{label} must be a dict such as "
                '{"name": "bill_ratio", "kind": "ratio", "columns": ["a", "b"]}, '
                f"got {entry!r}"
            )
        for key in ("name", "kind", "columns"):
            if key not in entry:
                raise ParameterError(f"{label} has no {key!r} key")
        name, kind, columns = entry["name"], entry["kind"], entry["columns"]
        if not isinstance(name, str) or not name.strip():
            raise ParameterError(f"{label}: 'name' must be a non-empty string, got {name!r}")
        if kind not in DERIVED_KINDS:
            raise ParameterError(
                f"{label}: unknown kind {kind!r}; kinds are: {', '.join(map(repr, DERIVED_KINDS))}"
            )
        unknown_keys = set(entry) - {"name", "kind", "columns", *_OPTIONAL_KEYS[kind]}
        if unknown_keys:
            allowed = ", ".join(map(repr, ("name", "kind", "columns", *_OPTIONAL_KEYS[kind])))
            raise ParameterError(
                f"{label}: unknown key(s) {', '.join(map(repr, sorted(unknown_keys)))} for kind "
                f"{kind!r}; it takes: {allowed}"
            )
        if isinstance(columns, str) or not isinstance(columns, (list, tuple)):
            raise ParameterError(f"{label}: 'columns' must be a list of column names, got {columns!r}")
        if not all(isinstance(c, str) and c for c in columns):
            raise ParameterError(f"{label}: 'columns' must hold column names (strings), got {columns!r}")
        low, high = _COLUMN_COUNTS[kind]
        if len(columns) < low or (high is not None and len(columns) > high):
            wanted = f"exactly {low}" if low == high else f"at least {low}"
            raise ParameterError(
                f"{label}: kind {kind!r} takes {wanted} column(s), got {len(columns)}: {list(columns)}"
            )
        if len(set(columns)) != len(columns):
            raise ParameterError(f"{label}: 'columns' lists a column more than once: {list(columns)}")
        spec: dict[str, Any] = {"name": name, "kind": kind, "columns": list(columns)}
        if kind == "date_parts":
            parts = entry.get("parts", list(DATE_PARTS))
            if isinstance(parts, str) or not isinstance(parts, (list, tuple)) or not parts:
                raise ParameterError(
                    f"{label}: 'parts' must be a non-empty list drawn from {list(DATE_PARTS)}"
                )
            bad = [p for p in parts if p not in DATE_PARTS]
            if bad:
                raise ParameterError(
                    f"{label}: unknown date part(s) {bad!r}; parts are: {', '.join(DATE_PARTS)}"
                )
            spec["parts"] = list(dict.fromkeys(parts))
        elif kind == "bin":
            n_bins = entry.get("n_bins", DEFAULT_BINS)
            if isinstance(n_bins, float) and n_bins.is_integer():
                n_bins = int(n_bins)
            if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
                raise ParameterError(f"{label}: 'n_bins' must be an integer of at least 2, got {n_bins!r}")
            spec["n_bins"] = n_bins
        elif kind == "interaction":
            pairwise = entry.get("pairwise", False)
            if not isinstance(pairwise, bool):
                raise ParameterError(f"{label}: 'pairwise' must be true or false, got {pairwise!r}")
            if pairwise and len(columns) < 2:
                raise ParameterError(f"{label}: 'pairwise' needs at least 2 columns")
            spec["pairwise"] = pairwise
        normalised.append(spec)
    names = [n for spec in normalised for n in derived_output_names(spec)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ParameterError(
            f"parameter derived_features gives more than one feature the name(s) "
            f"{', '.join(map(repr, repeated))}; give each entry its own name"
        )
    return tuple(normalised)


def derived_output_names(spec: dict[str, Any]) -> list[str]:
    """The feature names one (normalised) entry produces."""
    name = spec["name"]
    if spec["kind"] == "date_parts":
        return [f"{name}_{part}" for part in spec["parts"]]
    if spec["kind"] == "interaction" and spec["pairwise"]:
        return [f"{name}_{a}_x_{b}" for a, b in itertools.combinations(spec["columns"], 2)]
    return [name]


def check_derived_columns(
    X: pd.DataFrame,
    specs: tuple[dict[str, Any], ...],
    *,
    all_columns: list[str] | None = None,
    label_column: str | None = None,
) -> None:
    """Raise ParameterError when an entry names a column ``X`` lacks, or one of the wrong type.

    ``all_columns`` (the whole train split's) and ``label_column`` only make the message say why
    a column is not available: it is the label, or it is not a transformer input (drop_columns).
    """
    for index, spec in enumerate(specs):
        label = _entry_label(index, spec)
        for column in spec["columns"]:
            if column not in X.columns:
                if column == label_column:
                    why = "it is the label column, which a feature cannot be derived from"
                elif all_columns is not None and column in all_columns:
                    why = "it is not an input of the preprocessor (it was excluded with drop_columns)"
                else:
                    why = f"the data has no such column; the columns are: {', '.join(map(str, X.columns))}"
                raise ParameterError(f"{label}: column {column!r} is not available: {why}")
            kind = logical_type(X[column])
            if spec["kind"] == "date_parts":
                if kind in (NUMERIC, BOOLEAN):
                    raise ParameterError(
                        f"{label}: date_parts needs a datetime column or dates as text, but column "
                        f"{column!r} is {kind}"
                    )
            elif kind != NUMERIC:
                raise ParameterError(
                    f"{label}: kind {spec['kind']!r} needs numeric columns, but column {column!r} is {kind}"
                )


def _numbers(X: pd.DataFrame, column: str) -> np.ndarray:
    values = X[column]
    if values.dtype == np.float64:  # to_numeric and astype cost ~100 µs even with nothing to convert
        return values.to_numpy()
    return pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()


def _dates(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    # Each string parsed on its own (format="mixed"); offsets are normalised to UTC.
    return pd.to_datetime(values, errors="coerce", format="mixed", utc=True)


class DerivedFeatures(TransformerMixin, BaseEstimator):
    """Derived features computed from raw columns, imputed with their train median, then scaled.

    derived: the spec, as validated by ``validate_derived`` (dicts with name, kind, columns...).
    scaling: standard, minmax, robust or none, as the preprocessor scales numeric columns.

    Fitted state: the ``log`` shift (train minimum), the ``bin`` edges (train quantiles), the
    imputer's medians and the scaler, all learned from the data passed to ``fit``.
    Values outside what was seen in training are handled, never fatal: a zero denominator or an
    unparseable date gives a missing value (then imputed), a value below the train minimum of a
    ``log`` feature maps to log1p(0) = 0, values beyond the outer bin edges fall in the end bins.
    """

    def __init__(self, derived: tuple[dict[str, Any], ...] = (), scaling: str = "standard") -> None:
        self.derived = derived
        self.scaling = scaling

    def fit(self, X: pd.DataFrame, y: Any = None) -> DerivedFeatures:
        if not isinstance(X, pd.DataFrame):
            raise InputDataError(
                "DerivedFeatures needs a pandas DataFrame: features refer to columns by name"
            )
        require_choice("scaling", self.scaling, SCALINGS)
        specs = validate_derived(self.derived)
        check_derived_columns(X, specs)
        for index, spec in enumerate(specs):
            if spec["kind"] == "date_parts":
                _check_dates_parse(X[spec["columns"][0]], _entry_label(index, spec))
        self.specs_ = specs
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        self.log_shifts_: dict[str, float] = {}
        self.bin_edges_: dict[str, np.ndarray] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: nanmin / quantile of nothing
            for spec in specs:
                values = _numbers(X, spec["columns"][0]) if spec["kind"] in ("log", "bin") else None
                if spec["kind"] == "log":
                    self.log_shifts_[spec["name"]] = (
                        float(np.nanmin(values)) if np.isfinite(values).any() else 0.0
                    )
                elif spec["kind"] == "bin":
                    seen = values[np.isfinite(values)]
                    quantiles = np.linspace(0, 1, spec["n_bins"] + 1)
                    edges = np.unique(np.quantile(seen, quantiles)) if len(seen) else np.array([])
                    # Only the inner edges decide a bin: outer values fall in the first or last bin.
                    self.bin_edges_[spec["name"]] = edges[1:-1]
        raw = self._raw(X)
        self.imputer_ = None
        self.scaler_ = None
        if raw.shape[1]:
            # keep_empty_features: a feature with no value in train stays (as 0) rather than vanish.
            self.imputer_ = SimpleImputer(strategy="median", keep_empty_features=True).fit(raw)
            self.scaler_ = make_scaler(self.scaling)
            if self.scaler_ is not None:
                self.scaler_.fit(self.imputer_.transform(raw))
        self.scaling_steps_ = scaling_steps(self.scaler_)
        return self

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        columns: list[np.ndarray] = []
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for spec in self.specs_:
                kind, names = spec["kind"], spec["columns"]
                if kind == "ratio":
                    numerator, denominator = _numbers(X, names[0]), _numbers(X, names[1])
                    ratio = np.where(denominator == 0, np.nan, numerator / denominator)
                    columns.append(np.where(np.isfinite(ratio), ratio, np.nan))
                elif kind == "log":
                    shifted = _numbers(X, names[0]) - self.log_shifts_[spec["name"]]
                    columns.append(np.log1p(np.clip(shifted, 0, None)))
                elif kind == "bin":
                    values = _numbers(X, names[0])
                    index = np.searchsorted(self.bin_edges_[spec["name"]], values, side="right").astype(float)
                    columns.append(np.where(np.isnan(values), np.nan, index))
                elif kind == "interaction":
                    if spec["pairwise"]:
                        for a, b in itertools.combinations(names, 2):
                            columns.append(_numbers(X, a) * _numbers(X, b))
                    else:
                        product = np.ones(len(X))
                        for name in names:
                            product = product * _numbers(X, name)
                        columns.append(product)
                else:  # date_parts
                    dates = _dates(X[names[0]])
                    for part in spec["parts"]:
                        columns.append(getattr(dates.dt, part).astype("float64").to_numpy())
        if not columns:
            return np.empty((len(X), 0))
        raw = np.column_stack(columns).astype("float64")
        return np.where(np.isfinite(raw), raw, np.nan)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        # A plain attribute check: check_is_fitted reads the estimator's tags, which costs more
        # than computing a derived feature of one row.
        if not hasattr(self, "specs_"):
            raise NotFittedError(
                "This DerivedFeatures instance is not fitted yet. Call 'fit' with appropriate "
                "arguments before using this estimator."
            )
        if not isinstance(X, pd.DataFrame):
            raise InputDataError(
                "DerivedFeatures needs a pandas DataFrame: features refer to columns by name"
            )
        needed = sorted({c for spec in self.specs_ for c in spec["columns"]} - set(X.columns))
        if needed:
            raise InputDataError(
                f"the rows lack column(s) {', '.join(map(repr, needed))} that derived features are computed from"
            )
        raw = self._raw(X)
        if self.imputer_ is None:
            return raw
        # The fitted imputer's and scaler's own arithmetic, without their per-call validation.
        values = impute(raw, self.imputer_.statistics_)
        return scale(values, self.scaler_, self.scaling_steps_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        specs = getattr(self, "specs_", None) or validate_derived(self.derived)
        return np.asarray([n for spec in specs for n in derived_output_names(spec)], dtype=object)


class CandidateFeatures(TransformerMixin, BaseEstimator):
    """Every candidate feature of raw rows: the frozen preprocessor's output, then the derived ones.

    What ``FeatureUnion([("preprocessed", FrozenEstimator(preprocessor)), ("derived", derived)])``
    computes, without its per-call overhead (~10 ms for one row, nearly all of it scikit-learn's
    validation and dispatch around microseconds of arithmetic). The preprocessor is applied through
    its compiled plan (``preprocess.compile_preprocessor``), which ``fit`` checks against the
    preprocessor's own transform on the training rows; a preprocessor without a plan (one that
    preprocess did not make) or whose plan disagrees is applied with its own transform.

    preprocessor: preprocess' fitted transformer, in FrozenEstimator: used as it is, never refitted.
    derived: the DerivedFeatures to fit; ``fit`` fits a copy, ``derived_``.

    ``transform`` returns a float64 array, or a DataFrame (with the input's index) after
    ``set_output(transform="pandas")``.
    """

    def __init__(self, preprocessor: Any = None, derived: Any = None) -> None:
        self.preprocessor = preprocessor
        self.derived = derived

    def fit(self, X: pd.DataFrame, y: Any = None) -> CandidateFeatures:
        if not isinstance(X, pd.DataFrame):
            raise InputDataError("CandidateFeatures needs a pandas DataFrame of raw rows")
        if not isinstance(self.preprocessor, FrozenEstimator):
            raise InputDataError("CandidateFeatures needs the fitted preprocessor wrapped in FrozenEstimator")
        fitted = self.preprocessor.estimator
        self.derived_ = clone(self.derived if self.derived is not None else DerivedFeatures()).fit(X)
        self.plan_, self.plan_note_ = _checked_plan(fitted, X)
        preprocessed = [str(n) for n in fitted.get_feature_names_out()]
        derived = [str(n) for n in self.derived_.get_feature_names_out()]
        self.n_preprocessed_ = len(preprocessed)
        self.feature_names_out_ = np.asarray(preprocessed + derived, dtype=object)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        _check_fitted(self, "feature_names_out_")
        if not isinstance(X, pd.DataFrame):
            raise InputDataError(
                "the feature pipeline needs a pandas DataFrame of raw rows (columns by name)"
            )
        # One array for every candidate, filled block by block: nothing to concatenate afterwards.
        values = np.empty((len(X), len(self.feature_names_out_)), dtype=np.float64)
        preprocessed = values[:, : self.n_preprocessed_]
        if self.plan_ is not None:
            self.plan_.transform(X, out=preprocessed)
        else:
            output = self.preprocessor.transform(X)
            preprocessed[:] = (
                output.toarray() if hasattr(output, "toarray") else np.asarray(output, dtype=np.float64)
            )
        if self.n_preprocessed_ < values.shape[1]:
            values[:, self.n_preprocessed_ :] = self.derived_.transform(X)
        return values

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        _check_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()


def _check_fitted(estimator: Any, attribute: str) -> None:
    # A plain attribute check: check_is_fitted reads the estimator's tags, which costs more than
    # transforming one row.
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with appropriate "
            "arguments before using this estimator."
        )


def _checked_plan(preprocessor: Any, X: pd.DataFrame) -> tuple[PreprocessorPlan | None, str]:
    """The preprocessor's compiled plan, if it has one that agrees with it on ``X``; and a note."""
    plan = compile_preprocessor(preprocessor)
    if plan is None:
        return None, (
            "the preprocessor was not made by the preprocess stage, so the feature pipeline applies it "
            "with its own transform (correct, but slower on single rows)"
        )
    fallback = [block["name"] for kind, block in plan.blocks if kind == FITTED_BLOCK]
    note = (
        f"block(s) {', '.join(map(repr, fallback))} of the preprocessor were not made by the preprocess "
        "stage, so the feature pipeline applies them with their own transform (correct, but slower on "
        "single rows)"
        if fallback
        else ""
    )
    mismatch = plan_mismatch(plan, preprocessor, X)
    if mismatch is not None:
        message = (
            "the preprocessor's compiled plan disagrees with its transform, so the feature pipeline "
            f"applies the transform itself (correct, but slower on single rows): {mismatch}"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return None, message
    return plan, note


class SelectedColumns(TransformerMixin, BaseEstimator):
    """Keeps the named columns of its input, found by position once at fit.

    columns: the names to keep, in output order. ``fit`` (on a DataFrame) finds their positions;
    ``transform`` takes those positions from an array of the same width, or from a DataFrame with
    the same columns (other DataFrames: by name). Returns a float64 array, or a DataFrame after
    ``set_output(transform="pandas")``.
    """

    def __init__(self, columns: Any = ()) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> SelectedColumns:
        if not isinstance(X, pd.DataFrame):
            raise InputDataError("SelectedColumns is fitted on a DataFrame: it finds the columns by name")
        wanted = [str(c) for c in self.columns]
        positions = X.columns.get_indexer(wanted)
        if (positions < 0).any():
            absent = [c for c, p in zip(wanted, positions, strict=True) if p < 0]
            raise InputDataError(
                f"the candidate features lack the selected column(s) {', '.join(map(repr, absent))}"
            )
        self.positions_ = positions
        self.keeps_all_ = bool(len(positions) == X.shape[1] and (positions == np.arange(X.shape[1])).all())
        self.feature_names_out_ = np.asarray(wanted, dtype=object)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        _check_fitted(self, "positions_")
        if isinstance(X, pd.DataFrame):
            if X.shape[1] != self.n_features_in_ or not (X.columns == self.feature_names_in_).all():
                absent = [c for c in self.feature_names_out_ if c not in X.columns]
                if absent:
                    raise InputDataError(
                        f"the features lack the selected column(s) {', '.join(map(repr, absent))}"
                    )
                return X[list(self.feature_names_out_)].to_numpy()
            values = X.to_numpy()
        else:
            values = np.asarray(X)
            if values.ndim != 2 or values.shape[1] != self.n_features_in_:
                raise InputDataError(
                    f"SelectedColumns expects {self.n_features_in_} candidate features, got shape {values.shape}"
                )
        return values if self.keeps_all_ else values[:, self.positions_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        _check_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()


def _check_dates_parse(values: pd.Series, label: str) -> None:
    parsed = _dates(values)
    bad = (parsed.isna() & values.notna()).to_numpy()
    if bad.any():
        position = int(bad.nonzero()[0][0])
        raise InputDataError(
            f"{label}: column {values.name!r} has values that are not dates, e.g. "
            f"{values.iloc[position]!r} at row {position} (0-based) of the train split"
        )


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureConfig:
    """What to derive and how to select.

    label_column: the label in the train split (never a feature).
    task: classification or regression (preprocess' ``task`` output).
    derived: derived-feature spec entries (JSON-able dicts), e.g.
        ``{"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]}``.
        Kinds: ratio (2 numeric columns; a zero denominator gives a missing value, then imputed),
        log (1 numeric column: log1p of the value minus the train minimum), date_parts (1 datetime
        or date-text column → ``parts`` of year, month, day, dayofweek, hour; all by default),
        bin (1 numeric column → index of its quantile bin, ``n_bins`` default 5), interaction
        (2+ numeric columns → their product, or with ``"pairwise": true`` every pair's product).
    selection: none, variance (keep variance > ``variance_threshold``), mutual_info (keep
        mutual information with the label > 0), chi2 (classification only: keep chi-squared > 0,
        scored on min-max scaled copies because chi-squared needs non-negative values), or l1
        (keep non-zero coefficients of an L1 logistic regression with C=1, or of a cross-validated
        Lasso on the standardised label for regression).
    max_features: at most this many passing features are kept, best scores first; 0 keeps all
        that pass.
    variance_threshold: the threshold of the variance method.
    seed: seeds mutual information's nearest-neighbour noise and the L1 models.
    """

    label_column: str
    task: str
    derived: tuple[dict[str, Any], ...] = ()
    selection: str = "none"
    max_features: int = 0
    variance_threshold: float = 0.0
    seed: int = 42

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str) or not self.label_column.strip():
            raise ParameterError("parameter label_column is empty: name the column to predict")
        require_choice("task", self.task, TASKS)
        require_choice("selection", self.selection, SELECTIONS)
        if self.selection == "chi2" and self.task == REGRESSION:
            raise ParameterError(
                "selection='chi2' scores features against classes and needs task='classification'; "
                "for regression use 'mutual_info', 'l1' or 'variance'"
            )
        if (
            isinstance(self.max_features, bool)
            or not isinstance(self.max_features, int)
            or self.max_features < 0
        ):
            raise ParameterError(
                f"parameter max_features={self.max_features!r} must be an integer >= 0 (0 keeps all that pass)"
            )
        if self.selection == "none" and self.max_features:
            raise ParameterError(
                f"parameter max_features={self.max_features} only applies with a selection method, "
                "but selection is 'none'; choose a selection (e.g. 'mutual_info') or set max_features=0"
            )
        threshold = self.variance_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
            raise ParameterError(f"parameter variance_threshold={threshold!r} must be a number >= 0")
        if not math.isfinite(threshold):
            raise ParameterError(f"parameter variance_threshold={threshold!r} must be finite")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ParameterError(f"parameter seed={self.seed!r} must be an integer in [0, 2**32)")
        object.__setattr__(self, "derived", validate_derived(self.derived))


# --- selection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    kept: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]


def _variances(values: np.ndarray) -> np.ndarray:
    variances = np.nanvar(values, axis=0)
    # As VarianceThreshold does: a constant column has variance 0, not a rounding error above it.
    variances[np.ptp(values, axis=0) == 0] = 0.0
    return variances


def feature_scores(Z: pd.DataFrame, y: pd.Series, config: FeatureConfig) -> tuple[np.ndarray, list[str]]:
    """Each candidate's score for ``config.selection`` (higher is better), and notes."""
    values = Z.to_numpy(dtype="float64")
    notes: list[str] = []
    if config.selection in ("none", "variance"):
        return _variances(values), notes
    if config.selection == "mutual_info":
        score = mutual_info_classif if config.task == CLASSIFICATION else mutual_info_regression
        return score(values, y.to_numpy(), random_state=config.seed), notes
    if config.selection == "chi2":
        scaled = MinMaxScaler().fit_transform(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a constant column scores 0/0
            statistics, _ = chi2(scaled, y.to_numpy())
        notes.append(
            "chi-squared was computed on min-max scaled copies of the features (it needs values >= 0)."
        )
        return np.nan_to_num(statistics, nan=0.0), notes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if config.task == CLASSIFICATION:
            model = LogisticRegression(
                l1_ratio=1.0, solver="saga", C=L1_C, max_iter=L1_MAX_ITER, random_state=config.seed
            ).fit(values, y.to_numpy())
            scores = np.abs(model.coef_).sum(axis=0)
        else:
            target = y.to_numpy(dtype="float64")
            spread = target.std() or 1.0
            folds = max(2, min(5, len(target) // 2))
            model = LassoCV(cv=folds, random_state=config.seed, max_iter=L1_MAX_ITER).fit(
                values, (target - target.mean()) / spread
            )
            scores = np.abs(model.coef_)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append(
            f"the L1 model did not fully converge in {L1_MAX_ITER} iterations; coefficients are approximate."
        )
    return scores, notes


def select_features(
    Z: pd.DataFrame, y: pd.Series, config: FeatureConfig, sources: dict[str, str]
) -> Selection:
    """Score every candidate column of ``Z`` on the train split, decide which to keep, say why.

    ``sources`` maps each feature to where it came from ("preprocessed" or "derived").
    """
    scores, notes = feature_scores(Z, y, config)
    names = [str(c) for c in Z.columns]
    score_name = _SCORE_NAMES[config.selection]
    method = config.selection
    if method == "none":
        passes = np.ones(len(names), dtype=bool)
    elif method == "variance":
        passes = scores > config.variance_threshold
    elif method == "l1":
        passes = scores > L1_ZERO
    else:
        passes = scores > 0
    # Ranks by score, best first; ties keep column order, so the ranking is deterministic.
    order = sorted(range(len(names)), key=lambda i: (-scores[i], i))
    rank = {index: position + 1 for position, index in enumerate(order)}
    cap = config.max_features
    rows = []
    kept = []
    for i in order:
        r = rank[i]
        if not passes[i]:
            status, reason = "dropped", _fail_reason(config, scores[i])
        elif cap and r > cap:
            status, reason = "dropped", f"rank {r} > max_features {cap}"
        else:
            status = "kept"
            reason = "no selection" if method == "none" else f"{_pass_reason(config)}, rank {r}"
            kept.append(names[i])
        rows.append(
            {
                "feature": names[i],
                "source": sources.get(names[i], "preprocessed"),
                "score": float(scores[i]),
                "score_name": score_name,
                "rank": r,
                "status": status,
                "reason": reason,
            }
        )
    if not kept:
        raise InputDataError(
            f"selection={method!r} kept none of the {len(names)} candidate features "
            f"({_fail_reason(config, 0.0)} for all); lower variance_threshold, or use another selection"
        )
    # The kept features stay in the order the union produces them, not in score order.
    kept_in_order = tuple(n for n in names if n in set(kept))
    return Selection(kept_in_order, tuple(rows), tuple(notes))


def _pass_reason(config: FeatureConfig) -> str:
    return {
        "variance": f"variance above threshold {config.variance_threshold:g}",
        "mutual_info": "mutual information with the label above 0",
        "chi2": "chi-squared above 0",
        "l1": "non-zero L1 coefficient",
    }[config.selection]


def _fail_reason(config: FeatureConfig, score: float) -> str:
    return {
        "variance": f"variance {score:.4g} at or below threshold {config.variance_threshold:g}",
        "mutual_info": "no mutual information with the label (0)",
        "chi2": "chi-squared 0: no association with the classes",
        "l1": f"L1 coefficient zero (|coef| <= {L1_ZERO:g})",
        "none": "",
    }[config.selection]


# --- the whole stage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureResult:
    """The fitted feature pipeline, the selection report, and the names that come out of it."""

    config: FeatureConfig
    feature_pipeline: Pipeline
    report: tuple[dict[str, Any], ...]
    feature_names: tuple[str, ...]
    candidate_names: tuple[str, ...]
    derived_names: tuple[str, ...]
    input_columns: tuple[str, ...]
    scaling: str
    notes: tuple[str, ...] = ()


def preprocessor_scaling(preprocessor: Any) -> str:
    """How the preprocessor scales numeric columns (its ``num`` path's ``scale`` step).

    ``"standard"`` when it has no numeric path, so derived features are still put on a common scale.
    """
    numeric = getattr(preprocessor, "named_transformers_", {}).get("num")
    if not isinstance(numeric, Pipeline):
        return "standard"
    scaler = numeric.named_steps.get("scale")
    # A scaler the registry does not name: derived features are still put on a common scale.
    return scaling_name(scaler) or "standard"


def engineer_features(train_df: pd.DataFrame, preprocessor: Any, config: FeatureConfig) -> FeatureResult:
    """Fit derived features and feature selection on the train split (raw rows, label included).

    ``preprocessor`` is preprocess' fitted transformer; it is used as it is (wrapped in
    FrozenEstimator) and never refitted. Everything is checked before anything is fitted.
    """
    try:
        check_is_fitted(preprocessor)
        input_columns = [str(c) for c in preprocessor.feature_names_in_]
    except (NotFittedError, AttributeError, TypeError) as exc:
        raise InputDataError(
            "the transformer is not a fitted preprocessor from the preprocess stage (fitted on a DataFrame)"
        ) from exc
    if len(train_df) == 0:
        raise InputDataError("the train split has no rows")
    y = check_label(train_df, config.label_column, what="train split", task=config.task)
    resolve_task(y, config.task)
    missing = [c for c in input_columns if c not in train_df.columns]
    if missing:
        raise InputDataError(
            f"the train split lacks column(s) {', '.join(map(repr, missing))} that the transformer was "
            "fitted on; pass the train split written by the same preprocess run"
        )
    X = train_df[input_columns]
    check_derived_columns(
        X, config.derived, all_columns=[str(c) for c in train_df.columns], label_column=config.label_column
    )
    preprocessed_names = [str(n) for n in preprocessor.get_feature_names_out()]
    derived_names = [n for spec in config.derived for n in derived_output_names(spec)]
    clashes = sorted(set(derived_names) & set(preprocessed_names))
    if clashes:
        raise ParameterError(
            f"derived feature name(s) {', '.join(map(repr, clashes))} are already preprocessed feature "
            "names; rename those derived_features entries"
        )
    scaling = preprocessor_scaling(preprocessor)
    union = CandidateFeatures(FrozenEstimator(preprocessor), DerivedFeatures(config.derived, scaling))
    union.set_output(transform="pandas").fit(X, y)
    candidates = union.transform(X)
    sources = {**dict.fromkeys(preprocessed_names, "preprocessed"), **dict.fromkeys(derived_names, "derived")}
    selection = select_features(candidates, y, config, sources)
    selector = SelectedColumns(list(selection.kept)).fit(candidates)
    # Assembled from fitted parts: Pipeline.fit would fit the union again, for nothing. Pandas out,
    # with the raw rows' index; train's model sets it to arrays (set_output "default").
    feature_pipeline = Pipeline([("union", union), ("select", selector)]).set_output(transform="pandas")
    return FeatureResult(
        config=config,
        feature_pipeline=feature_pipeline,
        report=selection.rows,
        feature_names=selection.kept,
        candidate_names=tuple(str(c) for c in candidates.columns),
        derived_names=tuple(derived_names),
        input_columns=tuple(input_columns),
        scaling=scaling,
        notes=(*selection.notes, *([union.plan_note_] if union.plan_note_ else [])),
    )


def check_matches_preprocess(config: FeatureConfig, metadata: dict[str, Any]) -> None:
    """Raise ParameterError when ``config`` disagrees with the preprocess run that wrote the
    transformer (its metadata): a different label column or task would train on the wrong target."""
    for key, value in (("label_column", config.label_column), ("task", config.task)):
        recorded = metadata.get(key)
        if recorded is not None and recorded != value:
            raise ParameterError(
                f"parameter {key}={value!r} differs from the preprocess run that fitted the transformer "
                f"({key}={recorded!r}); pass preprocess' value"
            )


def feature_metadata(result: FeatureResult, train_df: pd.DataFrame) -> dict[str, Any]:
    """The metadata saved beside the fitted feature pipeline (and on the Model artifact)."""
    config = asdict(result.config)
    config["derived"] = [dict(spec) for spec in result.config.derived]
    return {
        "stage": "engineer_features",
        "label_column": result.config.label_column,
        "task": result.config.task,
        # Logical type of each raw input column; metadata.json sorts keys, so the order is kept apart.
        "input_columns": column_types(train_df[list(result.input_columns)]),
        "input_column_order": list(result.input_columns),
        "feature_names": list(result.feature_names),
        "candidate_features": list(result.candidate_names),
        "derived_features": list(result.derived_names),
        "selection": result.config.selection,
        "derived_scaling": result.scaling,
        "config": config,
    }


_REPORT_COLUMNS = ["feature", "source", "score", "rank", "status", "reason"]
_DERIVED_COLUMNS = ["name", "kind", "columns", "features"]


def _derived_rows(result: FeatureResult) -> list[dict[str, Any]]:
    return [
        {
            "name": spec["name"],
            "kind": spec["kind"],
            "columns": ", ".join(spec["columns"]),
            "features": ", ".join(derived_output_names(spec)),
        }
        for spec in result.config.derived
    ]


def _headline(result: FeatureResult) -> str:
    config = result.config
    method = "no selection" if config.selection == "none" else f"selection {config.selection}"
    cap = f", max_features {config.max_features}" if config.max_features else ""
    return (
        f"{len(result.candidate_names)} candidate features ({len(result.derived_names)} derived), "
        f"{method}{cap}: {len(result.feature_names)} kept. Scores come from the train split "
        f"({_SCORE_NAMES[config.selection]})."
    )


def render_html(result: FeatureResult) -> str:
    """The selection report: every candidate feature with its score, kept or dropped, and why."""
    from mlstages.components.common.reports import html_list, html_page, html_paragraph, html_table

    sections = [("Summary", html_paragraph(_headline(result)))]
    if result.config.derived:
        sections.append(("Derived features", html_table(_derived_rows(result), _DERIVED_COLUMNS)))
    sections.append(("Selection", html_table(result.report, _REPORT_COLUMNS)))
    if result.notes:
        sections.append(("Notes", html_list(result.notes)))
    return html_page("Feature engineering", sections)


def render_markdown(result: FeatureResult) -> str:
    """The Markdown summary: what was derived, what was kept, what was dropped and why."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    lines = ["# Engineer features", "", markdown_text(_headline(result)), ""]
    if result.config.derived:
        lines += ["## Derived features", "", markdown_table(_derived_rows(result), _DERIVED_COLUMNS), ""]
    lines += ["## Selection", "", markdown_table(result.report, _REPORT_COLUMNS), ""]
    if result.notes:
        lines += ["## Notes", "", *[f"- {markdown_text(n)}" for n in result.notes], ""]
    return "\n".join(lines)
