"""Canaries in KServe's current form: spec.canary in RawDeployment/Standard mode.

The installed KServe SDK (0.21) defines InferenceServiceSpec.canary, a list of {predictor,
trafficPercent} beside the stable predictor; KServe's validation accepts it in Standard mode only
(RawDeployment is normalized to Standard first). Serverless keeps predictor.canaryTrafficPercent.
Manifests are built with the SDK's typed models and read back through them here; the cluster path
runs with the real kubernetes client against the Kubernetes API STAND-IN (tests/k8s_standin.py),
which has no KServe controller: traffic splitting and the canary's Deployment are not exercised.
"""

from __future__ import annotations

import kserve
import pytest
from k8s_standin import KubernetesStandIn, custom_objects_api, ready_controller
from serving_helpers import export_penguins_model

from mlstages.components.common import storage
from mlstages.components.common.artifacts import load_estimator
from mlstages.components.common.errors import ParameterError
from mlstages.components.common.model_card import ModelCard
from mlstages.components.common.registry import read_champion, set_champion
from mlstages.components.deploy import manifest as manifest_module
from mlstages.components.deploy.cluster import patch_body
from mlstages.components.deploy.config import DeployConfig
from mlstages.components.deploy.deploy import deploy_to_cluster
from mlstages.components.deploy.manifest import (
    CANARY_PREDICTOR_NAME,
    build_inference_service,
    candidate_uri_of,
    kserve_has_spec_canary,
    storage_uri_of,
    uses_spec_canary,
)
from mlstages.components.deploy.smoke import sample_rows
from mlstages.components.serving.process import serve_in_background

pytestmark = pytest.mark.usefixtures("no_external_network")

NAME = "penguins"
FAST = {"poll_interval_seconds": 0.05, "ready_timeout_seconds": 5.0, "smoke_test_timeout": 10.0}


def config(**overrides) -> DeployConfig:
    return DeployConfig(**{"model_name": NAME, "cluster": "kubeconfig", **FAST, **overrides})


def check_keys(data, klass: str = "V1beta1InferenceServiceSpec") -> None:
    """Every key of ``data`` is a field the SDK's typed model ``klass`` defines, recursively
    through the KServe classes (the Kubernetes ones, such as resources, are the kubernetes
    client's and not walked)."""
    import re

    model = getattr(kserve, klass)
    by_json = {json_name: model.openapi_types[name] for name, json_name in model.attribute_map.items()}
    for key, value in data.items():
        assert key in by_json, f"{klass} has no field {key!r}"
        kind = by_json[key]
        inner = re.fullmatch(r"list\[(.*)\]", kind)
        if inner and inner.group(1).startswith("V1beta1"):
            for item in value:
                check_keys(item, inner.group(1))
        elif kind.startswith("V1beta1"):
            check_keys(value, kind)


def test_the_installed_kserve_defines_spec_canary():
    assert kserve_has_spec_canary()
    with pytest.raises(AssertionError, match="V1beta1CanarySpec has no field 'canaryTrafficPercent'"):
        check_keys({"canary": [{"canaryTrafficPercent": 10}]})
    assert kserve.V1beta1CanarySpec.attribute_map == {
        "predictor": "predictor",
        "traffic_percent": "trafficPercent",
    }


@pytest.mark.parametrize("mode", ["RawDeployment", "Standard"])
def test_a_standard_mode_canary_puts_the_new_model_in_spec_canary(mode):
    chosen = config(deployment_mode=mode, canary_traffic_percent=20)
    assert uses_spec_canary(chosen)
    manifest = build_inference_service(chosen, "gs://b/m/v2", stable_uri="gs://b/m/v1")
    spec = manifest["spec"]
    assert "canaryTrafficPercent" not in spec["predictor"]
    assert spec["predictor"]["model"]["storageUri"] == "gs://b/m/v1"
    assert spec["canary"][0]["trafficPercent"] == 20
    canary = spec["canary"][0]["predictor"]
    assert canary["name"] == CANARY_PREDICTOR_NAME != spec["predictor"].get("name")
    assert canary["model"]["storageUri"] == "gs://b/m/v2"
    # KServe refuses replicas settings on a canary: it takes a share of the stable predictor's.
    assert "minReplicas" not in canary and "maxReplicas" not in canary
    assert (storage_uri_of(manifest), candidate_uri_of(manifest)) == ("gs://b/m/v1", "gs://b/m/v2")
    check_keys(spec)


def test_serverless_and_full_rollouts_keep_the_old_form():
    serverless = build_inference_service(
        config(deployment_mode="Serverless", canary_traffic_percent=20),
        "gs://b/m/v2",
        stable_uri="gs://b/m/v1",
    )
    assert "canary" not in serverless["spec"]
    assert serverless["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert serverless["spec"]["predictor"]["model"]["storageUri"] == "gs://b/m/v2"
    full = build_inference_service(
        config(canary_traffic_percent=100), "gs://b/m/v2", stable_uri="gs://b/m/v1"
    )
    assert "canary" not in full["spec"] and "canaryTrafficPercent" not in full["spec"]["predictor"]
    assert full["spec"]["predictor"]["model"]["storageUri"] == "gs://b/m/v2"
    # A later full rollout removes a canary entry by an explicit null in the merge patch.
    assert patch_body(full)["spec"]["canary"] is None


def test_without_spec_canary_in_kserve_standard_mode_refuses_a_canary(monkeypatch):
    monkeypatch.setattr(manifest_module, "kserve_has_spec_canary", lambda: False)
    with pytest.raises(
        ParameterError, match="needs deployment_mode Serverless or Knative: the installed KServe"
    ):
        config(canary_traffic_percent=10)
    assert config(deployment_mode="Serverless", canary_traffic_percent=10).canary_traffic_percent == 10


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return export_penguins_model(
        tmp_path_factory.mktemp("canary") / "model",
        "species",
        "classification",
        "logistic_regression",
        {"logistic_regression": {"C": [1.0]}},
    )


def test_on_the_stand_in_a_standard_canary_is_tried_beside_the_champion(gcs_bucket, model_dir):
    root = f"{gcs_bucket}/models"
    uris = {}
    for version in ("v1", "v2"):
        uris[version] = f"{root}/{NAME}/{version}"
        storage.upload_dir(str(model_dir), uris[version])
        # Only an evaluated version can lead (the registry's rule).
        storage.write_bytes(f"{uris[version]}/evaluation.json", b'{"metrics": {"accuracy": 0.99}}')
    set_champion(root, NAME, uris["v1"])
    card = ModelCard.read(model_dir)
    rows = sample_rows(load_penguins_rows(), card.input_names, 3)
    chosen = config(canary_traffic_percent=10)
    with serve_in_background(str(model_dir), NAME) as server, KubernetesStandIn() as standin:
        standin.controller = ready_controller(server.base_url)
        result = deploy_to_cluster(
            custom_objects_api(standin),
            build_inference_service(chosen, uris["v2"]),
            chosen,
            uris["v2"],
            rows,
            features=card.input_features,
            expected=load_estimator(model_dir, "model").predict(rows).tolist(),
            task=card.task,
            model_registry=root,
        )
        stored = standin.get(NAME)
    assert stored["spec"]["predictor"]["model"]["storageUri"] == uris["v1"]
    assert stored["spec"]["canary"][0]["predictor"]["model"]["storageUri"] == uris["v2"]
    assert result.manifest["spec"]["canary"] == stored["spec"]["canary"]
    assert not result.deployed and not result.smoke.compared
    assert read_champion(root, NAME)["model_uri"] == uris["v1"]


def test_a_standard_canary_with_nothing_serving_is_refused_before_anything_is_applied(gcs_bucket):
    chosen = config(canary_traffic_percent=10)
    with KubernetesStandIn() as standin:
        with pytest.raises(ParameterError, match="has none .*deploy without canary_traffic_percent first"):
            deploy_to_cluster(
                custom_objects_api(standin),
                build_inference_service(chosen, "gs://b/m/v2"),
                chosen,
                "gs://b/m/v2",
                None,
                features=(),
                expected=None,
                task="classification",
            )
        assert [method for method, *_ in standin.requests] == ["GET"]


def load_penguins_rows():
    from palmerpenguins import load_penguins

    return load_penguins()
