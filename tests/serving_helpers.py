"""A model exported the suite's own way, for the serving tests."""

from __future__ import annotations

from pathlib import Path

from palmerpenguins import load_penguins
from threadpoolctl import threadpool_limits

from mlstages.components.common.datasets import column_types
from mlstages.components.engineer_features.engineer_features import FeatureConfig, engineer_features
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.export import export_model
from mlstages.components.train.train import train


def export_penguins_model(directory: Path, label: str, task: str, family: str, space: dict) -> Path:
    """The suite's own path: preprocess, engineer_features (a derived ratio: a custom transformer
    in the pickle), train with a one-candidate search, export."""
    penguins = load_penguins().dropna(subset=[label])
    with threadpool_limits(limits=1):
        prepared = preprocess(penguins, PreprocessConfig(label_column=label, task=task, seed=0))
        features = engineer_features(
            prepared.train,
            prepared.preprocessor,
            FeatureConfig(
                label_column=label,
                task=task,
                derived=(
                    {"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]},
                ),
            ),
        )
        result = train(
            prepared.train,
            features.feature_pipeline,
            TrainConfig(
                label_column=label, task=task, model_families=(family,), cv_folds=2, search_space=space
            ),
        )
    export_model(result, directory, column_types(prepared.train[result.input_columns]))
    return directory


def export_penguins_classifier(tmp_path_factory) -> Path:
    """The species classifier most serving and scoring tests use: logistic regression, one
    candidate, in a fresh folder of the session's temporary space."""
    return export_penguins_model(
        tmp_path_factory.mktemp("classifier") / "model",
        "species",
        "classification",
        "logistic_regression",
        {"logistic_regression": {"C": [1.0]}},
    )
