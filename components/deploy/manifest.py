"""The KServe InferenceService manifest, and whether the chosen runtime can load the model."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlstages.components.common.errors import InputDataError, ParameterError, require_choice

if TYPE_CHECKING:
    pass
from mlstages.components.deploy.config import (
    API_VERSION,
    DEPLOYMENT_MODE_ANNOTATION,
    KIND,
    MLSTAGES_RUNTIME,
    MODEL_FORMAT,
    RUNTIMES,
    STOCK_RUNTIME_SKLEARN,
    STOCK_RUNTIME_SKLEARN_TEXT,
    DeployConfig,
)

# The spec.canary entry's predictor name (KServe requires one, other than the stable predictor's).
CANARY_PREDICTOR_NAME = "canary"


def kserve_has_spec_canary() -> bool:
    """Whether the installed KServe SDK's InferenceServiceSpec defines ``canary`` (KServe 0.21
    does): a list of {predictor, trafficPercent} beside the stable predictor, which KServe's
    validation accepts in Standard (RawDeployment) mode only."""
    try:
        import kserve
    except ImportError:
        return False
    return "canary" in getattr(kserve.V1beta1InferenceServiceSpec, "openapi_types", {})


def uses_spec_canary(config: DeployConfig) -> bool:
    """A partial canary in RawDeployment/Standard mode: spec.canary. Serverless keeps
    predictor.canaryTrafficPercent (Knative splits between revisions); 100% is a full rollout."""
    percent = config.canary_traffic_percent
    return percent is not None and percent < 100 and not config.serverless


def _model_spec(config: DeployConfig, storage_uri: str) -> Any:
    import kserve
    from kubernetes.client import V1ResourceRequirements

    return kserve.V1beta1ModelSpec(
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
    )


def build_inference_service(
    config: DeployConfig,
    storage_uri: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    stable_uri: str | None = None,
) -> dict[str, Any]:
    """The InferenceService for ``storage_uri`` (the registry version holding model.joblib), as the
    plain dict the Kubernetes API takes: built from the KServe SDK's typed models. ``labels`` and
    ``annotations`` are added to the metadata (a Kubeflow Model Registry's ids and address).

    A partial canary in RawDeployment/Standard mode (``uses_spec_canary``) keeps ``stable_uri``
    (the model serving now) as spec.predictor and puts this model in spec.canary with the traffic
    share; without ``stable_uri`` (not known yet, before the cluster is read) the manifest is the
    full rollout's, and deploy_to_cluster builds the canary form once it knows the stable model."""
    import kserve
    from kubernetes.client import V1ObjectMeta

    if not isinstance(storage_uri, str) or not storage_uri.strip():
        raise ParameterError("parameter model_uri is empty: give the model's registry version URI")
    canary = None
    model_uri = storage_uri
    if uses_spec_canary(config) and stable_uri:
        canary = [
            kserve.V1beta1CanarySpec(
                # KServe requires a name other than the stable predictor's; it names the canary's
                # Deployment {isvc}-canary-predictor. Replicas are the stable predictor's share.
                predictor=kserve.V1beta1PredictorSpec(
                    name=CANARY_PREDICTOR_NAME,
                    service_account_name=config.service_account,
                    model=_model_spec(config, storage_uri),
                ),
                traffic_percent=config.canary_traffic_percent,
            )
        ]
        model_uri = stable_uri
    predictor = kserve.V1beta1PredictorSpec(
        min_replicas=config.min_replicas,
        max_replicas=config.max_replicas,
        service_account_name=config.service_account,
        canary_traffic_percent=config.canary_traffic_percent if config.serverless else None,
        model=_model_spec(config, model_uri),
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
                **(labels or {}),
            },
            annotations={DEPLOYMENT_MODE_ANNOTATION: config.deployment_mode, **(annotations or {})},
        ),
        spec=kserve.V1beta1InferenceServiceSpec(predictor=predictor, canary=canary)
        if canary
        else kserve.V1beta1InferenceServiceSpec(predictor=predictor),
    )
    return kserve.ApiClient().sanitize_for_serialization(service)


def with_stable_model(
    config: DeployConfig, manifest: Mapping[str, Any], stable_uri: str | None
) -> dict[str, Any]:
    """``manifest`` (built without a stable model) in the spec.canary form, now that the model
    serving is known; unchanged when the config is no spec.canary rollout."""
    if not uses_spec_canary(config):
        return dict(manifest)
    candidate = candidate_uri_of(manifest) or ""
    if not stable_uri:
        raise ParameterError(
            f"parameter canary_traffic_percent={config.canary_traffic_percent} in "
            f"{config.deployment_mode} mode sends that share of traffic to this model and the rest to "
            f"the model serving now, and InferenceService {config.namespace}/{config.model_name} has "
            "none (no champion, no existing InferenceService): deploy without canary_traffic_percent first"
        )
    if stable_uri.rstrip("/") == candidate.rstrip("/"):
        raise ParameterError(
            f"parameter canary_traffic_percent={config.canary_traffic_percent}: {candidate} is already the "
            "model serving; a canary of it would split traffic between the same model"
        )
    metadata = manifest.get("metadata") or {}
    return build_inference_service(
        config,
        candidate,
        labels=metadata.get("labels"),
        annotations=metadata.get("annotations"),
        stable_uri=stable_uri,
    )


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
    """The stable predictor's model (in the spec.canary form, the model the canary is tried beside)."""
    return ((((manifest.get("spec") or {}).get("predictor") or {}).get("model")) or {}).get("storageUri")


def candidate_uri_of(manifest: Mapping[str, Any]) -> str | None:
    """The model a manifest rolls out: its canary's in the spec.canary form, else its predictor's."""
    canaries = (manifest.get("spec") or {}).get("canary") or []
    if canaries:
        return (((canaries[0].get("predictor") or {}).get("model")) or {}).get("storageUri")
    return storage_uri_of(manifest)


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
