"""The train component run through kfp.local on the Palmer penguins data."""

import json
from pathlib import Path
from typing import NamedTuple

import joblib
import pytest
from kfp import dsl, local
from kfp.dsl import HTML, Dataset, Markdown, Metrics, Model, Output
from palmerpenguins import load_penguins

from mlstages.components.common.artifacts import file_sha256
from mlstages.components.train.component import train

# kfp.local warns that the stage's image is not a plain Python image; the subprocess runner uses
# this environment instead, which is what these tests mean to exercise.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")

PENGUIN_INPUTS = [
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]


@pytest.fixture
def kfp_local(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    yield tmp_path


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def prepare_penguins(train_split: Output[Dataset], test_split: Output[Dataset], features: Output[Model]):
    """Stands in for preprocess + engineer_features: splits the penguins and fits a feature pipeline."""
    from palmerpenguins import load_penguins
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlstages.components.common.artifacts import save_estimator
    from mlstages.components.common.datasets import column_types, write_dataset

    penguins = load_penguins()
    train_df, test_df = train_test_split(
        penguins, test_size=0.3, stratify=penguins["species"], random_state=0
    )
    raw = train_df.drop(columns=["species"])
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


class TrainOutputs(NamedTuple):
    model: Model
    metrics: Metrics
    search_results: HTML
    summary: Markdown
    best_family: str
    cv_score: float
    model_uri: str


@dsl.pipeline
def train_penguins(label_column: str, registry: str) -> TrainOutputs:
    prepared = prepare_penguins()
    trained = train(
        train=prepared.outputs["train_split"],
        features=prepared.outputs["features"],
        label_column=label_column,
        task="classification",
        model_families=["logistic_regression", "random_forest"],
        cv_folds=3,
        search_space={"random_forest": {"n_estimators": [10], "max_depth": [4]}},
        model_registry=registry,
        model_name="penguins",
    )
    return TrainOutputs(
        model=trained.outputs["model"],
        metrics=trained.outputs["metrics"],
        search_results=trained.outputs["search_results"],
        summary=trained.outputs["summary"],
        best_family=trained.outputs["best_family"],
        cv_score=trained.outputs["cv_score"],
        model_uri=trained.outputs["model_uri"],
    )


def test_train_exports_a_pipeline_that_predicts_on_raw_penguins(kfp_local):
    registry = kfp_local / "registry"
    run = train_penguins(label_column="species", registry=str(registry))
    model = run.outputs["model"]
    model_dir = Path(model.path)

    assert sorted(p.name for p in model_dir.iterdir()) == ["metadata.json", "model.joblib"]
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["sha256"] == file_sha256(model_dir / "model.joblib") == model.metadata["sha256"]
    assert [f["name"] for f in metadata["input_features"]] == PENGUIN_INPUTS
    assert {f["name"]: f["type"] for f in metadata["input_features"]}["island"] == "categorical"
    assert metadata["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert model.metadata["framework"] == "sklearn"
    assert model.metadata["best_family"] == run.outputs["best_family"]
    assert run.outputs["best_family"] in ("logistic_regression", "random_forest")

    fitted = joblib.load(model_dir / "model.joblib")
    penguins = load_penguins()
    predictions = fitted.predict(penguins[PENGUIN_INPUTS])  # raw rows, missing values included
    assert (predictions == penguins["species"]).mean() > 0.9

    metrics = run.outputs["metrics"].metadata
    assert metrics["cv_f1_macro"] == pytest.approx(run.outputs["cv_score"])
    assert 0.9 < metrics["cv_f1_macro"] <= 1.0
    assert metrics["candidates"] == 4  # three C values for logistic regression, one forest
    assert metrics["train_rows"] == metrics["search_rows"] == 240

    html = Path(run.outputs["search_results"].path).read_text()
    assert "Search results" in html and '<tr class="ok"' in html
    summary = Path(run.outputs["summary"].path).read_text()
    assert summary.startswith("# Train") and "refit on all 240 training rows" in summary

    # Published to the registry as a new version holding the same files.
    model_uri = run.outputs["model_uri"]
    assert model_uri.startswith(str(registry / "penguins"))
    assert file_sha256(Path(model_uri) / "model.joblib") == metadata["sha256"]
    assert "Published to the model registry" in summary


def test_train_with_an_unknown_label_fails_before_writing_a_model(kfp_local, capfd):
    with pytest.raises(RuntimeError, match="Inner task failed"):
        train_penguins(label_column="penguin_species", registry="")

    output = capfd.readouterr()
    assert "label_column 'penguin_species' is not a column of the training split" in output.out + output.err
    root = kfp_local / "root"
    assert not list(root.rglob("model.joblib"))
    # <root>/<run>/<task>/<output>: the failed train task left no file behind.
    assert not [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[1] == "train"]
