"""TfidfColumn: TF-IDF of one text column as dense named features."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from mlstages.components.common.errors import InputDataError

TEXT_MAX_FEATURES = 200


class TfidfColumn(TransformerMixin, BaseEstimator):
    """TF-IDF of ONE text column, as dense named columns; missing values count as empty text.

    A wrapper because ``TfidfVectorizer`` takes a 1-D input, returns a sparse matrix and cannot be
    set to pandas output, while the rest of the transformer yields named DataFrame columns.
    """

    _parameter_constraints: dict = {"max_features": [Interval(Integral, 1, None, closed="left"), None]}

    def __init__(self, max_features: int = TEXT_MAX_FEATURES) -> None:
        self.max_features = max_features

    @staticmethod
    def _texts(X: Any) -> tuple[str, pd.Series]:
        if isinstance(X, pd.DataFrame):
            if X.shape[1] != 1:
                raise InputDataError(f"TfidfColumn takes one text column, got {X.shape[1]}")
            X = X.iloc[:, 0]
        series = pd.Series(np.asarray(X, dtype=object).ravel()) if not isinstance(X, pd.Series) else X
        name = str(series.name) if series.name is not None else "text"
        return name, series.astype(object).where(series.notna(), "").map(str)

    def fit(self, X: Any, y: Any = None) -> TfidfColumn:
        self._validate_params()
        name, texts = self._texts(X)
        self.column_ = name
        try:
            self.vectorizer_ = TfidfVectorizer(max_features=self.max_features).fit(texts)
        except ValueError as exc:  # "empty vocabulary": no word of two letters or more
            raise InputDataError(
                f"text column {name!r} has no words to build a TF-IDF vocabulary from in the train "
                "split; encode it as a category or drop it (drop_columns)"
            ) from exc
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "vectorizer_")
        return self.vectorizer_.transform(self._texts(X)[1]).toarray()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "vectorizer_")
        return np.asarray(self.vectorizer_.get_feature_names_out(), dtype=object)
