"""OutlierClipper: clips numeric columns to bounds fitted on the training data."""

from __future__ import annotations

import warnings
from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from mlstages.components.common.errors import require_choice


class OutlierClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Clips each numeric column to bounds fitted on the training data; NaN passes through.

    method: ``"iqr"`` clips to [Q1 - factor·IQR, Q3 + factor·IQR], ``"zscore"`` to
    mean ± factor·std. A column whose IQR (or std) is 0 is left unclipped.
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"iqr", "zscore"})],
        "factor": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, method: str = "iqr", factor: float = 1.5) -> None:
        self.method = method
        self.factor = factor

    def fit(self, X: Any, y: Any = None) -> OutlierClipper:
        require_choice("outliers", self.method, ("iqr", "zscore"))
        self._validate_params()
        values = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no bounds, see below
            if self.method == "iqr":
                low, high = np.nanpercentile(values, [25, 75], axis=0)
                spread = high - low
            else:
                center = np.nanmean(values, axis=0)
                spread = np.nanstd(values, axis=0)
                low = high = center
        usable = np.isfinite(spread) & (spread > 0)
        self.lower_ = np.where(usable, low - self.factor * spread, -np.inf)
        self.upper_ = np.where(usable, high + self.factor * spread, np.inf)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "lower_")
        values = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return np.clip(values, self.lower_, self.upper_)
