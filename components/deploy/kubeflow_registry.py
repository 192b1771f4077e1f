"""Registration of the deployed version in a Kubeflow Model Registry, through its own PyPI client
(``model-registry``, the ``kubeflow-registry`` extra; the deploy image has it).

Deploy calls ``register_version`` when ``kubeflow_model_registry`` names the registry's REST
address (``https://HOST:PORT``); empty (the default) registers nothing. What is registered:

- the registered model: the model name (found by name, created when absent, owner ``mlstages``);
- the model version: the registry version of the model URI (``<UTC time>-<sha256 prefix>``), with
  the model card's facts and evaluate's test metrics as custom properties (``metric.<name>``);
- its model artifact: the ``gs://`` URI KServe's storageUri also points at, format ``sklearn``
  with the scikit-learn version from the card, and the source run (``model_source_*``: the KFP
  run id as KFP's own registry integration records it, or the local run folder).

The InferenceService keeps ``storageUri`` = the gs:// URI and carries the registry's ids as labels
(``modelregistry.kubeflow.org/registered-model-id``, ``.../model-version-id``: the names the
registry's InferenceService controller reads) and the registry's address as an annotation.

Order: registration runs before anything is served or applied, and a failure fails the step with
one line naming the address: nothing is deployed and the champion pointer does not move. A version
that is registered already with the same URI (a retried task) is reused; with another URI it is
refused. A later failed rollout leaves the version registered (it was blessed; the registry
records versions, the champion pointer says which one serves).

Tested: the real client's requests against a stand-in of the registry's REST API whose bodies are
validated with the client's own OpenAPI models (tests/model_registry_standin.py). Not run against
a real Kubeflow Model Registry: its server-side validation and storage, authentication with a
bearer token, TLS with a custom CA, and its InferenceService controller acting on the labels.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlstages.components.common.errors import ParameterError
from mlstages.components.deploy.config import MODEL_FORMAT, DeployFailed

if TYPE_CHECKING:
    from mlstages.components.common.model_card import ModelCard

PARAMETER = "kubeflow_model_registry"


AUTHOR = "mlstages"


# The labels and annotation the Kubeflow Model Registry's InferenceService controller reads.
LABEL_PREFIX = "modelregistry.kubeflow.org"


REGISTERED_MODEL_ID_LABEL = f"{LABEL_PREFIX}/registered-model-id"


MODEL_VERSION_ID_LABEL = f"{LABEL_PREFIX}/model-version-id"


URL_ANNOTATION = f"{LABEL_PREFIX}/url"


# An InferenceService patched by a deploy without registration must not keep an older deploy's ids.
LABELS = (REGISTERED_MODEL_ID_LABEL, MODEL_VERSION_ID_LABEL)


ANNOTATIONS = (URL_ANNOTATION,)


# KFP's own convention for a model made by a pipeline run (KEP-12020, the registry's examples).
KFP_SOURCE = ("kfp", "pipelinerun")


LOCAL_SOURCE = ("mlstages", "local-run")


# Where a pod's namespace is: the source group of a KFP run.
POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


REMOTE_ARTIFACT_SCHEMES = ("gs", "s3", "minio", "https", "http")


def check_address(address: str) -> str:
    """The registry's address without a trailing '/': http(s)://HOST[:PORT], nothing else; empty
    stays empty (registration off)."""
    if not isinstance(address, str):
        raise ParameterError(f"parameter {PARAMETER}={address!r} must be a string")
    text = address.strip().rstrip("/")
    if not text:
        return ""
    parts = urllib.parse.urlsplit(text)
    try:
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as exc:
        raise ParameterError(f"parameter {PARAMETER}={address!r} has a bad port: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise ParameterError(
            f"parameter {PARAMETER}={address!r} is not a registry address: give the REST address of "
            "the Kubeflow Model Registry as https://HOST:PORT (or http:// inside a cluster), or '' "
            "to register nothing"
        )
    return text


@dataclass(frozen=True)
class SourceRun:
    """The run that deployed the version, as the registry's model_source_* fields."""

    kind: str
    klass: str
    id: str
    name: str = ""
    group: str = ""


def source_run(run_id: str, output_uri: str, run_name: str = "") -> SourceRun:
    """The KFP run when the step runs on a KFP backend (its outputs go to object storage and
    ``run_id`` is the run's id), else the local run folder: kfp.local writes a task's outputs to
    <pipeline root>/<run folder>/<task>/<output>, and its run ids are random, not worth keeping."""
    scheme = urllib.parse.urlsplit(output_uri).scheme.lower()
    if run_id and scheme in REMOTE_ARTIFACT_SCHEMES:
        group = ""
        if os.path.isfile(POD_NAMESPACE_FILE):
            with open(POD_NAMESPACE_FILE, encoding="utf-8") as handle:
                group = handle.read().strip()
        return SourceRun(*KFP_SOURCE, id=run_id, name=run_name, group=group)
    path = output_uri.removeprefix("file://")
    folder = os.path.dirname(os.path.dirname(os.path.abspath(path))) if path else os.getcwd()
    return SourceRun(*LOCAL_SOURCE, id=folder, name=os.path.basename(folder))


def version_properties(card_facts: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The version's custom properties: the card's facts (strings, numbers, booleans; the others
    left out) and every defined test metric as metric.<name> (null and NaN left out: the
    registry's values are typed, and an undefined metric is no number)."""
    properties: dict[str, Any] = {}
    for key, value in card_facts.items():
        if isinstance(value, (bool, int, float, str)) and value != "":
            properties[key] = value
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        properties[f"metric.{name}"] = float(value)
    return properties


@dataclass(frozen=True)
class Registration:
    """What the registry holds for the deployed version."""

    address: str
    model_name: str
    version: str
    registered_model_id: str
    model_version_id: str
    model_artifact_id: str
    created: bool

    def labels(self) -> dict[str, str]:
        return {
            REGISTERED_MODEL_ID_LABEL: self.registered_model_id,
            MODEL_VERSION_ID_LABEL: self.model_version_id,
        }

    def annotations(self) -> dict[str, str]:
        return {URL_ANNOTATION: self.address}

    def note(self) -> str:
        action = "registered" if self.created else "already registered (reused)"
        return (
            f"Kubeflow Model Registry {self.address}: {self.model_name} version {self.version} {action} "
            f"(registered model id {self.registered_model_id}, model version id {self.model_version_id})"
        )


def _run(coroutine: Any) -> Any:
    # One event loop per call, closed after it: the client's default patches asyncio globally
    # (nest_asyncio) in the process that goes on to serve and smoke-test the model.
    import asyncio

    return asyncio.run(coroutine)


def _connect(address: str) -> Any:
    import logging
    import warnings

    from model_registry import ModelRegistry

    with warnings.catch_warnings():
        # Over http inside a cluster a registry may need no token; the client warns regardless.
        warnings.filterwarnings("ignore", message="User access token is missing")
        return ModelRegistry(address, author=AUTHOR, async_runner=_run, log_level=logging.ERROR)


def _failure(address: str, exc: BaseException) -> DeployFailed:
    """One line: the address, what went wrong, what to do, and that nothing moved."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        what = (
            f"refused the request ({status} {getattr(exc, 'reason', '')}): the deploy step's token "
            "(the pod's service account, or the file named by KF_PIPELINES_SA_TOKEN_PATH) needs "
            "access to the registry"
        )
    elif status is not None:
        what = f"answered {status} {getattr(exc, 'reason', '')}: {str(getattr(exc, 'body', '') or '')[:300]}"
    elif "token must be provided" in str(exc):
        what = (
            "needs a token over https: run in a pod with a service account token, or set "
            "KF_PIPELINES_SA_TOKEN_PATH to a file holding one"
        )
    else:
        what = (
            f"could not be reached ({type(exc).__name__}: {str(exc)[:200]}): check the address and "
            "that this pod can reach the registry's REST service"
        )
    return DeployFailed(
        f"the Kubeflow Model Registry at {address} ({PARAMETER}) {what}; or set {PARAMETER}='' to "
        "deploy without registering. Nothing was deployed and the champion pointer was not moved."
    )


def register_version(
    address: str,
    *,
    model_name: str,
    model_uri: str,
    sklearn_version: str,
    properties: Mapping[str, Any],
    source: SourceRun,
    description: str = "",
    connect: Callable[[str], Any] = _connect,
) -> Registration:
    """Register ``model_uri`` (a published version, gs://) as a version of ``model_name``; return
    the registry's ids. Raises DeployFailed naming the address when the registry cannot be reached,
    refuses, or holds this version with another URI."""
    from mlstages.components.deploy.manifest import check_cluster_storage_uri

    address = check_address(address)
    if not address:
        raise ParameterError(f"parameter {PARAMETER} is empty: registration is off")
    uri = check_cluster_storage_uri(model_uri.rstrip("/"))
    version = uri.rsplit("/", 1)[-1]
    try:
        client = connect(address)
        existing = _artifact_of(client, model_name, version)
        created = existing is None
        if created:
            client.register_model(
                model_name,
                uri,
                version=version,
                model_format_name=MODEL_FORMAT,
                model_format_version=sklearn_version,
                model_source_kind=source.kind,
                model_source_class=source.klass,
                model_source_group=source.group or None,
                model_source_id=source.id,
                model_source_name=source.name or None,
                version_description=description or None,
                metadata=dict(properties),
            )
            existing = _artifact_of(client, model_name, version)
        model = client.get_registered_model(model_name)
        model_version = client.get_model_version(model_name, version)
    except DeployFailed:
        raise
    except Exception as exc:  # the client raises aiohttp, OpenAPI and its own errors
        raise _failure(address, exc) from exc
    if existing is None or model is None or model_version is None:
        raise DeployFailed(
            f"the Kubeflow Model Registry at {address} ({PARAMETER}) did not return {model_name} "
            f"version {version} after registering it. Nothing was deployed and the champion pointer "
            "was not moved."
        )
    if (existing.uri or "").rstrip("/") != uri:
        raise DeployFailed(
            f"the Kubeflow Model Registry at {address} ({PARAMETER}) already holds {model_name} "
            f"version {version} with URI {existing.uri!r}, not {uri!r}: registry versions are not "
            "overwritten. Nothing was deployed and the champion pointer was not moved."
        )
    return Registration(
        address=address,
        model_name=model_name,
        version=version,
        registered_model_id=str(model.id),
        model_version_id=str(model_version.id),
        model_artifact_id=str(existing.id),
        created=created,
    )


def _artifact_of(client: Any, model_name: str, version: str) -> Any:
    """The version's model artifact, or None when the model or the version is not there yet."""
    if client.get_registered_model(model_name) is None:
        return None
    if client.get_model_version(model_name, version) is None:
        return None
    return client.get_model_artifact(model_name, version)


def card_facts(card: ModelCard) -> dict[str, Any]:
    """What the version records from the model card, beside its URI and format."""
    return {
        "task": card.task,
        "label_column": card.label_column,
        "sha256": card.sha256,
        "family": card.family,
        "scoring": card.scoring,
        "cv_score": card.cv_score,
        "train_rows": card.train_rows,
        "framework": card.framework,
        "mlstages": str(card.versions.get("mlstages") or ""),
    }


def register_for_deploy(
    address: str, model_name: str, card: ModelCard, model_uri: str, *, run_id: str, output_uri: str
) -> Registration:
    """Register the version deploy is about to serve: the card's facts, the test metrics evaluate
    attached to the version (none when it attached none), and the run (see ``source_run``)."""
    from mlstages.components.common.registry import read_evaluation

    if not card.sklearn_version:
        raise ParameterError(
            f"{PARAMETER}: the model card records no scikit-learn version, which the registry's "
            "model format needs: export the model with mlstages' train step"
        )
    evaluation = read_evaluation(model_uri) or {}
    source = source_run(run_id, output_uri)
    return register_version(
        address,
        model_name=model_name,
        model_uri=model_uri,
        sklearn_version=card.sklearn_version,
        properties=version_properties(card_facts(card), evaluation.get("metrics") or {}),
        source=source,
        description=f"{card.task} model of {card.label_column!r}, deployed by mlstages",
    )
