"""DerivedFeatures and its spec: ratios, logs, date parts, bins and interactions computed from raw
columns, imputed with their train median and scaled as the preprocessor scales."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.utils._param_validation import StrOptions

from mlstages.components.common.datasets import BOOLEAN, NUMERIC, logical_type
from mlstages.components.common.errors import InputDataError, ParameterError, require_choice
from mlstages.components.common.estimators.fast_transform import (
    impute,
)
from mlstages.components.common.estimators.scalers import (
    SCALINGS,
    make_scaler,
    scale,
    scaling_steps,
)

DERIVED_KINDS = ("ratio", "log", "date_parts", "bin", "interaction")


DATE_PARTS = ("year", "month", "day", "dayofweek", "hour")


DEFAULT_BINS = 5


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
    a column is not available: it is the label, or it is not a transformer input (drop_columns,
    column_types 'ignore', an identifier).
    """
    for index, spec in enumerate(specs):
        label = _entry_label(index, spec)
        for column in spec["columns"]:
            if column not in X.columns:
                if column == label_column:
                    why = "it is the label column, which a feature cannot be derived from"
                elif all_columns is not None and column in all_columns:
                    why = (
                        "it is not an input of the preprocessor (drop_columns, column_types 'ignore' "
                        "or an identifier column left out; see preprocess' column plan)"
                    )
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

    _parameter_constraints: dict = {
        "derived": [list, tuple],
        "scaling": [StrOptions(set(SCALINGS))],
    }

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


def _check_dates_parse(values: pd.Series, label: str) -> None:
    parsed = _dates(values)
    bad = (parsed.isna() & values.notna()).to_numpy()
    if bad.any():
        position = int(bad.nonzero()[0][0])
        raise InputDataError(
            f"{label}: column {values.name!r} has values that are not dates, e.g. "
            f"{values.iloc[position]!r} at row {position} (0-based) of the train split"
        )
