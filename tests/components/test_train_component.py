"""The train component run through kfp.local on the Palmer penguins data."""

import json
from pathlib import Path
from typing import NamedTuple

import joblib
import pytest
from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics, Model
from kfp_helpers import prepare_penguins
from palmerpenguins import load_penguins

from mlstages.components.common.artifacts import file_sha256
from mlstages.components.train.component import train

PENGUIN_INPUTS = [
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]


class TrainOutputs(NamedTuple):
    model: Model
    metrics: Metrics
    model_card: HTML
    search_results: HTML
    summary: Markdown
    best_family: str
    cv_score: float
    model_uri: str


@dsl.pipeline
def train_penguins(label_column: str, registry: str) -> TrainOutputs:
    prepared = prepare_penguins(label_column="species")
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
        model_card=trained.outputs["model_card"],
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

    assert sorted(p.name for p in model_dir.iterdir()) == [
        "baselines.joblib",
        "metadata.json",
        "model.joblib",
        "reference.json",
    ]
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
    assert metrics["candidates"] == 6  # five C values for logistic regression, one forest
    assert metrics["train_rows"] == metrics["search_rows"] == 240
    # The quality floor, scored on the same folds: the dummy learns nothing, the default booster a lot.
    assert (
        metrics["baseline_dummy_cv_f1_macro"]
        < 0.3
        < 0.9
        < metrics["baseline_default_gradient_boosting_cv_f1_macro"]
    )
    assert metrics["search_seconds"] > 0
    assert "baseline: default_gradient_boosting" in Path(run.outputs["summary"].path).read_text()

    html = Path(run.outputs["search_results"].path).read_text()
    assert "Search results" in html and '<tr class="ok"' in html
    summary = Path(run.outputs["summary"].path).read_text()
    assert summary.startswith("# Train") and "refit on all 240 training rows" in summary

    # Published to the registry as a new version holding the same files.
    model_uri = run.outputs["model_uri"]
    assert model_uri.startswith(str(registry / "penguins"))
    assert file_sha256(Path(model_uri) / "model.joblib") == metadata["sha256"]
    assert "Published to the model registry" in summary

    # The lineage: the code and settings that made the model, and no parent on a first run.
    lineage = metadata["lineage"]
    assert lineage["parent"] is None
    assert lineage["code"]["suite_version"] and set(lineage["code"]["images"]) >= {"preprocess", "train"}
    assert lineage["parameters"]["train"]["cv_folds"] == 3
    card = Path(run.outputs["model_card"].path).read_text()
    assert "Model card: penguins" in card and "Parent champion" in card and metadata["sha256"] in card


def test_train_with_an_unknown_label_fails_before_writing_a_model(kfp_local, capfd):
    with pytest.raises(RuntimeError, match="Inner task failed"):
        train_penguins(label_column="penguin_species", registry="")

    output = capfd.readouterr()
    assert "label_column 'penguin_species' is not a column of the training split" in output.out + output.err
    root = kfp_local / "root"
    assert not list(root.rglob("model.joblib"))
    # <root>/<run>/<task>/<output>: the failed train task left no file behind.
    assert not [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[1] == "train"]


@dsl.pipeline
def train_penguins_on_a_sample(max_train_rows: int) -> Markdown:
    prepared = prepare_penguins(label_column="species")
    trained = train(
        train=prepared.outputs["train_split"],
        features=prepared.outputs["features"],
        label_column="species",
        task="classification",
        model_families=["logistic_regression"],
        cv_folds=3,
        max_train_rows=max_train_rows,
        model_name="penguins",
    )
    return trained.outputs["summary"]


def test_train_holds_a_seeded_sample_of_max_train_rows_and_says_so(kfp_local):
    run = train_penguins_on_a_sample(max_train_rows=100)
    summary = Path(run.output.path).read_text()
    assert "refit on a seeded sample of 100 of the 240 training rows" in summary


class ClusterRefitOutputs(NamedTuple):
    model: Model
    metrics: Metrics
    summary: Markdown
    model_card: HTML


@dsl.pipeline
def train_penguins_refit_on_the_cluster(max_train_rows: int) -> ClusterRefitOutputs:
    prepared = prepare_penguins(label_column="species")
    trained = train(
        train=prepared.outputs["train_split"],
        features=prepared.outputs["features"],
        label_column="species",
        task="classification",
        model_families=["lightgbm"],
        n_iter=2,
        cv_folds=3,
        search="random",
        search_space={"lightgbm": {"n_estimators": [30], "min_child_samples": [5]}},
        max_train_rows=max_train_rows,
        engine="dask",
        model_name="penguins",
    )
    return ClusterRefitOutputs(
        model=trained.outputs["model"],
        metrics=trained.outputs["metrics"],
        summary=trained.outputs["summary"],
        model_card=trained.outputs["model_card"],
    )


def test_train_with_engine_dask_refits_a_lightgbm_winner_on_every_row_on_the_cluster(kfp_local, monkeypatch):
    """The task holds 100 of the 240 rows; the winner is refit on all 240 on a LocalCluster of two
    workers, and the exported model is still one Pipeline with a plain LGBM estimator."""
    from lightgbm import LGBMClassifier

    monkeypatch.setenv("MLSTAGES_DASK_WORKERS", "2")
    run = train_penguins_refit_on_the_cluster(max_train_rows=100)
    metrics = run.outputs["metrics"].metadata
    assert metrics["train_rows"] == metrics["train_rows_available"] == 240 and metrics["search_rows"] == 100
    assert metrics["refit_on_cluster"] == 1
    summary = Path(run.outputs["summary"].path).read_text()
    assert "refit with the same parameters on all 240 training rows on the Dask engine" in summary
    assert "seeded sample" not in summary
    model_dir = Path(run.outputs["model"].path)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["train_rows"] == 240 and metadata["best_family"] == "lightgbm"
    assert metadata["refit"]["where"] == "dask" and metadata["refit"]["held_rows"] == 100
    assert "on the Dask engine: all 240 training rows" in Path(run.outputs["model_card"].path).read_text()
    fitted = joblib.load(model_dir / "model.joblib")
    assert type(fitted.named_steps["model"]) is LGBMClassifier
    penguins = load_penguins().dropna(subset=["species"])
    assert (fitted.predict(penguins[PENGUIN_INPUTS]) == penguins["species"]).mean() > 0.9
