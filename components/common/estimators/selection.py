"""CandidateFeatures (the preprocessor's output and the derived features, as one array) and
SelectedColumns (the selected features): the feature pipeline of the exported model."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.utils._param_validation import HasMethods

from mlstages.components.common.errors import InputDataError
from mlstages.components.common.estimators.derived import DerivedFeatures
from mlstages.components.common.estimators.fast_transform import (
    FITTED_BLOCK,
    PreprocessorPlan,
    compile_preprocessor,
    plan_mismatch,
)


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

    _parameter_constraints: dict = {
        "preprocessor": [HasMethods(["transform"]), None],
        "derived": [HasMethods(["transform"]), None],
    }

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

    _parameter_constraints: dict = {"columns": [list, tuple, "array-like"]}

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
