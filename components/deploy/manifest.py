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


def build_inference_service(
    config: DeployConfig,
    storage_uri: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The InferenceService for ``storage_uri`` (the registry version holding model.joblib), as the
    plain dict the Kubernetes API takes: built from the KServe SDK's typed models. ``labels`` and
    ``annotations`` are added to the metadata (a Kubeflow Model Registry's ids and address)."""
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
                **(labels or {}),
            },
            annotations={DEPLOYMENT_MODE_ANNOTATION: config.deployment_mode, **(annotations or {})},
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
