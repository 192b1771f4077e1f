"""KFP component for the deployment stage. The logic lives in deploy.py."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from mlstages.components.common.images import image


@dsl.component(base_image=image("deploy"), install_kfp_package=False)
def deploy(
    model: Input[Model],
    test: Input[Dataset],
    inference_service: Output[Artifact],
    summary: Output[Markdown],
    model_uri: str,
    model_name: str,
    model_registry: str = "",
    namespace: str = "default",
    runtime: str = "mlstages-sklearn",
    protocol_version: str = "v2",
    service_account: str = "mlstages-model-reader",
    deployment_mode: str = "RawDeployment",
    min_replicas: int = 1,
    max_replicas: int = 1,
    cpu_request: str = "100m",
    cpu_limit: str = "1",
    memory_request: str = "512Mi",
    memory_limit: str = "1Gi",
    canary_traffic_percent: int = -1,
    cluster: str = "none",
    kubeconfig: str = "",
    ready_timeout_seconds: int = 600,
    smoke_test_rows: int = 5,
    kubeflow_model_registry: str = "",
    source_run_id: str = "",
) -> NamedTuple("Outputs", [("endpoint", str), ("deployed", bool)]):
    """Deploys the model as a KServe InferenceService, or serves it locally when there is no
    cluster, checks the endpoint with a real request, and moves the champion pointer.

    The InferenceService (serving.kserve.io/v1beta1) names modelFormat sklearn, the runtime, the
    protocol, the storageUri, the service account, resources and replicas explicitly. First the
    runtime is checked against the model: the stock kserve-sklearnserver (scikit-learn ~=1.5.1, no
    mlstages classes) refuses models it cannot load, saying why. With a cluster the manifest is
    created, or merge-patched when it exists; the step waits for Ready=True, sends sample rows of
    the test split to the endpoint in the declared protocol and compares the answers with the
    model's own predictions. If any of that fails it rolls back to the previous champion (or
    deletes an InferenceService it created) and fails with the status conditions; on success it
    moves the champion pointer in the registry. Without a cluster (cluster=none, the default) it
    says so, serves the model on mlstages' model server on 127.0.0.1, runs the same smoke test,
    stops the server and moves the champion pointer. The step changes the outside world: run it
    with caching off. With kubeflow_model_registry set, the version is first registered in that
    Kubeflow Model Registry (name, version, gs:// URI, sklearn format and version, test metrics,
    source run) and the InferenceService carries the registry's ids as labels; a registry that
    cannot be reached or refuses fails the step before anything is served or applied.

    Args:
        model: The exported model directory (model.joblib + metadata.json) from train.
        test: The test split; its first rows (complete rows first) are the smoke test's requests.
        model_uri: The model's registry version URI from train (gs://...): the storageUri.
        model_name: The InferenceService name and the model's name in the registry (lowercase
            letters, digits and '-', starting with a letter).
        model_registry: The registry root holding the champion pointer; empty to track none (a
            failed rollout then rolls back to the InferenceService's previous storageUri).
        namespace: The InferenceService's namespace.
        runtime: mlstages-sklearn (the ServingRuntime in manifests/) or kserve-sklearnserver.
        protocol_version: v1 or v2 (Open Inference Protocol).
        service_account: serviceAccountName of the predictor pods, the account that reads the
            model from the bucket (not the deploy step's own account).
        deployment_mode: RawDeployment or Serverless (KServe 0.15+ also: Standard, Knative).
        min_replicas: Minimum predictor replicas (0 only with Serverless).
        max_replicas: Maximum predictor replicas.
        cpu_request: CPU request of the predictor, a Kubernetes quantity.
        cpu_limit: CPU limit of the predictor.
        memory_request: Memory request of the predictor.
        memory_limit: Memory limit of the predictor.
        canary_traffic_percent: -1 for a full rollout; 0-100 for a canary, which is
            smoke-tested but not promoted to champion (below 100). Serverless: the predictor's
            canaryTrafficPercent. RawDeployment/Standard: spec.canary beside the model serving
            now, where the installed KServe defines it (0.21 does).
        cluster: none (local model server), in-cluster (the pod's service account) or kubeconfig.
            none is refused inside a Kubernetes pod (unless MLSTAGES_LOCAL_RUN=1), before anything
            is served, so no champion points at a server that dies with the pod.
        kubeconfig: The kubeconfig file for cluster=kubeconfig; empty for the default.
        ready_timeout_seconds: How long to wait for Ready before rolling back.
        smoke_test_rows: Rows of the test split sent in the smoke test.
        kubeflow_model_registry: The REST address of a Kubeflow Model Registry
            (https://HOST:PORT) to register the version in before deploying; empty (the default)
            registers nothing.
        source_run_id: The KFP run that deploys (the pipelines pass dsl.PIPELINE_JOB_ID_PLACEHOLDER),
            recorded as the registered version's source; in a local run the run folder is recorded
            instead.

    Returns:
        inference_service: The InferenceService manifest (YAML) that was applied, or that would be.
        summary: Where the model is served, the smoke test, the champion before and after.
        endpoint: The endpoint the smoke test used: the InferenceService URL, or without a cluster
            the local model server's URL (that server stops with the step).
        deployed: True when the model passed the smoke test and is now the champion (False for a
            canary short of 100%).
    """
    # Threads capped before anything heavy is imported, then the progress lines (task_start.py).
    from mlstages.components.common.task_start import start_task

    start_task()

    from collections import namedtuple

    from mlstages.components.common.artifacts import load_estimator
    from mlstages.components.common.dataset_files import read_dataset_head
    from mlstages.components.common.model_card import ModelCard
    from mlstages.components.deploy.cluster import cluster_api
    from mlstages.components.deploy.config import NO_CLUSTER, DeployConfig
    from mlstages.components.deploy.deploy import deploy_locally, deploy_to_cluster
    from mlstages.components.deploy.manifest import (
        build_inference_service,
        check_runtime_compatibility,
        manifest_yaml,
    )
    from mlstages.components.deploy.report import render_markdown
    from mlstages.components.deploy.smoke import sample_rows

    config = DeployConfig(
        model_name=model_name,
        namespace=namespace,
        runtime=runtime,
        protocol_version=protocol_version,
        service_account=service_account,
        deployment_mode=deployment_mode,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpu_request=cpu_request,
        cpu_limit=cpu_limit,
        memory_request=memory_request,
        memory_limit=memory_limit,
        canary_traffic_percent=None if canary_traffic_percent == -1 else canary_traffic_percent,
        ready_timeout_seconds=ready_timeout_seconds,
        smoke_test_rows=smoke_test_rows,
        cluster=cluster,
        kubeconfig=kubeconfig,
        kubeflow_model_registry=kubeflow_model_registry,
    )
    card = ModelCard.read(model.path)
    checks = check_runtime_compatibility(model.path, runtime)
    # The smoke rows come from the test split's first row group: it is never read whole.
    rows = sample_rows(
        read_dataset_head(test.path, 10_000, what="test split"), card.input_names, smoke_test_rows
    )
    # The endpoint must answer what the model itself predicts for the same rows.
    expected = load_estimator(model.path, "model").predict(rows).tolist()
    registration = None
    if config.kubeflow_model_registry:
        # Before anything is served or applied: a registry failure leaves everything as it was.
        from mlstages.components.deploy.kubeflow_registry import register_for_deploy

        registration = register_for_deploy(
            config.kubeflow_model_registry,
            model_name,
            card,
            model_uri,
            run_id=source_run_id,
            output_uri=inference_service.uri,
        )
        checks.append(registration.note())
    manifest = build_inference_service(
        config,
        model_uri,
        labels=registration.labels() if registration else None,
        annotations=registration.annotations() if registration else None,
    )
    checked = {
        "features": card.input_features,
        "expected": expected,
        "task": card.task,
        "model_registry": model_registry,
    }
    if cluster == NO_CLUSTER:
        result = deploy_locally(config, model_uri, rows, **checked)
    else:
        result = deploy_to_cluster(
            cluster_api(cluster, kubeconfig), manifest, config, model_uri, rows, **checked
        )

    manifest = result.manifest or manifest
    header = f"InferenceService for {model_uri}, written by mlstages deploy ({result.target})."
    with open(inference_service.path, "w", encoding="utf-8") as handle:
        handle.write(manifest_yaml(manifest, header))
    inference_service.metadata.update(
        {
            "apiVersion": manifest["apiVersion"],
            "kind": manifest["kind"],
            "name": model_name,
            "namespace": namespace,
            "storageUri": model_uri,
            "target": result.target,
            "endpoint": result.endpoint,
        }
    )
    if registration is not None:
        inference_service.metadata.update(
            {
                "kubeflow_model_registry": registration.address,
                "registered_model_id": registration.registered_model_id,
                "model_version_id": registration.model_version_id,
            }
        )
    with open(summary.path, "w", encoding="utf-8") as handle:
        handle.write(render_markdown(result, manifest, checks))
    outputs = namedtuple("Outputs", ["endpoint", "deployed"])
    return outputs(result.endpoint, result.deployed)
