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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from kubernetes.client import CustomObjectsApi

    from mlstages.components.common.model_card import InputFeature
from mlstages.components.deploy.cluster import (
    apply_inference_service,
    endpoint_from_status,
    get_inference_service,
    rollback,
    wait_until_ready,
)
from mlstages.components.deploy.config import (
    NO_CLUSTER_NOTE,
    DeployConfig,
    DeployFailed,
    check_local_serving,
)
from mlstages.components.deploy.manifest import (
    candidate_uri_of,
    check_cluster_storage_uri,
    storage_uri_of,
    with_stable_model,
)
from mlstages.components.deploy.report import DeployResult, example_inference_service_yaml
from mlstages.components.deploy.smoke import smoke_test


def _previous_champion(
    model_registry: str, model_name: str, model_uri: str, promotes: bool
) -> dict[str, Any] | None:
    """The champion to roll back to; and, before anything rolls out, the refusal of a model that
    could not become the champion afterwards (not published, or never evaluated)."""
    from mlstages.components.common.registry import check_champion_candidate, read_champion

    if not model_registry:
        return None
    if promotes:
        check_champion_candidate(model_uri)
    return read_champion(model_registry, model_name)


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
    check_cluster_storage_uri(candidate_uri_of(manifest) or "")
    notes: list[str] = []
    champion = _previous_champion(model_registry, name, model_uri, config.promotes)
    existing = get_inference_service(api, name, namespace)
    previous_uri = champion["model_uri"] if champion else None
    previous_manifest = None
    if existing is not None:
        previous_manifest = {k: existing.get(k) for k in ("metadata", "spec")}
        if previous_uri is None:
            previous_uri = storage_uri_of(existing)
    # A Standard-mode canary is tried beside the model serving now, known only from here on.
    manifest = with_stable_model(config, manifest, previous_uri)
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
        manifest=manifest,
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
    test against it, stop the server, and move the champion pointer.

    Inside a Kubernetes pod this is refused before anything is served (check_local_serving): the
    pointer stays where it was."""
    import os

    check_local_serving(os.environ)
    notes = [NO_CLUSTER_NOTE]
    champion = _previous_champion(model_registry, config.model_name, model_uri, promotes=True)
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


if __name__ == "__main__":
    import sys

    sys.stdout.write(example_inference_service_yaml())
