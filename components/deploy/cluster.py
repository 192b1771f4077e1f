"""The InferenceService on a cluster through the real kubernetes client: apply, wait for Ready,
read the endpoint, roll back, delete."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlstages.components.common.errors import ParameterError, require_choice

if TYPE_CHECKING:
    from kubernetes.client import CustomObjectsApi

from mlstages.components.deploy.config import (
    CLUSTER_MODES,
    GROUP,
    MAX_BODY_IN_MESSAGE,
    PLURAL,
    VERSION,
    DeployFailed,
)
from mlstages.components.deploy.manifest import storage_uri_of


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
    from mlstages.components.deploy import kubeflow_registry

    spec = json.loads(json.dumps(manifest["spec"]))
    predictor = spec.setdefault("predictor", {})
    predictor.setdefault("canaryTrafficPercent", None)
    # A full rollout after a Standard-mode canary removes the canary entry.
    spec.setdefault("canary", None)
    metadata = json.loads(json.dumps(manifest.get("metadata") or {}))
    # A deploy without registration must not leave an earlier deploy's registry ids on the object.
    labels = metadata.setdefault("labels", {})
    for key in kubeflow_registry.LABELS:
        labels.setdefault(key, None)
    annotations = metadata.setdefault("annotations", {})
    for key in kubeflow_registry.ANNOTATIONS:
        annotations.setdefault(key, None)
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


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
            body = {"spec": {"canary": None, "predictor": {"canaryTrafficPercent": None, "model": {}}}}
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
