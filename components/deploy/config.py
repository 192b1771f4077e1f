"""Deploy's vocabulary (KServe's group, runtimes, protocols, deployment modes) and its checked
settings (DeployConfig)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlstages.components.common.errors import MlstagesError, ParameterError, require_choice

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


# Every Kubernetes pod has this variable. In a pod, cluster='none' would serve the model inside the
# deploy pod, gone when the task ends, and still make it the champion: deploy refuses, unless
# LOCAL_RUN_ENV=1 says the run is a local one that happens to be in a pod (a notebook server;
# `mlstages run` sets it for its tasks).
KUBERNETES_ENV = "KUBERNETES_SERVICE_HOST"


LOCAL_RUN_ENV = "MLSTAGES_LOCAL_RUN"


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


def check_local_serving(environ: Mapping[str, str]) -> None:
    """Refuse cluster='none' inside a Kubernetes pod, unless the environment says the run is local."""
    if environ.get(KUBERNETES_ENV) and environ.get(LOCAL_RUN_ENV) != "1":
        raise ParameterError(
            "parameter cluster='none' inside a Kubernetes pod would serve the model only in this "
            "task's own pod, gone when it ends, and make it the champion: set cluster='in-cluster' to "
            f"deploy an InferenceService on this cluster (or {LOCAL_RUN_ENV}=1 if this is a local run "
            "inside a pod); the champion pointer was not moved"
        )


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
        model and keeps the rest on the model serving now: in Serverless mode through the
        predictor's canaryTrafficPercent (Knative revisions), in RawDeployment/Standard mode
        through spec.canary where the installed KServe defines it (manifest.uses_spec_canary). A
        canary is not promoted: the champion pointer moves only on a full rollout.
    ready_timeout_seconds: how long to wait for Ready=True.
    poll_interval_seconds: how often to read the status while waiting.
    smoke_test_timeout: seconds for the smoke-test request.
    smoke_test_rows: rows of the test split sent in the smoke test.
    cluster: none (serve on the local model server), in-cluster (the pod's service account) or
        kubeconfig (the file named by ``kubeconfig``, or the default one).
    kubeconfig: path of the kubeconfig file for cluster=kubeconfig; empty for the default.
    kubeflow_model_registry: the REST address of a Kubeflow Model Registry (https://HOST:PORT)
        where the version is registered before it is deployed (kubeflow_registry.py); empty
        (the default) registers nothing.
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
    kubeflow_model_registry: str = ""

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
            from mlstages.components.deploy.manifest import kserve_has_spec_canary

            # Standard mode splits traffic through spec.canary, which only newer KServe defines.
            if not self.serverless and not kserve_has_spec_canary():
                raise ParameterError(
                    f"parameter canary_traffic_percent={value} needs deployment_mode Serverless or "
                    f"Knative: the installed KServe has no spec.canary, so {self.deployment_mode} "
                    "has one revision"
                )
        for name in ("ready_timeout_seconds", "poll_interval_seconds", "smoke_test_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ParameterError(f"parameter {name}={value!r} must be a number of seconds above 0")
        self._check_resources()
        from mlstages.components.deploy.kubeflow_registry import check_address

        check_address(self.kubeflow_model_registry)
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
