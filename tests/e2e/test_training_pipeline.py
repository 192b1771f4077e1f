"""The training pipeline end to end through kfp.local and the embedded object store — what
`make run` does, checked."""

from __future__ import annotations

import json

import pytest
from kfp_launcher_rules import assert_cluster_safe

from mlstages.tooling import local

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run_report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    params = local.load_params(
        local.catalog.builtin_params_path("training"),
        # A smaller search than the default keeps the test quick; the wiring is the same.
        ["cv_folds=3", "model_families=[logistic_regression, random_forest]"],
    )
    report = local.run_pipeline("training", params, workdir=workdir, progress=lambda _: None)
    return report


def test_every_stage_ran_and_wrote_its_outputs(run_report):
    names = [t.name for t in run_report.tasks]
    for stage in ("ingest", "validate-data", "preprocess", "engineer-features", "train", "evaluate"):
        assert stage in names, names
    for task in run_report.tasks:
        for name, artifact in task.artifacts.items():
            assert artifact["uri"], f"{task.name}.{name} has no uri"


def test_every_task_output_keeps_a_real_clusters_rules(run_report):
    assert_cluster_safe(run_report.run_dir)


def test_data_came_from_the_embedded_gcs(run_report):
    assert run_report.data_uri.startswith("gs://mlstages-local/")
    ingest = run_report.task("ingest")
    assert ingest.artifacts["dataset"]["metadata"]["rows"] == 344
    assert ingest.artifacts["dataset"]["metadata"]["source"] == run_report.data_uri


def test_metrics_are_good_on_penguins(run_report):
    metrics = run_report.task("evaluate").artifacts["metrics"]["metadata"]
    assert metrics["accuracy"] > 0.9
    assert metrics["f1_macro"] > 0.9


def test_model_was_exported_to_a_versioned_gcs_location_and_predicts_raw_rows(run_report, tmp_path):
    import joblib
    import palmerpenguins

    from mlstages.components.common import storage
    from mlstages.components.common.emulator import EmbeddedGCS

    model_uri = run_report.task("train").parameters["model_uri"]
    assert model_uri.startswith("gs://mlstages-local/models/penguins/")
    # The run stopped its store; start one on the same folder to read what it left.
    with EmbeddedGCS(root=run_report.run_dir.parent.parent / "gcs"):
        storage.download_dir(model_uri, tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    model = joblib.load(tmp_path / "model.joblib")
    rows = palmerpenguins.load_penguins().drop(columns=["species"]).head(20)
    predictions = model.predict(rows)
    assert set(predictions) <= set(metadata["classes"])

    # The card's lineage names the data as ingest read it, the train split, and every stage's settings.
    lineage = metadata["lineage"]
    ingested = run_report.task("ingest").artifacts["dataset"]["metadata"]
    (source,) = lineage["data"]["sources"]
    assert source["uri"] == run_report.data_uri
    assert source["content_hash"] == ingested["content_hash"] and source["rows"] == 344
    assert lineage["data"]["train_split"]["rows"] == metadata["train_rows"]
    assert lineage["parameters"]["preprocess"]["label_column"] == "species"
    assert lineage["parameters"]["engineer_features"]["selection"] == "mutual_info"
    assert lineage["parameters"]["train"]["model_families"] == ["logistic_regression", "random_forest"]
    assert "model_card" in run_report.task("train").artifacts


def test_report_names_every_artifact_and_the_metrics(run_report):
    text = local.format_report(run_report)
    assert "Test-set metrics" in text and "accuracy" in text
    assert "Model: gs://mlstages-local/models/penguins/" in text
    assert str(run_report.run_dir) in text


def test_training_pipeline_reads_a_database_query(tmp_path):
    import sqlite3

    import palmerpenguins

    database = tmp_path / "penguins.db"
    with sqlite3.connect(database) as connection:
        palmerpenguins.load_penguins().to_sql("penguins", connection, index=False)
    params = local.load_params(
        local.catalog.builtin_params_path("training"),
        [
            "cv_folds=3",
            "model_families=[logistic_regression]",
            "sql_query=SELECT * FROM penguins WHERE island != 'Torgersen'",
        ],
    )
    params["data_uri"] = f"sqlite:///{database}"
    report = local.run_pipeline("training", params, workdir=tmp_path / "run", progress=lambda _: None)
    dataset = report.task("ingest").artifacts["dataset"]["metadata"]
    assert dataset["rows"] == 344 - 52  # Torgersen's 52 penguins left out by the query
    assert dataset["source"] == f"sqlite:///{database}"
    assert report.task("evaluate").artifacts["metrics"]["metadata"]["accuracy"] > 0.9
    assert_cluster_safe(report.run_dir)
