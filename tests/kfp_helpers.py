"""Components shared by the component tests (importable: tests/ is on sys.path via conftest)."""

from kfp import dsl
from kfp.dsl import Dataset, Model, Output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def prepare_penguins(
    label_column: str,
    train_split: Output[Dataset],
    test_split: Output[Dataset],
    features: Output[Model],
):
    """Stands in for preprocess + engineer_features: splits the penguins and fits a feature pipeline."""
    from palmerpenguins import load_penguins
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlstages.components.common.artifacts import save_estimator
    from mlstages.components.common.dataset_files import write_dataset
    from mlstages.components.common.datasets import column_types

    penguins = load_penguins().dropna(subset=[label_column])
    stratify = penguins[label_column] if penguins[label_column].dtype == object else None
    train_df, test_df = train_test_split(penguins, test_size=0.3, stratify=stratify, random_state=0)
    raw = train_df.drop(columns=[label_column])
    numeric = [c for c in raw.columns if raw[c].dtype.kind in "if"]
    categorical = [c for c in raw.columns if c not in numeric]
    pipeline = ColumnTransformer(
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
    pipeline.fit(raw)
    train_split.metadata.update(write_dataset(train_df, train_split.path))
    test_split.metadata.update(write_dataset(test_df, test_split.path))
    save_estimator(
        pipeline,
        features.path,
        "features",
        {"input_columns": column_types(raw), "feature_names": list(pipeline.get_feature_names_out())},
    )
