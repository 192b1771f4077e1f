"""The batch_predict component run through kfp.local, in the inference pipeline (ingest →
fetch_champion or a given version → batch_predict) against a registry folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serving_helpers import export_penguins_classifier

from mlstages.components.common import registry, storage
from mlstages.components.ingest.ingest import IngestConfig, read_source
from mlstages.pipelines.inference import inference_pipeline
from mlstages.tooling.local import read_run


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return export_penguins_classifier(tmp_path_factory)


@pytest.fixture
def published(kfp_local, classifier, penguins_parquet) -> dict[str, str]:
    root = str(kfp_local / "registry")
    return {
        "root": root,
        "version": registry.publish_model(classifier, root, "penguins"),
        "data": penguins_parquet,
        "out": str(kfp_local / "predictions"),
    }


def _task(kfp_local: Path, name: str):
    (run_dir,) = [p for p in (kfp_local / "root").iterdir() if p.is_dir()]
    # The else branch's task is batch-predict-2: KFP numbers a second task of the same component.
    return next(t for t in read_run(run_dir) if name in t.name)


def test_the_champion_scores_the_ingested_rows_into_log_shards(kfp_local, published):
    # Only an evaluated version can lead (the registry's rule).
    registry.attach_evaluation(
        published["version"], b'{"task": "classification", "metrics": {"accuracy": 0.97}}'
    )
    registry.set_champion(published["root"], "penguins", published["version"])

    inference_pipeline(
        data_uri=published["data"],
        model_registry=published["root"],
        model_name="penguins",
        output_uri=published["out"],
        batch_rows=100,
    )

    task = _task(kfp_local, "batch-predict")
    version = published["version"].rsplit("/", 1)[-1]
    assert task.parameters == {"rows": 344, "shards": 4, "model_version": version}
    metadata = task.artifacts["predictions"]["metadata"]
    assert metadata["blessing"] == "champion" and metadata["output_uri"] == published["out"]
    assert metadata["model_uri"] == published["version"]
    listing = json.loads((Path(task.artifacts["predictions"]["uri"]) / "shards.json").read_text())
    assert sorted(listing["shards"]) == sorted(storage.list_uris(published["out"]))
    logged = read_source(IngestConfig(source_uri=published["out"]))
    assert len(logged) == 344 and set(logged["model_version"]) == {version}
    assert task.artifacts["metrics"]["metadata"]["rows"] == 344


def test_a_given_version_needs_a_blessing_or_force(kfp_local, published, capfd):
    arguments = {
        "data_uri": published["data"],
        "model_registry": published["root"],
        "model_name": "penguins",
        "model_uri": published["version"],
        "output_uri": published["out"],
    }
    with pytest.raises(RuntimeError, match="batch-predict"):
        inference_pipeline(**arguments)
    logs = capfd.readouterr().out
    assert f"model {published['version']} is not blessed: the blessing gate never judged it" in logs
    assert storage.list_uris(published["out"]) == []

    inference_pipeline(**arguments, force=True, id_column="island")
    logged = read_source(IngestConfig(source_uri=published["out"]))
    assert len(logged) == 344 and list(logged.columns)[:2] == ["island", "prediction"]


def test_a_version_the_gate_blessed_is_scored_into_the_predictions_artifact(kfp_local, published, classifier):
    from mlstages.components.common.model_card import ModelCard

    sha256 = ModelCard.read(classifier).sha256
    registry.attach_blessing(published["version"], registry.blessing_record(True, "blessed", sha256))

    inference_pipeline(
        data_uri=published["data"],
        model_registry=published["root"],
        model_name="penguins",
        model_uri=published["version"],
    )

    task = _task(kfp_local, "batch-predict")
    artifact = task.artifacts["predictions"]
    assert artifact["metadata"]["blessing"] == "blessed" and task.parameters["rows"] == 344
    assert len(read_source(IngestConfig(source_uri=artifact["uri"]))) == 344


def test_engine_dask_scores_on_a_local_cluster_that_the_task_names_and_stops(
    kfp_local, published, monkeypatch, capfd
):
    pytest.importorskip("distributed")
    monkeypatch.setenv("MLSTAGES_DASK_WORKERS", "2")
    registry.attach_evaluation(
        published["version"], b'{"task": "classification", "metrics": {"accuracy": 0.97}}'
    )
    registry.set_champion(published["root"], "penguins", published["version"])

    inference_pipeline(
        data_uri=published["data"],
        model_registry=published["root"],
        model_name="penguins",
        output_uri=published["out"],
        batch_rows=100,
        engine="dask",
    )

    task = _task(kfp_local, "batch-predict")
    assert task.parameters["rows"] == 344 and task.parameters["shards"] == 4
    text = capfd.readouterr().out  # the task's output, as kfp.local passes it on
    assert "engine dask: scheduler tcp://" in text and ", 2 worker(s): " in text
    assert "engine dask: LocalCluster stopped" in text
    logged = read_source(IngestConfig(source_uri=published["out"]))
    assert len(logged) == 344 and logged["request_id"].str.contains(r"-00000-00000[0-3]$").all()
