"""Offline validation of everything in manifests/.

- Core objects (ServiceAccount, Role, RoleBinding, Namespace) with kubernetes-validate --strict.
- The InferenceService and the ServingRuntime against a schema derived from the KServe SDK's typed
  models: every key must be a known camelCase attribute at its level and every value must fit the
  attribute's type (the SDK's ``openapi_types`` / ``attribute_map``, followed recursively).
- kustomize: references resolve; where ``kubectl`` is installed (it carries kustomize), the base
  and the overlays are built and their output validated the same way.
- The dask-kubernetes operator's CRDs in dask/ are the package's own (engine=dask on Kubernetes).
- RBAC: the Role allows InferenceServices only, in one namespace, and every verb deploy sends to the
  Kubernetes API stand-in (tests/k8s_standin.py) is in it. RBAC enforcement itself needs a real
  cluster and is not tested.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstages.components.deploy.cluster import apply_inference_service, rollback, wait_until_ready
from mlstages.components.deploy.config import DeployConfig
from mlstages.components.deploy.manifest import build_inference_service
from mlstages.components.deploy.report import example_inference_service_yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
OVERLAYS = ("overlays/namespace", "overlays/bucket")
CORE_KINDS = {"ServiceAccount", "Role", "RoleBinding", "Namespace", "CustomResourceDefinition"}
KSERVE_KINDS = {"InferenceService": "V1beta1InferenceService", "ServingRuntime": "V1alpha1ServingRuntime"}
# Kubernetes quantities are strings or numbers, although the SDK types them as strings.
QUANTITY_MAPS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests")}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.rglob("*.yaml") if p.name != "kustomization.yaml")


# --- a schema from the KServe SDK's typed models ----------------------------------------------


def sdk_class(name: str) -> type | None:
    """The typed model called ``name`` in the KServe SDK or the kubernetes client, or None for a
    type the SDK names but does not ship (those are left unchecked)."""
    import importlib

    import kserve.models
    import kubernetes.client.models

    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, name):
            return getattr(module, name)
    # Some KServe classes (KnativeURL, KnativeCondition, ...) are not exported from kserve.models.
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    try:
        return getattr(importlib.import_module(f"kserve.models.{snake}"), name)
    except (ImportError, AttributeError):
        return None


def schema_errors(
    value: Any, type_name: str, path: str = "", owner: tuple[str, str] | None = None
) -> list[str]:
    """Where ``value`` does not fit the SDK type ``type_name``: unknown keys, wrong types."""
    if value is None:
        return []
    if match := re.fullmatch(r"list\[(.*)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [e for i, item in enumerate(value) for e in schema_errors(item, match[1], f"{path}[{i}]")]
    if match := re.fullmatch(r"dict\(str, (.*)\)", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping, got {type(value).__name__}"]
        item_type = "quantity" if owner in QUANTITY_MAPS else match[1]
        return [e for k, v in value.items() for e in schema_errors(v, item_type, f"{path}.{k}")]
    simple = {
        "str": (str,),
        "int": (int,),
        "bool": (bool,),
        "float": (int, float),
        "datetime": (str,),
        "quantity": (str, int, float),
    }
    if type_name in simple:
        bad_bool = type_name in ("int", "float", "quantity") and isinstance(value, bool)
        if not isinstance(value, simple[type_name]) or bad_bool:
            return [f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"]
        return []
    if type_name == "object":
        return []
    cls = sdk_class(type_name)
    if cls is None:
        return []
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} object, got {type(value).__name__}"]
    by_json_key = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in by_json_key:
            errors.append(f"{path}.{key}: not an attribute of {type_name}")
            continue
        attr = by_json_key[key]
        errors += schema_errors(item, cls.openapi_types[attr], f"{path}.{key}", (type_name, attr))
    return errors


def kserve_schema_errors(document: dict[str, Any]) -> list[str]:
    kind = document.get("kind")
    errors = schema_errors(document, KSERVE_KINDS[kind], kind)
    version = "v1alpha1" if kind == "ServingRuntime" else "v1beta1"
    if document.get("apiVersion") != f"serving.kserve.io/{version}":
        errors.append(f"{kind}: apiVersion {document.get('apiVersion')!r} is not serving.kserve.io/{version}")
    return errors


def test_the_sdk_schema_rejects_unknown_keys_snake_case_and_wrong_types():
    good = build_inference_service(DeployConfig(model_name="penguins"), "gs://b/m")
    assert kserve_schema_errors(good) == []
    bad = build_inference_service(DeployConfig(model_name="penguins"), "gs://b/m")
    predictor = bad["spec"]["predictor"]
    predictor["model"]["storage_uri"] = predictor["model"].pop("storageUri")
    predictor["minReplicas"] = "1"
    predictor["model"]["modelFormat"]["flavour"] = "x"
    predictor["model"]["resources"]["limits"]["cpu"] = ["1"]
    assert sorted(kserve_schema_errors(bad)) == [
        "InferenceService.spec.predictor.minReplicas: expected int, got str '1'",
        "InferenceService.spec.predictor.model.modelFormat.flavour: not an attribute of V1beta1ModelFormat",
        "InferenceService.spec.predictor.model.resources.limits.cpu: expected quantity, got list ['1']",
        "InferenceService.spec.predictor.model.storage_uri: not an attribute of V1beta1ModelSpec",
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"protocol_version": "v1", "runtime": "kserve-sklearnserver"},
        {"deployment_mode": "Serverless", "canary_traffic_percent": 25, "min_replicas": 0, "max_replicas": 3},
    ],
)
def test_every_inference_service_deploy_builds_fits_the_sdk_schema(overrides):
    document = build_inference_service(DeployConfig(model_name="penguins", **overrides), "gs://b/models/p/v1")
    assert kserve_schema_errors(document) == []


# --- the files ----------------------------------------------------------------------------------


def test_the_example_inference_service_is_the_generators_output_and_fits_the_schema():
    path = MANIFESTS / "inference-service.example.yaml"
    assert path.read_text(encoding="utf-8") == example_inference_service_yaml(), (
        "manifests/inference-service.example.yaml is stale: regenerate it with "
        ".venv/bin/python -m mlstages.components.deploy.deploy > manifests/inference-service.example.yaml"
    )
    (document,) = load_documents(path)
    assert kserve_schema_errors(document) == []


def test_every_manifest_is_a_known_kind_and_valid():
    seen = set()
    for path in manifest_files():
        for document in load_documents(path):
            kind = document.get("kind")
            seen.add(kind)
            where = path.relative_to(MANIFESTS)
            if kind in KSERVE_KINDS:
                assert kserve_schema_errors(document) == [], where
            else:
                assert kind in CORE_KINDS, f"{where}: unexpected kind {kind!r}"
                assert validate_core(document) == [], where
    assert {
        "ServingRuntime",
        "InferenceService",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Namespace",
    } <= seen


def validate_core(document: dict[str, Any]) -> list[str]:
    """kubernetes-validate --strict on one core object: the messages of what is wrong."""
    try:
        import kubernetes_validate
    except ImportError:  # the dev extra carries it; a missing validator must not pass silently
        pytest.fail("kubernetes-validate is not installed: pip install kubernetes-validate (dev extra)")
    try:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


def test_strict_validation_catches_a_misspelt_field():
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "x"},
        "rules": [],
    }
    assert validate_core(role) == []
    role["rulez"] = role.pop("rules")
    assert validate_core(role)


def test_the_serving_runtime_serves_what_deploy_asks_for():
    (runtime,) = load_documents(MANIFESTS / "base" / "serving-runtime.yaml")
    manifest = build_inference_service(DeployConfig(model_name="penguins"), "gs://b/m")
    model = manifest["spec"]["predictor"]["model"]
    assert runtime["kind"] == "ServingRuntime"
    assert runtime["metadata"]["name"] == model["runtime"] == "mlstages-sklearn"
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats
    assert {"v1", "v2"} <= set(runtime["spec"]["protocolVersions"])


# --- RBAC ---------------------------------------------------------------------------------------


def rbac_documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in load_documents(MANIFESTS / "base" / "rbac.yaml")}


def test_the_role_allows_inference_services_only_in_one_namespace():
    documents = rbac_documents()
    assert set(documents) == {"ServiceAccount", "Role", "RoleBinding"}  # no ClusterRole
    rules = {
        (tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in documents["Role"]["rules"]
    }
    assert rules == {
        (("serving.kserve.io",), ("inferenceservices",)): {
            "get", "list", "watch", "create", "patch", "update", "delete",
        },
        (("serving.kserve.io",), ("inferenceservices/status",)): {"get"},
    }  # fmt: skip
    binding = documents["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "mlstages-deployer",
    }
    assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [("ServiceAccount", "mlstages-deployer")]
    assert documents["ServiceAccount"]["metadata"]["name"] == "mlstages-deployer"
    assert all(doc.get("kind") != "ClusterRole" for p in manifest_files() for doc in load_documents(p))


def test_every_verb_deploy_sends_is_in_the_role():
    """Runs create, 409 + patch, status polling, rollback and delete against the Kubernetes API
    stand-in and maps each HTTP method to its RBAC verb. RBAC enforcement is not tested here."""
    from k8s_standin import KubernetesStandIn, custom_objects_api, ready_controller

    verbs_for = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
    allowed = set(rbac_documents()["Role"]["rules"][0]["verbs"])
    config = DeployConfig(model_name="penguins", cluster="kubeconfig")
    with KubernetesStandIn() as standin:
        standin.controller = ready_controller("http://127.0.0.1:9")
        api = custom_objects_api(standin)
        apply_inference_service(api, build_inference_service(config, "gs://b/v1"))
        apply_inference_service(api, build_inference_service(config, "gs://b/v2"))
        wait_until_ready(api, "penguins", "default", 1, poll_interval=0.05)
        rollback(api, "penguins", "default", "gs://b/v1", timeout=1, poll_interval=0.05)
        rollback(api, "penguins", "default", None, timeout=1)
        sent = {verbs_for[method] for method, *_ in standin.requests}
    assert sent == {"get", "create", "patch", "delete"}
    assert sent <= allowed


def test_the_model_reader_has_no_rbac_and_no_api_token():
    (account,) = load_documents(MANIFESTS / "base" / "model-reader.yaml")
    assert account["kind"] == "ServiceAccount" and account["metadata"]["name"] == "mlstages-model-reader"
    assert account["automountServiceAccountToken"] is False
    assert DeployConfig(model_name="p").service_account == "mlstages-model-reader"
    subjects = [s["name"] for s in rbac_documents()["RoleBinding"]["subjects"]]
    assert "mlstages-model-reader" not in subjects


# --- kustomize ----------------------------------------------------------------------------------


def kustomization(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))


def resolved_objects(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization lists (resources only, recursively), checking that every
    reference resolves; patches are checked to target one of them."""
    spec = kustomization(directory)
    assert spec["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and spec["kind"] == "Kustomization"
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        assert target.exists(), f"{directory}/kustomization.yaml: resource {entry} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").exists(), f"{entry} is a folder without kustomization.yaml"
            objects += resolved_objects(target)
        else:
            objects += load_documents(target)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for patch in spec.get("patches", []):
        path = directory / patch["path"]
        assert path.exists(), f"{directory}/kustomization.yaml: patch {patch['path']} does not exist"
        for document in load_documents(path):
            key = (document["kind"], document["metadata"]["name"])
            assert key in names, f"patch {patch['path']} targets {key}, which is not among the resources"
    return objects


@pytest.mark.parametrize("folder", ["base", *OVERLAYS])
def test_kustomize_references_resolve(folder):
    objects = resolved_objects(MANIFESTS / folder)
    kinds = {o["kind"] for o in objects}
    assert {"ServingRuntime", "ServiceAccount", "Role", "RoleBinding"} <= kinds
    assert "InferenceService" not in kinds  # the deploy step applies those


def test_the_namespace_overlay_builds_on_the_base():
    overlay = kustomization(MANIFESTS / "overlays/namespace")["resources"]
    assert "../../base" in overlay


def test_the_overlays_set_one_namespace_and_the_bucket_overlay_annotates_both_accounts():
    namespace = kustomization(MANIFESTS / "overlays/namespace")["namespace"]
    (namespace_object,) = load_documents(MANIFESTS / "overlays/namespace/namespace.yaml")
    assert namespace_object["kind"] == "Namespace" and namespace_object["metadata"]["name"] == namespace
    bucket = kustomization(MANIFESTS / "overlays/bucket")
    assert bucket["resources"] == ["../namespace"]
    patched = {
        document["metadata"]["name"]: document["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        for patch in bucket["patches"]
        for document in load_documents(MANIFESTS / "overlays/bucket" / patch["path"])
    }
    assert set(patched) == {"mlstages-model-reader", "mlstages-deployer"}
    assert all(value.endswith(".iam.gserviceaccount.com") for value in patched.values())


def kubectl_kustomize(folder: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (which carries kustomize) is not installed; references were checked without it")
    result = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


@pytest.mark.parametrize("folder", ["base", *OVERLAYS])
def test_kustomize_builds_and_every_object_it_outputs_is_valid(folder):
    objects = kubectl_kustomize(folder)
    for document in objects:
        if document["kind"] in KSERVE_KINDS:
            assert kserve_schema_errors(document) == []
        else:
            assert validate_core(document) == [], document["kind"]
    if folder == "base":
        return
    namespace = kustomization(MANIFESTS / "overlays/namespace")["namespace"]
    for document in objects:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, document["kind"]
    (binding,) = [d for d in objects if d["kind"] == "RoleBinding"]
    assert binding["subjects"][0]["namespace"] == namespace
    if folder == "overlays/bucket":
        accounts = {d["metadata"]["name"]: d for d in objects if d["kind"] == "ServiceAccount"}
        for name in ("mlstages-model-reader", "mlstages-deployer"):
            assert "iam.gke.io/gcp-service-account" in accounts[name]["metadata"]["annotations"]
        assert accounts["mlstages-model-reader"]["automountServiceAccountToken"] is False


def test_the_dask_crds_are_the_operator_packages_own_and_the_task_may_only_manage_its_cluster():
    dask_kubernetes = pytest.importorskip("dask_kubernetes")
    crds = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"
    for name in ("daskcluster", "daskworkergroup"):
        vendored = (MANIFESTS / "dask" / f"{name}-crd.yaml").read_text(encoding="utf-8")
        assert vendored == (crds / f"{name}.yaml").read_text(encoding="utf-8"), (
            f"manifests/dask/{name}-crd.yaml differs from dask-kubernetes' own: copy it again"
        )
    documents = {doc["kind"]: doc for doc in load_documents(MANIFESTS / "dask" / "rbac.yaml")}
    assert set(documents) == {"Role", "RoleBinding"}
    groups = {g for rule in documents["Role"]["rules"] for g in rule["apiGroups"]}
    assert groups == {"kubernetes.dask.org", ""}
    core = [r for r in documents["Role"]["rules"] if r["apiGroups"] == [""]]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in core)  # the operator makes the pods
    assert documents["RoleBinding"]["roleRef"]["name"] == documents["Role"]["metadata"]["name"]
    kinds = {o["kind"] for o in resolved_objects(MANIFESTS / "dask")}
    assert kinds == {"CustomResourceDefinition", "Role", "RoleBinding"}


def test_the_readme_describes_every_file():
    readme = (MANIFESTS / "README.md").read_text(encoding="utf-8")
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        relative = path.relative_to(MANIFESTS)
        named = str(relative) if relative.parent == Path(".") else f"{relative.parent}/"
        assert f"`{named}`" in readme, f"manifests/README.md does not mention {named}"
    assert "stand-in" in readme and "has **not** run against a real cluster" in readme
