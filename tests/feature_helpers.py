"""A fitted feature pipeline for the training tests (importable: tests/ is on sys.path via
conftest): what engineer_features hands train, raw columns in, numbers out."""

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def fit_features(df: pd.DataFrame, label: str) -> ColumnTransformer:
    """Imputed and scaled numbers, imputed and one-hot encoded categories, fitted on ``df``."""
    raw = df.drop(columns=[label])
    numeric = [c for c in raw.columns if pd.api.types.is_numeric_dtype(raw[c])]
    categorical = [c for c in raw.columns if c not in numeric]
    transformer = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ]
    ).set_output(transform="pandas")
    return transformer.fit(raw)
