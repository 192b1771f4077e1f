"""Deployment: the KServe InferenceService for an exported model, applied to a cluster with
rollback, or served on the local model server when there is no cluster.

The InferenceService is built with the KServe SDK's typed models and serialized with
``kserve.ApiClient().sanitize_for_serialization`` (the only serializer that writes the camelCase
keys the API server expects). On a cluster the manifest is applied with the ``kubernetes``
client's CustomObjectsApi (create; patch when it already exists), the step waits for the Ready
condition, smoke-tests the endpoint with a real request in the declared protocol and compares the
answers with the model's own predictions; if any of that fails it rolls back to the previous
champion and the champion pointer does not move. Without a cluster the same smoke test runs
against mlstages' model server on 127.0.0.1.

Tested: the cluster path runs with the real ``kubernetes`` client against a stand-in for the
Kubernetes API (tests/k8s_standin.py) whose InferenceService status the tests set, and the smoke
test against mlstages' real model server. Not run against a real cluster: KServe's webhooks and
controller (runtime selection, readiness as it reports it, canary traffic splitting), the storage
initializer, ingress/Knative networking to status.url, RBAC enforcement, and in-cluster client
configuration (manifests/README.md lists the same).

Deployment modes: KServe 0.15 renamed RawDeployment to Standard and Serverless to Knative and
still accepts the old names, which older controllers also understand; both spellings are allowed.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlstages.components.common.errors import InputDataError, MlstagesError, ParameterError, require_choice

if TYPE_CHECKING:
    import pandas as pd
    from kubernetes.client import CustomObjectsApi

    from mlstages.components.common.model_card import InputFeature

# --- vocabulary -------------------------------------------------------------------------------

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
MODEL_FORMAT = "sklearn"

MLSTAGES_RUNTIME = "mlstages-sklearn"
STOCK_RUNTIME = "kserve-sklearnserver"
RUNTIMES = (MLSTAGES_RUNTIME, STOCK_RUNTIME)
PROTOCOLS = ("v1", "v2")
# RawDeployment / Serverless are the names every KServe release accepts; Standard / Knative are
# their names since KServe 0.15.
RAW_MODES = ("RawDeployment", "Standard")
SERVERLESS_MODES = ("Serverless", "Knative")
DEPLOYMENT_MODES = (*RAW_MODES, *SERVERLESS_MODES)
NO_CLUSTER = "none"
CLUSTER_MODES = (NO_CLUSTER, "in-cluster", "kubeconfig")

# The stock kserve-sklearnserver image pins scikit-learn ~=1.5.1 (>= 1.5.1, < 1.6).
STOCK_RUNTIME_SKLEARN = ((1, 5, 1), (1, 6))
STOCK_RUNTIME_SKLEARN_TEXT = "~=1.5.1"

NO_CLUSTER_NOTE = "no cluster configured: served on the local model server instead"
MAX_BODY_IN_MESSAGE = 500

# Kubernetes names: an InferenceService name is a DNS-1035 label (KServe requires a leading
# letter); namespaces are DNS-1123 labels; service accounts DNS-1123 subdomains.
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")


class DeployFailed(MlstagesError):
    """The InferenceService did not become Ready, or its endpoint failed the smoke test, or the
    cluster refused a request. ``conditions`` holds the last status conditions seen."""

    def __init__(self, message: str, conditions: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.conditions = [dict(c) for c in conditions]


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployConfig:
    """How to deploy a model.

    model_name: the InferenceService's name, and the model's name in the registry and in the
        endpoint paths (a DNS-1035 label: lowercase letters, digits, '-', starting with a letter).
    namespace: the Kubernetes namespace of the InferenceService.
    runtime: mlstages-sklearn (the ServingRuntime in manifests/, mlstages' model server with the
        versions the suite trains with) or kserve-sklearnserver (KServe's stock runtime, which
        pins scikit-learn ~=1.5.1 and lacks mlstages' transformer classes: most models are refused).
    protocol_version: v1 (/v1/models/NAME:predict) or v2 (Open Inference Protocol REST).
    service_account: serviceAccountName of the predictor pods: the account that reads the model
        from the bucket (workload identity), not the deploy step's own account.
    deployment_mode: RawDeployment / Standard (a Deployment) or Serverless / Knative.
    min_replicas, max_replicas: predictor replicas; 0 minimum (scale to zero) needs Serverless.
    cpu_request, cpu_limit, memory_request, memory_limit: Kubernetes quantities of the predictor.
    canary_traffic_percent: None for a full rollout; 0-100 sends that share of traffic to the new
        model and keeps the rest on the previous revision (Serverless only). A canary is not
        promoted: the champion pointer moves only on a full rollout.
    ready_timeout_seconds: how long to wait for Ready=True.
    poll_interval_seconds: how often to read the status while waiting.
    smoke_test_timeout: seconds for the smoke-test request.
    smoke_test_rows: rows of the test split sent in the smoke test.
    cluster: none (serve on the local model server), in-cluster (the pod's service account) or
        kubeconfig (the file named by ``kubeconfig``, or the default one).
    kubeconfig: path of the kubeconfig file for cluster=kubeconfig; empty for the default.
    """

    model_name: str
    namespace: str = "default"
    runtime: str = MLSTAGES_RUNTIME
    protocol_version: str = "v2"
    service_account: str = "mlstages-model-reader"
    deployment_mode: str = "RawDeployment"
    min_replicas: int = 1
    max_replicas: int = 1
    cpu_request: str = "100m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    canary_traffic_percent: int | None = None
    ready_timeout_seconds: float = 600.0
    poll_interval_seconds: float = 2.0
    smoke_test_timeout: float = 30.0
    smoke_test_rows: int = 5
    cluster: str = NO_CLUSTER
    kubeconfig: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.model_name, str) or not _DNS_1035_LABEL.match(self.model_name):
            raise ParameterError(
                f"parameter model_name={self.model_name!r} is not a valid InferenceService name: use "
                "lowercase letters, digits and '-', start with a letter, end with a letter or digit, "
                "at most 63 characters"
            )
        if not isinstance(self.namespace, str) or not _DNS_1123_LABEL.match(self.namespace):
            raise ParameterError(
                f"parameter namespace={self.namespace!r} is not a Kubernetes namespace name: use "
                "lowercase letters, digits and '-', at most 63 characters"
            )
        if (
            not isinstance(self.service_account, str)
            or len(self.service_account) > 253
            or not _DNS_1123_SUBDOMAIN.match(self.service_account)
        ):
            raise ParameterError(
                f"parameter service_account={self.service_account!r} is not a Kubernetes service "
                "account name: use lowercase letters, digits, '-' and '.'"
            )
        require_choice("runtime", self.runtime, RUNTIMES)
        require_choice("protocol_version", self.protocol_version, PROTOCOLS)
        require_choice("deployment_mode", self.deployment_mode, DEPLOYMENT_MODES)
        require_choice("cluster", self.cluster, CLUSTER_MODES)
        for name in ("min_replicas", "max_replicas", "smoke_test_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ParameterError(f"parameter {name}={value!r} must be a whole number, 0 or more")
        if self.smoke_test_rows < 1:
            raise ParameterError("parameter smoke_test_rows=0: the smoke test needs at least 1 row")
        if self.max_replicas < 1 or self.max_replicas < self.min_replicas:
            raise ParameterError(
                f"parameter max_replicas={self.max_replicas} must be at least 1 and at least "
                f"min_replicas={self.min_replicas}"
            )
        if self.min_replicas == 0 and self.serverless is False:
            raise ParameterError(
                f"parameter min_replicas=0 (scale to zero) needs deployment_mode Serverless or "
                f"Knative; {self.deployment_mode} keeps at least 1 replica"
            )
        if self.canary_traffic_percent is not None:
            value = self.canary_traffic_percent
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise ParameterError(
                    f"parameter canary_traffic_percent={value!r} must be a whole number from 0 to "
                    "100 (or none for a full rollout)"
                )
            if not self.serverless:
                raise ParameterError(
                    f"parameter canary_traffic_percent={value} needs deployment_mode Serverless or "
                    f"Knative: KServe splits traffic between revisions only there, and "
                    f"{self.deployment_mode} has one revision"
                )
        for name in ("ready_timeout_seconds", "poll_interval_seconds", "smoke_test_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ParameterError(f"parameter {name}={value!r} must be a number of seconds above 0")
        self._check_resources()
        if self.cluster != "kubeconfig" and self.kubeconfig:
            raise ParameterError(
                f"parameter kubeconfig={self.kubeconfig!r} is only used with cluster='kubeconfig' "
                f"(cluster={self.cluster!r})"
            )

    def _check_resources(self) -> None:
        from kubernetes.utils import parse_quantity

        amounts = {}
        for name in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _QUANTITY.match(value):
                raise ParameterError(
                    f"parameter {name}={value!r} is not a Kubernetes quantity "
                    "(for example 500m or 2 for CPU, 512Mi or 2Gi for memory)"
                )
            amounts[name] = parse_quantity(value)
        for resource in ("cpu", "memory"):
            if amounts[f"{resource}_limit"] < amounts[f"{resource}_request"]:
                raise ParameterError(
                    f"parameter {resource}_limit={getattr(self, f'{resource}_limit')!r} is below "
                    f"{resource}_request={getattr(self, f'{resource}_request')!r}: a limit must be at "
                    "least the request"
                )

    @property
    def serverless(self) -> bool:
        return self.deployment_mode in SERVERLESS_MODES

    @property
    def promotes(self) -> bool:
        """Whether a successful rollout makes this model the champion (no partial canary)."""
        return self.canary_traffic_percent is None or self.canary_traffic_percent == 100


# --- the manifest -----------------------------------------------------------------------------


def build_inference_service(config: DeployConfig, storage_uri: str) -> dict[str, Any]:
    """The InferenceService for ``storage_uri`` (the registry version holding model.joblib), as the
    plain dict the Kubernetes API takes: built from the KServe SDK's typed models."""
    import kserve
    from kubernetes.client import V1ObjectMeta, V1ResourceRequirements

    if not isinstance(storage_uri, str) or not storage_uri.strip():
        raise ParameterError("parameter model_uri is empty: give the model's registry version URI")
    predictor = kserve.V1beta1PredictorSpec(
        min_replicas=config.min_replicas,
        max_replicas=config.max_replicas,
        service_account_name=config.service_account,
        canary_traffic_percent=config.canary_traffic_percent,
        model=kserve.V1beta1ModelSpec(
            # The SDK's default container name is "", which the API would keep; KServe names the
            # container itself when none is given.
            name=None,
            model_format=kserve.V1beta1ModelFormat(name=MODEL_FORMAT),
            runtime=config.runtime,
            protocol_version=config.protocol_version,
            storage_uri=storage_uri.rstrip("/"),
            resources=V1ResourceRequirements(
                requests={"cpu": config.cpu_request, "memory": config.memory_request},
                limits={"cpu": config.cpu_limit, "memory": config.memory_limit},
            ),
        ),
    )
    service = kserve.V1beta1InferenceService(
        api_version=API_VERSION,
        kind=KIND,
        metadata=V1ObjectMeta(
            name=config.model_name,
            namespace=config.namespace,
            labels={
                "app.kubernetes.io/name": config.model_name,
                "app.kubernetes.io/component": "predictor",
                "app.kubernetes.io/managed-by": "mlstages",
            },
            annotations={DEPLOYMENT_MODE_ANNOTATION: config.deployment_mode},
        ),
        spec=kserve.V1beta1InferenceServiceSpec(predictor=predictor),
    )
    return kserve.ApiClient().sanitize_for_serialization(service)


# The storage schemes KServe's storage initializer downloads from.
CLUSTER_STORAGE_SCHEMES = ("gs", "s3", "pvc", "https", "http", "hdfs", "webhdfs", "hf", "oci")


def check_cluster_storage_uri(storage_uri: str) -> str:
    """Refuse a storageUri a cluster cannot read (a local path from a local registry)."""
    scheme = urllib.parse.urlsplit(storage_uri).scheme.lower()
    if scheme not in CLUSTER_STORAGE_SCHEMES:
        raise ParameterError(
            f"parameter model_uri={storage_uri!r} is not a URI a cluster can read: give the gs:// "
            "(or s3://, pvc://, https://) URI of the registry version, not a local path"
        )
    return storage_uri


def manifest_yaml(manifest: Mapping[str, Any], header: str = "") -> str:
    """The manifest as YAML (keys in the order built), with optional comment lines first."""
    import yaml

    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + yaml.safe_dump(dict(manifest), sort_keys=False, default_flow_style=False)


def storage_uri_of(manifest: Mapping[str, Any]) -> str | None:
    return ((((manifest.get("spec") or {}).get("predictor") or {}).get("model")) or {}).get("storageUri")


# --- can the runtime load this model? ---------------------------------------------------------


def _version_tuple(text: str) -> tuple[int, ...]:
    numbers = []
    for part in str(text).split("."):
        digits = re.match(r"\d+", part)
        if not digits:
            break
        numbers.append(int(digits.group()))
    return tuple(numbers)


def check_runtime_compatibility(model: str | os.PathLike | Mapping[str, Any], runtime: str) -> list[str]:
    """Refuse (ParameterError naming ``runtime``) a model the runtime cannot load.

    ``model`` is the model directory or its card (as a mapping). The mlstages-sklearn runtime
    serves with the suite's own libraries: the model's scikit-learn must be the one installed
    here. The stock kserve-sklearnserver pins scikit-learn ~=1.5.1, which the suite (scikit-learn
    1.8 or newer) never trains with, so the version check alone refuses it; its image also lacks the
    suite's estimators. Returns notes on what was checked, for the summary.
    """
    import sklearn

    from mlstages.components.common.model_card import read_metadata

    require_choice("runtime", runtime, RUNTIMES)
    metadata = dict(model) if isinstance(model, Mapping) else read_metadata(model)
    framework = metadata.get("framework", "scikit-learn")
    if framework not in ("scikit-learn", "sklearn"):
        raise ParameterError(
            f"parameter runtime={runtime!r} serves scikit-learn models; this model's framework is "
            f"{framework!r}"
        )
    trained_with = (metadata.get("versions") or {}).get("scikit-learn")
    if not trained_with:
        raise InputDataError(
            "the model's metadata.json records no scikit-learn version (versions.scikit-learn): "
            "export it with mlstages' train step so the serving runtime can be checked"
        )
    notes = [f"trained with scikit-learn {trained_with}"]
    if runtime == MLSTAGES_RUNTIME:
        if trained_with != sklearn.__version__:
            raise ParameterError(
                f"parameter runtime={runtime!r}: the model was trained with scikit-learn "
                f"{trained_with}, but the {MLSTAGES_RUNTIME} runtime (this suite's image) has "
                f"scikit-learn {sklearn.__version__}; a pickled model may not load in another "
                "version: retrain it with this suite version or deploy with the matching suite image"
            )
        notes.append(f"the {MLSTAGES_RUNTIME} runtime serves scikit-learn {sklearn.__version__}")
        return notes
    low, high = STOCK_RUNTIME_SKLEARN
    if not low <= _version_tuple(trained_with) < high:
        raise ParameterError(
            f"parameter runtime={runtime!r} cannot serve this model: it was trained with scikit-learn "
            f"{trained_with}, and the stock runtime loads scikit-learn {STOCK_RUNTIME_SKLEARN_TEXT}. "
            f"Deploy with runtime={MLSTAGES_RUNTIME!r} (manifests/base/serving-runtime.yaml), which "
            "serves it with the libraries it was trained with."
        )
    notes.append(f"scikit-learn {trained_with} fits the stock runtime's {STOCK_RUNTIME_SKLEARN_TEXT}")
    return notes


# --- the smoke test ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeTestResult:
    url: str
    protocol: str
    rows: int
    status_code: int
    seconds: float
    predictions: list[Any]
    compared: bool


def sample_rows(test_df: pd.DataFrame, columns: Sequence[str], count: int) -> pd.DataFrame:
    """The first ``count`` rows of the model's input columns, complete rows first, so the smoke
    test sends real data; rows with missing values fill up the rest (they are real traffic too)."""
    missing = [c for c in columns if c not in test_df.columns]
    if missing:
        raise InputDataError(
            f"the test split lacks the model's input column(s) {', '.join(map(repr, missing))}: "
            "pass the test split the model was evaluated on"
        )
    if len(test_df) == 0:
        raise InputDataError("the test split has no rows: the smoke test needs sample rows")
    import numpy as np

    frame = test_df[list(columns)]
    complete = frame.notna().all(axis=1).to_numpy()
    positions = np.concatenate([np.flatnonzero(complete), np.flatnonzero(~complete)])[:count]
    return frame.iloc[positions].reset_index(drop=True)


def smoke_test(
    url: str,
    name: str,
    protocol: str,
    rows: pd.DataFrame,
    *,
    features: Sequence[InputFeature],
    expected: Sequence[Any] | None = None,
    task: str = "classification",
    timeout: float = 30.0,
) -> SmokeTestResult:
    """Send ``rows`` to the endpoint at ``url`` in ``protocol`` (v1 or v2), built by the one serving
    client from the model card's ``features``, and check the answer: HTTP 200, one prediction per
    row and, given ``expected`` (the model's own predictions), the same predictions (exactly for
    classes, to the client's tolerance for regression).

    Raises DeployFailed saying what was sent where and what came back.
    """
    import requests

    from mlstages.components.serving import client

    require_choice("protocol_version", protocol, PROTOCOLS)
    target = client.predict_url(url, name, protocol)
    session = requests.Session()
    # A loopback endpoint is reached directly even when the environment names a proxy.
    session.trust_env = not client.is_loopback(target)
    try:
        reply = client.post(session, target, client.request_body(rows, features, protocol), timeout)
    finally:
        session.close()
    if not reply.ok:
        raise DeployFailed(f"smoke test: {reply.problem}")
    shown = json.dumps(reply.answer)[: client.MAX_BODY_IN_MESSAGE]
    try:
        predictions = client.predictions_of(reply.answer, protocol)
    except ValueError as exc:
        raise DeployFailed(
            f"smoke test: POST {target} answered without predictions ({exc}): {shown}"
        ) from exc
    if len(predictions) != len(rows):
        raise DeployFailed(
            f"smoke test: POST {target} returned {len(predictions)} prediction(s) for {len(rows)} row(s): {shown}"
        )
    if expected is not None:
        found = client.mismatches(predictions, list(expected), task != "regression")
        if found:
            raise DeployFailed(
                f"smoke test: POST {target}: {'; '.join(found[:3])}: the endpoint does not serve this model"
            )
    return SmokeTestResult(
        url=target,
        protocol=protocol,
        rows=len(rows),
        status_code=int(reply.status_code or 0),
        seconds=reply.seconds,
        predictions=predictions,
        compared=expected is not None,
    )


# --- the cluster ------------------------------------------------------------------------------


def cluster_api(cluster: str, kubeconfig: str = "") -> CustomObjectsApi:
    """A CustomObjectsApi for ``cluster``: in-cluster (the pod's service account token) or
    kubeconfig (``kubeconfig`` or the default file)."""
    from kubernetes import client, config

    require_choice("cluster", cluster, CLUSTER_MODES[1:])
    configuration = client.Configuration()
    try:
        if cluster == "in-cluster":
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=kubeconfig or None, client_configuration=configuration)
    except config.ConfigException as exc:
        where = (
            "this pod (KUBERNETES_SERVICE_HOST and a service account token are needed)"
            if cluster == "in-cluster"
            else f"kubeconfig {kubeconfig or '(the default ~/.kube/config)'}"
        )
        raise ParameterError(
            f"parameter cluster={cluster!r}: cannot configure the Kubernetes client from {where}: {exc}"
        ) from exc
    return client.CustomObjectsApi(client.ApiClient(configuration))


def _api_error(exc: Exception, action: str) -> DeployFailed:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "")
    body = getattr(exc, "body", "") or ""
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        message = str(body)[:MAX_BODY_IN_MESSAGE]
    hint = ""
    if status in (401, 403):
        hint = " (the deploy step's service account needs the Role in manifests/base/rbac.yaml in this namespace)"
    return DeployFailed(f"{action}: the Kubernetes API answered {status} {reason}: {message}{hint}")


def get_inference_service(api: CustomObjectsApi, name: str, namespace: str) -> dict[str, Any] | None:
    """The InferenceService, or None when there is none."""
    from kubernetes.client.exceptions import ApiException

    try:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _api_error(exc, f"reading InferenceService {namespace}/{name}") from exc


@dataclass(frozen=True)
class Applied:
    """What apply_inference_service did ("created" or "patched") and the object it returned."""

    action: str
    object: dict[str, Any]


def patch_body(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch that makes an existing InferenceService match ``manifest``: its metadata
    labels and annotations and its spec, with explicit nulls for optional fields the manifest
    leaves out (a merge patch keeps any key it does not mention)."""
    spec = json.loads(json.dumps(manifest["spec"]))
    predictor = spec.setdefault("predictor", {})
    predictor.setdefault("canaryTrafficPercent", None)
    metadata = manifest.get("metadata") or {}
    return {
        "metadata": {k: metadata[k] for k in ("labels", "annotations") if k in metadata},
        "spec": spec,
    }


def apply_inference_service(api: CustomObjectsApi, manifest: Mapping[str, Any]) -> Applied:
    """Create the InferenceService; when it exists (409 Conflict), merge-patch it to the manifest.
    Applying the same manifest twice leaves one object with that spec."""
    from kubernetes.client.exceptions import ApiException

    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    try:
        created = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dict(manifest))
        return Applied("created", created)
    except ApiException as exc:
        if exc.status != 409:
            raise _api_error(exc, f"creating InferenceService {namespace}/{name}") from exc
    try:
        patched = api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch_body(manifest)
        )
    except ApiException as exc:
        raise _api_error(exc, f"patching the existing InferenceService {namespace}/{name}") from exc
    return Applied("patched", patched)


def describe_conditions(conditions: Sequence[Mapping[str, Any]]) -> str:
    """type=status (reason: message) for every condition; "no conditions reported" if none."""
    if not conditions:
        return "no conditions reported"
    parts = []
    for condition in conditions:
        text = f"{condition.get('type', '?')}={condition.get('status', '?')}"
        detail = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
        parts.append(f"{text} ({detail})" if detail else text)
    return "; ".join(parts)


def _ready(obj: Mapping[str, Any]) -> tuple[bool, list[dict[str, Any]], str]:
    status = obj.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    # A status written for an older spec (before this patch) says nothing about the new one.
    if generation is not None and observed is not None and observed < generation:
        return (
            False,
            conditions,
            f"the controller has not yet observed generation {generation} (observed {observed})",
        )
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is not None and str(ready.get("status")) == "True":
        return True, conditions, ""
    return False, conditions, ""


def wait_until_ready(
    api: CustomObjectsApi,
    name: str,
    namespace: str,
    timeout: float,
    *,
    poll_interval: float = 2.0,
) -> dict[str, Any]:
    """Poll the InferenceService until its Ready condition is True for its current generation;
    return its status. Ready=False (with a reason) is polled until ``timeout``, because KServe
    reports transient failures (image pulls, storage initializer retries) the same way; then
    DeployFailed lists every condition."""
    deadline = time.monotonic() + timeout
    conditions: list[dict[str, Any]] = []
    waiting_for = ""
    while True:
        obj = get_inference_service(api, name, namespace)
        if obj is None:
            raise DeployFailed(f"InferenceService {namespace}/{name} disappeared while waiting for Ready")
        ready, conditions, waiting_for = _ready(obj)
        if ready:
            return dict(obj.get("status") or {})
        if time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(poll_interval, deadline - time.monotonic())))
    extra = f"; {waiting_for}" if waiting_for else ""
    raise DeployFailed(
        f"InferenceService {namespace}/{name} was not Ready within {timeout:g} s: "
        f"{describe_conditions(conditions)}{extra}",
        conditions,
    )


def endpoint_from_status(status: Mapping[str, Any], prefer_internal: bool) -> str:
    """The endpoint URL: status.address.url (inside the cluster) or status.url (through the
    ingress), whichever is preferred and present."""
    address = (status.get("address") or {}).get("url") if isinstance(status.get("address"), dict) else None
    external = status.get("url")
    order = (address, external) if prefer_internal else (external, address)
    for url in order:
        if isinstance(url, str) and url:
            return url
    raise DeployFailed(
        "the InferenceService is Ready but reports no endpoint (status.url and status.address.url "
        "are empty): check the cluster's ingress configuration"
    )


def delete_inference_service(api: CustomObjectsApi, name: str, namespace: str) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status != 404:
            raise _api_error(exc, f"deleting InferenceService {namespace}/{name}") from exc


def rollback(
    api: CustomObjectsApi,
    name: str,
    namespace: str,
    previous_storage_uri: str | None,
    *,
    timeout: float,
    poll_interval: float = 2.0,
    previous_manifest: Mapping[str, Any] | None = None,
) -> str:
    """Put the previous model back: restore ``previous_manifest`` (the InferenceService as it was,
    when there was one) or patch storageUri back to ``previous_storage_uri`` (no canary), and wait
    for Ready; with neither, delete the new InferenceService. Returns what was done."""
    if previous_manifest is not None or previous_storage_uri:
        if previous_manifest is not None:
            body = patch_body(previous_manifest)
        else:
            body = {"spec": {"predictor": {"canaryTrafficPercent": None, "model": {}}}}
        if previous_storage_uri:
            body["spec"].setdefault("predictor", {}).setdefault("model", {})["storageUri"] = (
                previous_storage_uri
            )
        from kubernetes.client.exceptions import ApiException

        try:
            api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)
        except ApiException as exc:
            raise _api_error(exc, f"rolling back InferenceService {namespace}/{name}") from exc
        wait_until_ready(api, name, namespace, timeout, poll_interval=poll_interval)
        restored = storage_uri_of(body) or "its previous spec"
        return f"rolled back InferenceService {namespace}/{name} to {restored}"
    delete_inference_service(api, name, namespace)
    return f"deleted InferenceService {namespace}/{name}: there was no previous model to roll back to"


# --- the whole step ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployResult:
    """What deploy did.

    target: "cluster" or "local".
    endpoint: the endpoint the smoke test used (locally: the model server, stopped afterwards).
    deployed: the model is now the champion (a full rollout that passed the smoke test).
    action: created / patched (cluster) or served (local).
    notes: what was decided and why, for the summary.
    """

    target: str
    model_name: str
    namespace: str
    model_uri: str
    endpoint: str
    deployed: bool
    action: str
    smoke: SmokeTestResult
    champion: dict[str, Any] | None
    previous_champion: str | None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _previous_champion(model_registry: str, model_name: str) -> dict[str, Any] | None:
    from mlstages.components.common.registry import read_champion

    return read_champion(model_registry, model_name) if model_registry else None


def _promote(config: DeployConfig, model_registry: str, model_uri: str, notes: list[str]) -> dict | None:
    from mlstages.components.common.registry import set_champion

    if not config.promotes:
        notes.append(
            f"canary at {config.canary_traffic_percent}% of traffic: the champion pointer does not move; "
            "re-run without canary_traffic_percent (or with 100) to promote"
        )
        return None
    if not model_registry:
        notes.append("no model_registry given: no champion pointer was moved")
        return None
    pointer = set_champion(model_registry, config.model_name, model_uri)
    notes.append(f"champion pointer moved to {pointer['version']}")
    return pointer


def deploy_to_cluster(
    api: CustomObjectsApi,
    manifest: Mapping[str, Any],
    config: DeployConfig,
    model_uri: str,
    rows: pd.DataFrame,
    *,
    features: Sequence[InputFeature],
    expected: Sequence[Any] | None,
    task: str,
    model_registry: str = "",
) -> DeployResult:
    """Apply the InferenceService, wait for Ready, smoke-test it, and move the champion pointer.

    The rollback target is read BEFORE anything is applied: the champion pointer's model (when a
    registry is given), else the storageUri of an InferenceService that already existed. If the
    InferenceService does not become Ready or fails the smoke test, it is rolled back (or deleted
    when this step created it and there is nothing to go back to), the champion does not move,
    and DeployFailed says what failed and what the rollback did.
    """
    name, namespace = config.model_name, config.namespace
    check_cluster_storage_uri(storage_uri_of(manifest) or "")
    notes: list[str] = []
    champion = _previous_champion(model_registry, name)
    existing = get_inference_service(api, name, namespace)
    previous_uri = champion["model_uri"] if champion else None
    previous_manifest = None
    if existing is not None:
        previous_manifest = {k: existing.get(k) for k in ("metadata", "spec")}
        if previous_uri is None:
            previous_uri = storage_uri_of(existing)
    applied = apply_inference_service(api, manifest)
    notes.append(f"{applied.action} InferenceService {namespace}/{name}")
    conditions: list[dict[str, Any]] = []
    try:
        status = wait_until_ready(
            api, name, namespace, config.ready_timeout_seconds, poll_interval=config.poll_interval_seconds
        )
        conditions = list(status.get("conditions") or [])
        endpoint = endpoint_from_status(status, prefer_internal=config.cluster == "in-cluster")
        # A partial canary splits traffic with the previous revision: any answer may come from
        # either model, so only the answers' shape is checked.
        smoke = smoke_test(
            endpoint,
            name,
            config.protocol_version,
            rows,
            features=features,
            expected=expected if config.promotes else None,
            task=task,
            timeout=config.smoke_test_timeout,
        )
    except DeployFailed as failure:
        try:
            done = rollback(
                api,
                name,
                namespace,
                previous_uri,
                timeout=config.ready_timeout_seconds,
                poll_interval=config.poll_interval_seconds,
                previous_manifest=previous_manifest,
            )
        except DeployFailed as second:
            raise DeployFailed(
                f"{failure}. The rollback failed as well: {second}. The champion pointer was not moved.",
                failure.conditions,
            ) from failure
        raise DeployFailed(
            f"{failure}. {done}; the champion pointer was not moved.", failure.conditions
        ) from failure
    pointer = _promote(config, model_registry, model_uri, notes)
    return DeployResult(
        target="cluster",
        model_name=name,
        namespace=namespace,
        model_uri=model_uri,
        endpoint=endpoint,
        deployed=pointer is not None or (config.promotes and not model_registry),
        action=applied.action,
        smoke=smoke,
        champion=pointer,
        previous_champion=champion["model_uri"] if champion else None,
        conditions=conditions,
        notes=notes,
    )


def deploy_locally(
    config: DeployConfig,
    model_uri: str,
    rows: pd.DataFrame,
    *,
    features: Sequence[InputFeature],
    expected: Sequence[Any] | None,
    task: str,
    model_registry: str = "",
) -> DeployResult:
    """No cluster: serve the model on mlstages' model server on 127.0.0.1, run the same smoke
    test against it, stop the server, and move the champion pointer."""
    notes = [NO_CLUSTER_NOTE]
    champion = _previous_champion(model_registry, config.model_name)
    from mlstages.components.serving.process import serve_in_background

    with serve_in_background(model_uri, config.model_name) as server:
        endpoint = str(server.base_url)
        smoke = smoke_test(
            endpoint,
            config.model_name,
            config.protocol_version,
            rows,
            features=features,
            expected=expected,
            task=task,
            timeout=config.smoke_test_timeout,
        )
    notes.append(f"the local model server at {endpoint} answered the smoke test and was stopped")
    if config.canary_traffic_percent is not None:
        notes.append("canary_traffic_percent applies on a cluster only: locally the model was served alone")
    local_config = config if config.promotes else _full_rollout(config)
    pointer = _promote(local_config, model_registry, model_uri, notes)
    return DeployResult(
        target="local",
        model_name=config.model_name,
        namespace=config.namespace,
        model_uri=model_uri,
        endpoint=endpoint,
        deployed=pointer is not None or not model_registry,
        action="served",
        smoke=smoke,
        champion=pointer,
        previous_champion=champion["model_uri"] if champion else None,
        notes=notes,
    )


def _full_rollout(config: DeployConfig) -> DeployConfig:
    from dataclasses import replace

    return replace(config, canary_traffic_percent=None)


# --- the summary ------------------------------------------------------------------------------


def render_markdown(result: DeployResult, manifest: Mapping[str, Any], checks: Sequence[str] = ()) -> str:
    """The step's summary: where the model went, the smoke test, the champion, the notes."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    where = (
        f"InferenceService {result.namespace}/{result.model_name}"
        if result.target == "cluster"
        else "the local model server (no cluster configured)"
    )
    if result.champion:
        state = "deployed and promoted to champion"
    elif result.deployed:
        state = "deployed (no model_registry: no champion pointer to move)"
    else:
        state = "deployed as a canary, not promoted to champion"
    lines = [
        "# Deploy",
        "",
        markdown_text(f"{result.model_uri} was {state} on {where}."),
        "",
    ]
    if result.target == "local":
        lines += [markdown_text(f"{NO_CLUSTER_NOTE.capitalize()}."), ""]
    predictor = (manifest.get("spec") or {}).get("predictor") or {}
    model = predictor.get("model") or {}
    rows = [
        {"setting": "endpoint", "value": result.endpoint},
        {"setting": "action", "value": result.action},
        {"setting": "runtime", "value": model.get("runtime")},
        {"setting": "protocol", "value": model.get("protocolVersion")},
        {
            "setting": "deployment mode",
            "value": (manifest.get("metadata") or {}).get("annotations", {}).get(DEPLOYMENT_MODE_ANNOTATION),
        },
        {"setting": "replicas", "value": f"{predictor.get('minReplicas')}-{predictor.get('maxReplicas')}"},
        {"setting": "service account", "value": predictor.get("serviceAccountName")},
        {"setting": "previous champion", "value": result.previous_champion or "(none)"},
        {"setting": "champion now", "value": (result.champion or {}).get("model_uri", "(unchanged)")},
    ]
    if predictor.get("canaryTrafficPercent") is not None:
        rows.append({"setting": "canary traffic", "value": f"{predictor['canaryTrafficPercent']}%"})
    lines += [markdown_table(rows, ["setting", "value"]), ""]
    smoke = result.smoke
    verdict = "the same predictions as the model" if smoke.compared else "one prediction per row"
    lines += [
        "## Smoke test",
        "",
        markdown_text(
            f"POST {smoke.url} ({smoke.protocol}) with {smoke.rows} row(s) of the test split: "
            f"HTTP {smoke.status_code} in {smoke.seconds * 1000:.0f} ms, {verdict}."
        ),
        "",
    ]
    if result.conditions:
        lines += [
            "## Status conditions",
            "",
            markdown_table(result.conditions, ["type", "status", "reason", "message"]),
            "",
        ]
    notes = [*checks, *(n for n in result.notes if n != NO_CLUSTER_NOTE)]  # said above already
    if notes:
        lines += ["## Notes", ""] + [f"- {markdown_text(n)}" for n in notes] + [""]
    return "\n".join(lines)


# --- the example in manifests/ ----------------------------------------------------------------

EXAMPLE_CONFIG = {"model_name": "penguins", "namespace": "mlstages"}
EXAMPLE_STORAGE_URI = "gs://mlstages-models/models/penguins/20250101T000000Z-0123abcd"
EXAMPLE_HEADER = (
    "An InferenceService as mlstages deploy writes it, for a model published to the registry\n"
    "gs://mlstages-models/models. Generated by build_inference_service: do not edit; regenerate with\n"
    "  .venv/bin/python -m mlstages.components.deploy.deploy > manifests/inference-service.example.yaml\n"
    "The deploy step writes the same object for every model it deploys (its inference_service\n"
    "output) and applies it; to apply this one by hand, change storageUri to a published version."
)


def example_inference_service_yaml() -> str:
    """manifests/inference-service.example.yaml: a test checks the file equals this."""
    return manifest_yaml(
        build_inference_service(DeployConfig(**EXAMPLE_CONFIG), EXAMPLE_STORAGE_URI), EXAMPLE_HEADER
    )


if __name__ == "__main__":
    import sys

    sys.stdout.write(example_inference_service_yaml())
