"""Unit tests of the deploy logic.

The cluster path runs with the real ``kubernetes`` client against the Kubernetes API STAND-IN in
tests/k8s_standin.py (not a cluster: no KServe controller, admission webhooks, storage initializer,
networking or RBAC enforcement; the tests set the InferenceService status themselves). Smoke tests
send real HTTP requests to mlstages' real model server on 127.0.0.1; the registry and the champion
pointer live in the embedded GCS emulator.
"""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml
from k8s_standin import (
    KubernetesStandIn,
    custom_objects_api,
    make_status,
    merge_patch,
    ready_controller,
)
from palmerpenguins import load_penguins

from mlstages.components.common import storage
from mlstages.components.common.artifacts import load_estimator, read_metadata, save_estimator
from mlstages.components.common.errors import InputDataError, ParameterError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.common.registry import read_champion, set_champion
from mlstages.components.deploy.cluster import (
    apply_inference_service,
    cluster_api,
    describe_conditions,
    endpoint_from_status,
    rollback,
    wait_until_ready,
)
from mlstages.components.deploy.config import (
    DEPLOYMENT_MODE_ANNOTATION,
    NO_CLUSTER_NOTE,
    DeployConfig,
    DeployFailed,
)
from mlstages.components.deploy.deploy import deploy_locally, deploy_to_cluster
from mlstages.components.deploy.manifest import (
    build_inference_service,
    check_runtime_compatibility,
    manifest_yaml,
)
from mlstages.components.deploy.report import render_markdown
from mlstages.components.deploy.smoke import sample_rows, smoke_test
from mlstages.components.preprocess.config import PreprocessConfig
from mlstages.components.preprocess.preprocess import preprocess
from mlstages.components.serving.process import serve_in_background
from mlstages.components.train.config import TrainConfig
from mlstages.components.train.export import export_model
from mlstages.components.train.train import train

# Everything here talks to 127.0.0.1 only: the stand-in, the model server, the GCS emulator.
pytestmark = pytest.mark.usefixtures("no_external_network")

NAME = "penguins"
FAST = {"poll_interval_seconds": 0.05, "ready_timeout_seconds": 1.0, "smoke_test_timeout": 10.0}


# --- fixtures: a real exported model, a real model server, the stand-in ------------------------


def export_penguins_model(directory: Path, label: str = "species", c: float = 1.0) -> Path:
    """The suite's own preprocess + train on the penguins: the model has mlstages classes."""
    penguins = load_penguins()
    prepared = preprocess(penguins, PreprocessConfig(label_column=label))
    config = TrainConfig(
        label_column=label,
        task="classification",
        model_families=("logistic_regression",),
        cv_folds=2,
        search_space={"logistic_regression": {"C": [c]}},
    )
    result = train(prepared.train, prepared.preprocessor, config)
    types = {f: "categorical" if penguins[f].dtype == object else "numeric" for f in result.input_columns}
    export_model(result, directory, types)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return export_penguins_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def features(model_dir):
    return ModelCard.read(model_dir).input_features


@pytest.fixture(scope="module")
def rows(model_dir) -> pd.DataFrame:
    return sample_rows(load_penguins(), ModelCard.read(model_dir).input_names, 5)


@pytest.fixture(scope="module")
def expected(model_dir, rows) -> list:
    return load_estimator(model_dir, "model").predict(rows).tolist()


@pytest.fixture(scope="module")
def model_server(model_dir):
    """mlstages' real model server (a subprocess on 127.0.0.1) serving the model as 'penguins'."""
    with serve_in_background(str(model_dir), NAME) as server:
        yield server


@pytest.fixture
def standin():
    with KubernetesStandIn() as server:
        yield server


@pytest.fixture
def api(standin):
    return custom_objects_api(standin)


@pytest.fixture
def registry(gcs_bucket, model_dir) -> dict:
    """A registry in the GCS emulator holding two published versions of the model."""
    root = f"{gcs_bucket}/models"
    versions = {}
    for version in ("v1", "v2"):
        versions[version] = f"{root}/{NAME}/{version}"
        storage.upload_dir(str(model_dir), versions[version])
        storage.write_bytes(f"{versions[version]}/evaluation.json", b"{}")  # evaluate's part
    return {"root": root, **versions}


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def config(**overrides) -> DeployConfig:
    values = {"model_name": NAME, "cluster": "kubeconfig", **FAST}
    values.update(overrides)
    return DeployConfig(**values)


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_name": "Penguins"}, "parameter model_name='Penguins' is not a valid InferenceService name"),
        ({"model_name": "1penguins"}, "start with a letter"),
        ({"namespace": "My_NS"}, "parameter namespace='My_NS' is not a Kubernetes namespace name"),
        ({"service_account": "Reader!"}, "parameter service_account='Reader!' is not a Kubernetes service"),
        ({"runtime": "sklearn"}, "parameter runtime='sklearn' is not one of"),
        ({"protocol_version": "v3"}, "parameter protocol_version='v3' is not one of"),
        ({"deployment_mode": "Raw"}, "parameter deployment_mode='Raw' is not one of"),
        ({"cluster": "gke"}, "parameter cluster='gke' is not one of"),
        ({"min_replicas": -1}, "parameter min_replicas=-1 must be a whole number"),
        ({"max_replicas": 0}, "parameter max_replicas=0 must be at least 1"),
        (
            {"min_replicas": 3, "max_replicas": 2},
            "parameter max_replicas=2 must be at least 1 and at least min_replicas=3",
        ),
        ({"min_replicas": 0}, "parameter min_replicas=0 (scale to zero) needs deployment_mode Serverless"),
        (
            {"canary_traffic_percent": 101, "deployment_mode": "Serverless"},
            "parameter canary_traffic_percent=101 must be a whole number from 0 to 100",
        ),
        ({"cpu_request": "lots"}, "parameter cpu_request='lots' is not a Kubernetes quantity"),
        ({"memory_limit": "1GB"}, "parameter memory_limit='1GB' is not a Kubernetes quantity"),
        (
            {"memory_request": "2Gi", "memory_limit": "1Gi"},
            "parameter memory_limit='1Gi' is below memory_request='2Gi'",
        ),
        ({"cpu_request": "2", "cpu_limit": "500m"}, "parameter cpu_limit='500m' is below cpu_request='2'"),
        (
            {"ready_timeout_seconds": 0},
            "parameter ready_timeout_seconds=0 must be a number of seconds above 0",
        ),
        ({"smoke_test_rows": 0}, "parameter smoke_test_rows=0: the smoke test needs at least 1 row"),
        (
            {"cluster": "none", "kubeconfig": "/k"},
            "parameter kubeconfig='/k' is only used with cluster='kubeconfig'",
        ),
    ],
)
def test_bad_parameters_are_named(overrides, message):
    with pytest.raises(ParameterError) as error:
        config(**overrides)
    assert message in str(error.value)


def test_serverless_allows_scale_to_zero_and_a_canary_under_either_name():
    for mode in ("Serverless", "Knative"):
        chosen = config(deployment_mode=mode, min_replicas=0, canary_traffic_percent=10)
        assert chosen.serverless and not chosen.promotes
    assert config(deployment_mode="Knative", canary_traffic_percent=100).promotes


# --- the manifest -----------------------------------------------------------------------------


def test_the_inference_service_names_format_runtime_protocol_storage_and_account():
    manifest = build_inference_service(
        config(protocol_version="v1", service_account="reader", min_replicas=2, max_replicas=4),
        "gs://bucket/models/penguins/v1/",
    )
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == NAME and manifest["metadata"]["namespace"] == "default"
    assert manifest["metadata"]["annotations"] == {DEPLOYMENT_MODE_ANNOTATION: "RawDeployment"}
    predictor = manifest["spec"]["predictor"]
    assert predictor == {
        "maxReplicas": 4,
        "minReplicas": 2,
        "model": {
            "modelFormat": {"name": "sklearn"},
            "protocolVersion": "v1",
            "resources": {
                "limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "100m", "memory": "512Mi"},
            },
            "runtime": "mlstages-sklearn",
            "storageUri": "gs://bucket/models/penguins/v1",
        },
        "serviceAccountName": "reader",
    }
    # JSON round trip: plain types only, as the Kubernetes client sends it.
    assert json.loads(json.dumps(manifest)) == manifest


def test_serverless_canary_is_in_the_spec_and_the_mode_in_the_annotation():
    manifest = build_inference_service(
        config(deployment_mode="Serverless", canary_traffic_percent=20, min_replicas=0), "gs://b/m"
    )
    assert manifest["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] == "Serverless"
    assert manifest["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert manifest["spec"]["predictor"]["minReplicas"] == 0


def test_an_empty_model_uri_is_refused():
    with pytest.raises(ParameterError, match="parameter model_uri is empty"):
        build_inference_service(config(), " ")


def test_manifest_yaml_keeps_comments_and_loads_back_to_the_same_object():
    manifest = build_inference_service(config(), "gs://b/m")
    text = manifest_yaml(manifest, "line one\nline two")
    assert text.startswith("# line one\n# line two\napiVersion: serving.kserve.io/v1beta1\n")
    assert yaml.safe_load(text) == manifest


# --- can the runtime load the model? ----------------------------------------------------------


def test_the_stock_runtime_refuses_our_model_naming_the_version(model_dir):
    with pytest.raises(ParameterError) as error:
        check_runtime_compatibility(model_dir, "kserve-sklearnserver")
    message = str(error.value)
    import sklearn

    assert message.startswith("parameter runtime='kserve-sklearnserver' cannot serve this model")
    assert f"trained with scikit-learn {sklearn.__version__}" in message
    assert "the stock runtime loads scikit-learn ~=1.5.1" in message
    assert "Deploy with runtime='mlstages-sklearn'" in message


def test_our_runtime_serves_the_model_trained_with_its_scikit_learn(model_dir):
    import sklearn

    notes = check_runtime_compatibility(model_dir, "mlstages-sklearn")
    assert f"the mlstages-sklearn runtime serves scikit-learn {sklearn.__version__}" in notes


def test_the_stock_runtime_takes_a_plain_model_of_its_scikit_learn_and_ours_refuses_it(tmp_path):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], ["a", "a", "b", "b"])
    save_estimator(model, tmp_path, "model")
    metadata = read_metadata(tmp_path)
    metadata["versions"]["scikit-learn"] = "1.5.2"
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    notes = check_runtime_compatibility(tmp_path, "kserve-sklearnserver")
    assert "scikit-learn 1.5.2 fits the stock runtime's ~=1.5.1" in notes
    with pytest.raises(
        ParameterError, match=r"trained with scikit-learn 1.5.2, but the mlstages-sklearn runtime"
    ):
        check_runtime_compatibility(tmp_path, "mlstages-sklearn")
    metadata["versions"]["scikit-learn"] = "1.6.0"
    with pytest.raises(ParameterError, match=r"trained with scikit-learn 1.6.0, and the stock runtime loads"):
        check_runtime_compatibility(metadata, "kserve-sklearnserver")


def test_a_model_without_recorded_versions_or_of_another_framework_is_refused():
    with pytest.raises(InputDataError, match=r"records no scikit-learn version \(versions.scikit-learn\)"):
        check_runtime_compatibility({"framework": "scikit-learn", "versions": {}}, "mlstages-sklearn")
    with pytest.raises(ParameterError, match="this model's framework is 'xgboost'"):
        check_runtime_compatibility({"framework": "xgboost"}, "mlstages-sklearn")


# --- the smoke test ---------------------------------------------------------------------------


def test_sample_rows_puts_complete_rows_first_and_names_missing_columns():
    frame = pd.DataFrame({"a": [None, 1.0, 2.0], "b": ["x", "y", None], "label": [0, 1, 0]})
    picked = sample_rows(frame, ["a", "b"], 2)
    assert list(picked.columns) == ["a", "b"]
    assert picked["b"].tolist() == ["y", "x"] and picked["a"].isna().tolist() == [False, True]
    with pytest.raises(InputDataError, match=r"the test split lacks the model's input column\(s\) 'c'"):
        sample_rows(frame, ["a", "c"], 2)
    with pytest.raises(InputDataError, match="the test split has no rows"):
        sample_rows(frame.iloc[:0], ["a"], 2)


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_the_smoke_test_gets_the_models_own_predictions_from_the_real_server(
    model_server, rows, expected, protocol, features
):
    result = smoke_test(
        model_server.base_url, NAME, protocol, rows, features=features, expected=expected, timeout=10
    )
    assert result.status_code == 200 and result.rows == len(rows) == 5
    assert result.predictions == expected and result.compared
    suffix = "/v1/models/penguins:predict" if protocol == "v1" else "/v2/models/penguins/infer"
    assert result.url == model_server.base_url + suffix


def test_the_smoke_test_fails_when_the_endpoint_serves_other_predictions(
    model_server, rows, expected, features
):
    wrong = ["Gentoo" if e != "Gentoo" else "Adelie" for e in expected]
    with pytest.raises(
        DeployFailed,
        match=r"row 0: served 'Adelie', in-process 'Gentoo'.*the endpoint does not serve this model",
    ):
        smoke_test(model_server.base_url, NAME, "v2", rows, features=features, expected=wrong)


def test_the_smoke_test_reports_http_errors_and_unreachable_endpoints(model_server, rows, features):
    with pytest.raises(DeployFailed, match=r"POST .*/v1/models/other:predict answered HTTP 404"):
        smoke_test(model_server.base_url, "other", "v1", rows, features=features)
    url = closed_port_url()
    with pytest.raises(DeployFailed, match=rf"smoke test: POST {url}/v2/models/penguins/infer failed"):
        smoke_test(url, NAME, "v2", rows, features=features, timeout=2)


def test_regression_predictions_are_compared_with_a_tolerance(model_server, rows, expected, features):
    # The classifier's labels are not numbers: compared as regression values they fail.
    with pytest.raises(DeployFailed, match="the endpoint does not serve this model"):
        smoke_test(
            model_server.base_url, NAME, "v1", rows, features=features, expected=[1.0] * 5, task="regression"
        )


# --- the cluster path, against the Kubernetes API stand-in ----------------------------------------


def test_apply_creates_then_merge_patches_the_existing_object(standin, api):
    first = build_inference_service(
        config(deployment_mode="Serverless", canary_traffic_percent=10), "gs://b/v1"
    )
    assert apply_inference_service(api, first).action == "created"
    second = build_inference_service(config(deployment_mode="Serverless"), "gs://b/v2")
    applied = apply_inference_service(api, second)
    assert applied.action == "patched"
    # The real client sent a POST (409 AlreadyExists) and then a JSON merge patch.
    methods = [(method, content_type) for method, _, content_type, _ in standin.requests]
    assert methods == [
        ("POST", "application/json"),
        ("POST", "application/json"),
        ("PATCH", "application/merge-patch+json"),
    ]
    stored = standin.get(NAME)
    assert stored["spec"]["predictor"]["model"]["storageUri"] == "gs://b/v2"
    assert "canaryTrafficPercent" not in stored["spec"]["predictor"]  # removed by an explicit null
    assert stored["metadata"]["generation"] == 2
    assert applied.object["metadata"]["generation"] == 2
    # Applying the same manifest again changes nothing: one object, same generation.
    assert apply_inference_service(api, second).action == "patched"
    assert standin.get(NAME)["metadata"]["generation"] == 2


def test_a_forbidden_create_names_the_rbac_role(standin, api):
    standin.fail_next("POST", 403, "Forbidden")
    with pytest.raises(DeployFailed) as error:
        apply_inference_service(api, build_inference_service(config(), "gs://b/v1"))
    assert "creating InferenceService default/penguins: the Kubernetes API answered 403 Forbidden" in str(
        error.value
    )
    assert "the Role in manifests/base/rbac.yaml" in str(error.value)


def test_wait_until_ready_polls_until_ready_for_the_current_generation(standin, api):
    apply_inference_service(api, build_inference_service(config(), "gs://b/v1"))
    standin.script_statuses(
        NAME,
        [
            make_status(False, reason="ModelLoading", observed_generation=1),
            make_status(True, url="http://old", observed_generation=0),  # written for an older spec
            make_status(True, url="http://penguins.default.example.com", observed_generation=1),
        ],
    )
    status = wait_until_ready(api, NAME, "default", 5, poll_interval=0.01)
    assert status["url"] == "http://penguins.default.example.com"
    assert len(standin.requests_of("GET")) == 3


def test_ready_false_with_a_reason_times_out_listing_every_condition(standin, api):
    apply_inference_service(api, build_inference_service(config(), "gs://b/v1"))
    standin.set_status(NAME, ready=False, reason="ModelLoadFailed", message="model.joblib: no such file")
    with pytest.raises(DeployFailed) as error:
        wait_until_ready(api, NAME, "default", 0.3, poll_interval=0.05)
    message = str(error.value)
    assert message.startswith("InferenceService default/penguins was not Ready within 0.3 s: ")
    assert "PredictorReady=False (ModelLoadFailed: model.joblib: no such file)" in message
    assert "Ready=False (ModelLoadFailed: model.joblib: no such file)" in message
    assert [c["type"] for c in error.value.conditions] == ["PredictorReady", "Ready"]
    assert len(standin.requests_of("GET")) > 2  # it kept polling through Ready=False


def test_a_status_for_an_older_generation_is_not_taken_as_ready(standin, api):
    apply_inference_service(api, build_inference_service(config(), "gs://b/v1"))
    standin.set_status(NAME, ready=True, url="http://old", observed_generation=0)
    with pytest.raises(
        DeployFailed, match=r"the controller has not yet observed generation 1 \(observed 0\)"
    ):
        wait_until_ready(api, NAME, "default", 0.2, poll_interval=0.05)


def test_waiting_for_an_object_that_is_deleted_fails_at_once(api):
    with pytest.raises(DeployFailed, match="InferenceService default/penguins disappeared while waiting"):
        wait_until_ready(api, NAME, "default", 5)


def test_conditions_and_endpoints_are_described():
    assert describe_conditions([]) == "no conditions reported"
    assert describe_conditions([{"type": "Ready", "status": "True"}]) == "Ready=True"
    status = {"url": "http://external", "address": {"url": "http://internal.svc"}}
    assert endpoint_from_status(status, prefer_internal=True) == "http://internal.svc"
    assert endpoint_from_status(status, prefer_internal=False) == "http://external"
    assert endpoint_from_status({"url": "http://external"}, prefer_internal=True) == "http://external"
    with pytest.raises(DeployFailed, match="reports no endpoint"):
        endpoint_from_status({}, prefer_internal=True)


def test_rollback_patches_the_previous_storage_uri_back_or_deletes(standin, api):
    standin.controller = ready_controller("http://x")
    apply_inference_service(api, build_inference_service(config(), "gs://b/v2"))
    done = rollback(api, NAME, "default", "gs://b/v1", timeout=1, poll_interval=0.05)
    assert done == "rolled back InferenceService default/penguins to gs://b/v1"
    assert standin.get(NAME)["spec"]["predictor"]["model"]["storageUri"] == "gs://b/v1"
    done = rollback(api, NAME, "default", None, timeout=1)
    assert "deleted InferenceService default/penguins" in done
    assert standin.get(NAME) is None


def test_deploy_to_cluster_moves_the_champion_after_ready_and_smoke_test(
    standin, api, registry, model_server, rows, expected, features
):
    standin.controller = ready_controller(model_server.base_url)
    chosen = config()
    manifest = build_inference_service(chosen, registry["v1"])
    result = deploy_to_cluster(
        api,
        manifest,
        chosen,
        registry["v1"],
        rows,
        features=features,
        expected=expected,
        task="classification",
        model_registry=registry["root"],
    )
    assert result.deployed and result.action == "created" and result.target == "cluster"
    assert result.endpoint == model_server.base_url
    assert result.smoke.predictions == expected
    assert read_champion(registry["root"], NAME)["model_uri"] == registry["v1"]
    assert result.previous_champion is None
    summary = render_markdown(result, manifest)
    assert "was deployed and promoted to champion on InferenceService default/penguins" in summary
    assert "Ready" in summary


def test_a_rollout_that_never_gets_ready_rolls_back_to_the_champion(
    standin, api, registry, model_server, rows, expected, features
):
    set_champion(registry["root"], NAME, registry["v1"])
    standin.controller = ready_controller(
        model_server.base_url, failing_storage_uris={registry["v2"]: ("ModelLoadFailed", "no such model")}
    )
    standin.put(build_inference_service(config(), registry["v1"]))
    chosen = config()
    with pytest.raises(DeployFailed) as error:
        deploy_to_cluster(
            api,
            build_inference_service(chosen, registry["v2"]),
            chosen,
            registry["v2"],
            rows,
            features=features,
            expected=expected,
            task="classification",
            model_registry=registry["root"],
        )
    message = str(error.value)
    assert "was not Ready within 1 s: PredictorReady=False (ModelLoadFailed: no such model)" in message
    assert f"rolled back InferenceService default/penguins to {registry['v1']}" in message
    assert message.endswith("the champion pointer was not moved.")
    assert standin.get(NAME)["spec"]["predictor"]["model"]["storageUri"] == registry["v1"]
    assert read_champion(registry["root"], NAME)["model_uri"] == registry["v1"]
    patches = [body for method, _, _, body in standin.requests if method == "PATCH"]
    assert [p["spec"]["predictor"]["model"]["storageUri"] for p in patches] == [
        registry["v2"],
        registry["v1"],
    ]


def test_a_failed_smoke_test_rolls_back_and_keeps_the_champion(
    standin, api, registry, rows, expected, features
):
    set_champion(registry["root"], NAME, registry["v1"])
    standin.controller = ready_controller(closed_port_url())  # Ready, but nothing answers there
    chosen = config()
    with pytest.raises(DeployFailed) as error:
        deploy_to_cluster(
            api,
            build_inference_service(chosen, registry["v2"]),
            chosen,
            registry["v2"],
            rows,
            features=features,
            expected=expected,
            task="classification",
            model_registry=registry["root"],
        )
    assert "smoke test: POST" in str(error.value) and "failed" in str(error.value)
    assert f"rolled back InferenceService default/penguins to {registry['v1']}" in str(error.value)
    assert standin.get(NAME)["spec"]["predictor"]["model"]["storageUri"] == registry["v1"]
    assert read_champion(registry["root"], NAME)["model_uri"] == registry["v1"]


def test_a_first_deploy_that_fails_deletes_what_it_created(standin, api, registry, rows, expected, features):
    standin.controller = ready_controller("http://x", failing_storage_uris={registry["v1"]: ("Failed", "")})
    chosen = config()
    with pytest.raises(
        DeployFailed, match="deleted InferenceService default/penguins: there was no previous model"
    ):
        deploy_to_cluster(
            api,
            build_inference_service(chosen, registry["v1"]),
            chosen,
            registry["v1"],
            rows,
            features=features,
            expected=expected,
            task="classification",
            model_registry=registry["root"],
        )
    assert standin.get(NAME) is None
    assert read_champion(registry["root"], NAME) is None


def test_without_a_champion_an_existing_service_is_restored_not_deleted(
    standin, api, registry, rows, expected, features
):
    standin.controller = ready_controller("http://x", failing_storage_uris={registry["v2"]: ("Failed", "")})
    standin.put(build_inference_service(config(service_account="hand-made"), registry["v1"]))
    chosen = config()
    with pytest.raises(
        DeployFailed, match=f"rolled back InferenceService default/penguins to {registry['v1']}"
    ):
        deploy_to_cluster(
            api,
            build_inference_service(chosen, registry["v2"]),
            chosen,
            registry["v2"],
            rows,
            features=features,
            expected=expected,
            task="classification",
            model_registry="",
        )
    restored = standin.get(NAME)["spec"]["predictor"]
    assert restored["model"]["storageUri"] == registry["v1"] and restored["serviceAccountName"] == "hand-made"


def test_a_failing_rollback_is_reported_with_the_original_failure(
    standin, api, registry, rows, expected, features
):
    set_champion(registry["root"], NAME, registry["v1"])
    standin.controller = ready_controller(
        "http://x", failing_storage_uris={registry["v2"]: ("Failed", "boom")}
    )
    standin.put(build_inference_service(config(), registry["v1"]))
    chosen = config()
    manifest = build_inference_service(chosen, registry["v2"])
    # The deploy's own patch goes through; the rollback's patch gets a 500.
    original = standin._patch

    def fail_second_patch(key, content_type, body):
        if len(standin.requests_of("PATCH")) == 2:
            return 500, {"kind": "Status", "message": "etcd is unavailable", "code": 500}
        return original(key, content_type, body)

    standin._patch = fail_second_patch
    with pytest.raises(DeployFailed) as error:
        deploy_to_cluster(
            api,
            manifest,
            chosen,
            registry["v2"],
            rows,
            features=features,
            expected=expected,
            task="classification",
            model_registry=registry["root"],
        )
    message = str(error.value)
    assert "Ready=False (Failed: boom)" in message
    assert (
        "The rollback failed as well: rolling back InferenceService default/penguins: the Kubernetes API answered 500"
        in message
    )
    assert "etcd is unavailable" in message
    assert read_champion(registry["root"], NAME)["model_uri"] == registry["v1"]


def test_a_canary_is_smoke_tested_but_not_promoted(standin, api, registry, model_server, rows, features):
    set_champion(registry["root"], NAME, registry["v1"])
    standin.controller = ready_controller(model_server.base_url)
    chosen = config(deployment_mode="Serverless", canary_traffic_percent=10)
    result = deploy_to_cluster(
        api,
        build_inference_service(chosen, registry["v2"]),
        chosen,
        registry["v2"],
        rows,
        features=features,
        expected=["not compared"] * 5,
        task="classification",
        model_registry=registry["root"],
    )
    assert not result.deployed and not result.smoke.compared
    assert any("canary at 10% of traffic: the champion pointer does not move" in n for n in result.notes)
    assert read_champion(registry["root"], NAME)["model_uri"] == registry["v1"]


def test_a_local_path_is_not_a_storage_uri_for_a_cluster(api, rows, tmp_path, features):
    chosen = config()
    with pytest.raises(ParameterError, match=r"is not a URI a cluster can read"):
        deploy_to_cluster(
            api,
            build_inference_service(chosen, str(tmp_path)),
            chosen,
            str(tmp_path),
            rows,
            features=features,
            expected=None,
            task="classification",
        )


def test_kubeconfig_configures_the_real_client_with_its_server_and_token(tmp_path):
    with KubernetesStandIn(token="s3cret") as guarded:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "standin", "cluster": {"server": guarded.host}}],
                    "users": [{"name": "deployer", "user": {"token": "s3cret"}}],
                    "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "deployer"}}],
                    "current-context": "standin",
                }
            )
        )
        configured = cluster_api("kubeconfig", str(kubeconfig))
        created = apply_inference_service(configured, build_inference_service(config(), "gs://b/v1"))
        assert created.action == "created"
        with pytest.raises(DeployFailed, match="answered 401 Unauthorized"):
            apply_inference_service(
                custom_objects_api(guarded), build_inference_service(config(), "gs://b/v1")
            )


def test_cluster_configuration_errors_say_where_they_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(
        ParameterError,
        match=r"parameter cluster='in-cluster': cannot configure the Kubernetes client from this pod",
    ):
        cluster_api("in-cluster")
    with pytest.raises(
        ParameterError, match=r"parameter cluster='kubeconfig': cannot configure .* from kubeconfig .*missing"
    ):
        cluster_api("kubeconfig", str(tmp_path / "missing"))


def test_the_stand_in_applies_merge_patches_as_rfc_7386_says():
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    assert merge_patch(target, {"b": {"c": None, "x": 1}, "e": [3], "a": None}) == {
        "b": {"d": 3, "x": 1},
        "e": [3],
    }


# --- the local path -----------------------------------------------------------------------------


def test_without_a_cluster_the_model_is_served_locally_checked_and_promoted(
    registry, rows, expected, features
):
    set_champion(registry["root"], NAME, registry["v1"])
    chosen = DeployConfig(model_name=NAME, protocol_version="v1")
    result = deploy_locally(
        chosen,
        registry["v2"],
        rows,
        features=features,
        expected=expected,
        task="classification",
        model_registry=registry["root"],
    )
    assert result.target == "local" and result.action == "served" and result.deployed
    assert result.notes[0] == NO_CLUSTER_NOTE
    assert result.endpoint.startswith("http://127.0.0.1:")
    assert result.smoke.predictions == expected
    champion = read_champion(registry["root"], NAME)
    assert champion["model_uri"] == registry["v2"] and champion["previous"]["model_uri"] == registry["v1"]
    assert result.previous_champion == registry["v1"]
    summary = render_markdown(result, build_inference_service(chosen, registry["v2"]))
    assert "No cluster configured: served on the local model server instead." in summary
    # The server was stopped when the step ended.
    with pytest.raises(DeployFailed, match="failed"):
        smoke_test(result.endpoint, NAME, "v1", rows, features=features, timeout=2)


def test_inside_a_pod_no_cluster_is_refused_and_the_champion_stays(
    registry, rows, expected, features, monkeypatch
):
    # Every Kubernetes pod has KUBERNETES_SERVICE_HOST: there, a model served on the task's own
    # local server would be served nowhere once the task ends.
    set_champion(registry["root"], NAME, registry["v1"])
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.delenv("MLSTAGES_LOCAL_RUN", raising=False)
    arguments = {"features": features, "expected": expected, "task": "classification"}
    with pytest.raises(ParameterError) as error:
        deploy_locally(
            DeployConfig(model_name=NAME), registry["v2"], rows, model_registry=registry["root"], **arguments
        )
    message = str(error.value)
    assert "\n" not in message and message.startswith("parameter cluster='none' inside a Kubernetes pod")
    assert "set cluster='in-cluster'" in message
    assert read_champion(registry["root"], NAME)["model_uri"] == registry["v1"]
    # A local run inside a pod (a notebook server; `mlstages run` sets it) is served as asked.
    monkeypatch.setenv("MLSTAGES_LOCAL_RUN", "1")
    result = deploy_locally(
        DeployConfig(model_name=NAME), registry["v2"], rows, model_registry=registry["root"], **arguments
    )
    assert result.deployed and read_champion(registry["root"], NAME)["model_uri"] == registry["v2"]


def test_a_model_the_local_server_cannot_load_fails_without_moving_the_champion(
    registry, rows, tmp_path, features
):
    from mlstages.components.serving.process import ServerStartError

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.joblib").write_bytes(pickle.dumps("not a model"))
    (broken / "metadata.json").write_text(json.dumps({"sha256": "0" * 64, "versions": {}}))
    (broken / "evaluation.json").write_text("{}")  # evaluated: what fails is the server's load
    with pytest.raises(ServerStartError):
        deploy_locally(
            DeployConfig(model_name=NAME),
            str(broken),
            rows,
            features=features,
            expected=None,
            task="classification",
            model_registry=registry["root"],
        )
    assert read_champion(registry["root"], NAME) is None
