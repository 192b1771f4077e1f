"""Deploy's registration in a Kubeflow Model Registry (components/deploy/kubeflow_registry.py).

The real ``model-registry`` client talks HTTP to the registry STAND-IN in
tests/model_registry_standin.py, which validates every request body with the client's own OpenAPI
models (mr_openapi) and answers with them. It is not a Kubeflow Model Registry: no server-side
storage or validation beyond those models, no authentication, no TLS, no InferenceService
controller. The published model and its evaluation live in the embedded GCS emulator.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from model_registry_standin import API, ModelRegistryStandin
from mr_openapi import ModelArtifactCreate, ModelVersionCreate, RegisteredModelCreate

from mlstages.components.common import storage
from mlstages.components.common.errors import ParameterError
from mlstages.components.common.model_card import InputFeature, ModelCard
from mlstages.components.common.registry import attach_evaluation
from mlstages.components.deploy.cluster import patch_body
from mlstages.components.deploy.config import DeployConfig, DeployFailed
from mlstages.components.deploy.kubeflow_registry import (
    MODEL_VERSION_ID_LABEL,
    REGISTERED_MODEL_ID_LABEL,
    URL_ANNOTATION,
    SourceRun,
    check_address,
    register_for_deploy,
    register_version,
    source_run,
    version_properties,
)
from mlstages.components.deploy.manifest import build_inference_service

pytestmark = pytest.mark.usefixtures("no_external_network")

NAME = "penguins"
URI = "gs://models/models/penguins/20260101T000000Z-0123abcd"
SOURCE = SourceRun("kfp", "pipelinerun", id="run-123", name="", group="team-a")


@pytest.fixture
def standin():
    with ModelRegistryStandin() as server:
        yield server


def closed_port_url(scheme: str = "http") -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


def register(address: str, uri: str = URI, **overrides):
    values = {
        "model_name": NAME,
        "model_uri": uri,
        "sklearn_version": "1.9.1",
        "properties": {"task": "classification", "metric.accuracy": 0.97},
        "source": SOURCE,
        "description": "classification model of 'species', deployed by mlstages",
    }
    values.update(overrides)
    return register_version(address, **values)


def test_the_real_client_registers_model_version_and_artifact_with_these_requests(standin):
    registration = register(standin.root_url)

    writes = [(r.method, r.path.removeprefix(API), r.body) for r in standin.writes()]
    assert [(method, path) for method, path, _ in writes] == [
        ("POST", "/registered_models"),
        ("POST", "/model_versions"),
        ("POST", f"/model_versions/{registration.model_version_id}/artifacts"),
    ]
    model_body, version_body, artifact_body = (body for *_, body in writes)
    assert model_body == {"name": NAME, "owner": "mlstages", "state": "LIVE"}
    assert version_body == {
        "name": "20260101T000000Z-0123abcd",
        "author": "mlstages",
        "description": "classification model of 'species', deployed by mlstages",
        "state": "LIVE",
        "registeredModelId": registration.registered_model_id,
        "customProperties": {
            "task": {"string_value": "classification", "metadataType": "MetadataStringValue"},
            "metric.accuracy": {"double_value": 0.97, "metadataType": "MetadataDoubleValue"},
        },
    }
    assert artifact_body == {
        "name": NAME,
        "artifactType": "model-artifact",
        "uri": URI,
        "modelFormatName": "sklearn",
        "modelFormatVersion": "1.9.1",
        "modelSourceKind": "kfp",
        "modelSourceClass": "pipelinerun",
        "modelSourceGroup": "team-a",
        "modelSourceId": "run-123",
        "state": "UNKNOWN",
    }
    # The stand-in validated these already; the client's own request models read them back.
    RegisteredModelCreate.from_dict(model_body)
    assert ModelVersionCreate.from_dict(version_body).registered_model_id == registration.registered_model_id
    assert ModelArtifactCreate.from_dict(artifact_body).model_format_version == "1.9.1"

    assert registration.created
    assert (registration.registered_model_id, registration.model_version_id) == (
        next(iter(standin.registered_models)),
        next(iter(standin.versions)),
    )
    assert registration.labels() == {
        REGISTERED_MODEL_ID_LABEL: registration.registered_model_id,
        MODEL_VERSION_ID_LABEL: registration.model_version_id,
    }
    assert registration.annotations() == {URL_ANNOTATION: standin.root_url}


def test_a_retried_registration_reuses_the_version_and_writes_nothing(standin):
    first = register(standin.root_url)
    writes = len(standin.writes())
    again = register(standin.root_url)
    assert not again.created
    assert again.model_version_id == first.model_version_id
    assert len(standin.writes()) == writes
    assert "already registered (reused)" in again.note()


def test_the_same_version_with_another_uri_is_refused(standin):
    register(standin.root_url)
    with pytest.raises(DeployFailed, match="already holds penguins version 20260101T000000Z-0123abcd"):
        register(standin.root_url, uri="s3://elsewhere/penguins/20260101T000000Z-0123abcd")


def test_an_unreachable_registry_is_one_line_naming_the_address():
    address = closed_port_url()
    with pytest.raises(DeployFailed) as failure:
        register(address)
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(f"the Kubeflow Model Registry at {address} (kubeflow_model_registry) could not")
    assert "set kubeflow_model_registry='' to deploy without registering" in message
    assert message.endswith("Nothing was deployed and the champion pointer was not moved.")


def test_a_refusing_registry_names_the_token_and_writes_nothing(standin):
    standin.fail_with = 403
    with pytest.raises(DeployFailed, match=r"refused the request \(403 Forbidden\).*service account"):
        register(standin.root_url)
    assert standin.writes() == []


def test_https_without_a_token_says_where_a_token_comes_from(monkeypatch):
    monkeypatch.delenv("KF_PIPELINES_SA_TOKEN_PATH", raising=False)
    with pytest.raises(DeployFailed, match="needs a token over https.*KF_PIPELINES_SA_TOKEN_PATH"):
        register(closed_port_url("https"))


@pytest.mark.parametrize(
    "address",
    ["host:8080", "ftp://host", "https://", "https://host/api", "https://host?x=1", "https://h:99999"],
)
def test_a_bad_address_is_refused_naming_the_parameter(address):
    with pytest.raises(ParameterError, match="kubeflow_model_registry"):
        check_address(address)
    with pytest.raises(ParameterError, match="kubeflow_model_registry"):
        DeployConfig(model_name=NAME, kubeflow_model_registry=address)


def test_addresses_are_kept_without_a_trailing_slash_and_empty_is_off():
    assert check_address("https://registry.example.com:8443/") == "https://registry.example.com:8443"
    assert check_address("  ") == ""
    assert DeployConfig(model_name=NAME).kubeflow_model_registry == ""


def test_a_local_path_is_not_registered(standin):
    with pytest.raises(ParameterError, match="not a URI a cluster can read"):
        register(standin.root_url, uri="/tmp/models/penguins/v1")
    assert standin.requests == []


def test_the_source_is_the_kfp_run_on_a_backend_and_the_run_folder_locally(tmp_path):
    on_kfp = source_run("4f1c-run", "gs://root/mlstages-training/4f1c-run/deploy/inference_service")
    assert (on_kfp.kind, on_kfp.klass, on_kfp.id) == ("kfp", "pipelinerun", "4f1c-run")
    run = tmp_path / "runs" / "mlstages-training-2026-12-04-04-08-36-378927"
    local = source_run("a-random-local-id", str(run / "deploy" / "inference_service"))
    assert (local.kind, local.klass, local.id, local.name) == ("mlstages", "local-run", str(run), run.name)


def test_undefined_metrics_and_empty_facts_are_left_out():
    properties = version_properties(
        {"task": "regression", "family": "", "cv_score": None, "train_rows": 120, "nested": {"a": 1}},
        {"r2": 0.8, "mape": None, "log_loss": float("nan"), "flag": True, "rmse": 3},
    )
    assert properties == {"task": "regression", "train_rows": 120, "metric.r2": 0.8, "metric.rmse": 3.0}


def test_register_for_deploy_sends_the_cards_format_and_evaluates_metrics(standin, gcs_bucket, tmp_path):
    uri = f"{gcs_bucket}/models/{NAME}/20260101T000000Z-0123abcd"
    storage.write_bytes(f"{uri}/metadata.json", b"{}")  # a published version: its card is there
    attach_evaluation(uri, json.dumps({"task": "classification", "metrics": {"accuracy": 0.99}}).encode())
    card = ModelCard(
        task="classification",
        label_column="species",
        input_features=(InputFeature("bill_length_mm", "numeric"),),
        sha256="0123abcd" * 8,
        versions={"scikit-learn": "1.9.1", "mlstages": "0.1.0"},
        family="logistic_regression",
    )
    registration = register_for_deploy(
        standin.root_url,
        NAME,
        card,
        uri,
        run_id="ignored-locally",
        output_uri=str(tmp_path / "r" / "d" / "o"),
    )
    _, version_body, artifact_body = (r.body for r in standin.writes())
    properties = version_body["customProperties"]
    assert properties["metric.accuracy"] == {"double_value": 0.99, "metadataType": "MetadataDoubleValue"}
    assert properties["sha256"]["string_value"] == card.sha256
    assert properties["label_column"]["string_value"] == "species"
    assert artifact_body["modelFormatVersion"] == card.sklearn_version
    assert artifact_body["uri"] == uri
    assert (artifact_body["modelSourceKind"], artifact_body["modelSourceId"]) == (
        "mlstages",
        str(tmp_path / "r"),
    )
    assert registration.version == "20260101T000000Z-0123abcd"


def test_the_inference_service_carries_the_ids_and_a_patch_clears_stale_ones(standin):
    registration = register(standin.root_url)
    config = DeployConfig(model_name=NAME)
    manifest = build_inference_service(
        config, URI, labels=registration.labels(), annotations=registration.annotations()
    )
    labels = manifest["metadata"]["labels"]
    assert labels[REGISTERED_MODEL_ID_LABEL] == registration.registered_model_id
    assert labels[MODEL_VERSION_ID_LABEL] == registration.model_version_id
    assert manifest["metadata"]["annotations"][URL_ANNOTATION] == standin.root_url
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == URI
    assert patch_body(manifest)["metadata"]["labels"][MODEL_VERSION_ID_LABEL] == registration.model_version_id

    # A later deploy without registration must not leave these ids pointing at an older version.
    unregistered = patch_body(build_inference_service(config, URI))
    assert unregistered["metadata"]["labels"][REGISTERED_MODEL_ID_LABEL] is None
    assert unregistered["metadata"]["annotations"][URL_ANNOTATION] is None


def test_the_example_manifest_in_manifests_has_no_registry_labels():
    example = Path(__file__).resolve().parents[2] / "manifests" / "inference-service.example.yaml"
    assert "modelregistry.kubeflow.org" not in example.read_text(encoding="utf-8")
