"""The deploy component run through kfp.local after a small training step.

Without a cluster it serves the model on mlstages' real model server on 127.0.0.1. The cluster
path runs the component with cluster=kubeconfig against the Kubernetes API STAND-IN
(tests/k8s_standin.py), not a cluster: its controller starts the real model server for the
InferenceService's storageUri (downloaded from the embedded GCS emulator) and reports Ready at
its URL. KServe's controller, webhooks, storage initializer, networking and RBAC do not run.
"""

from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from k8s_standin import KubernetesStandIn, serving_controller
from kfp import dsl, local
from kfp.dsl import Artifact, Dataset, Markdown, Model, Output
from model_registry_standin import ModelRegistryStandin

from mlstages.components.common.registry import read_champion
from mlstages.components.deploy.component import deploy
from mlstages.components.deploy.config import NO_CLUSTER_NOTE, DeployConfig
from mlstages.components.deploy.manifest import build_inference_service

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")

NAME = "penguins"


@pytest.fixture
def kfp_local(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    yield tmp_path


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def train_penguins(model_registry: str, model: Output[Model], test_split: Output[Dataset]) -> str:
    """Stands in for the training pipeline: the suite's preprocess and train on the penguins
    (one small logistic regression), the model published to the registry."""
    from palmerpenguins import load_penguins

    from mlstages.components.common.dataset_files import write_dataset
    from mlstages.components.common.registry import attach_evaluation, publish_model
    from mlstages.components.preprocess.config import PreprocessConfig
    from mlstages.components.preprocess.preprocess import preprocess
    from mlstages.components.train.config import TrainConfig
    from mlstages.components.train.export import export_model
    from mlstages.components.train.train import train

    penguins = load_penguins()
    prepared = preprocess(penguins, PreprocessConfig(label_column="species"))
    config = TrainConfig(
        label_column="species",
        task="classification",
        model_families=("logistic_regression",),
        cv_folds=2,
        search_space={"logistic_regression": {"C": [1.0]}},
    )
    result = train(prepared.train, prepared.preprocessor, config)
    types = {c: "categorical" if penguins[c].dtype == object else "numeric" for c in result.input_columns}
    export_model(result, model.path, types)
    test_split.metadata.update(write_dataset(prepared.test, test_split.path))
    version = publish_model(model.path, model_registry, "penguins")
    # As evaluate does: only an evaluated version may become champion.
    attach_evaluation(version, b'{"task": "classification", "metrics": {"accuracy": 0.97}}')
    return version


class DeployOutputs(NamedTuple):
    inference_service: Artifact
    summary: Markdown
    endpoint: str
    deployed: bool
    model_uri: str


@dsl.pipeline
def train_and_deploy(
    model_registry: str, runtime: str, cluster: str, kubeconfig: str, kubeflow_model_registry: str = ""
) -> DeployOutputs:
    trained = train_penguins(model_registry=model_registry)
    deployed = deploy(
        model=trained.outputs["model"],
        test=trained.outputs["test_split"],
        model_uri=trained.outputs["Output"],
        model_name="penguins",
        model_registry=model_registry,
        runtime=runtime,
        cluster=cluster,
        kubeconfig=kubeconfig,
        ready_timeout_seconds=60,
        kubeflow_model_registry=kubeflow_model_registry,
        source_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    return DeployOutputs(
        inference_service=deployed.outputs["inference_service"],
        summary=deployed.outputs["summary"],
        endpoint=deployed.outputs["endpoint"],
        deployed=deployed.outputs["deployed"],
        model_uri=trained.outputs["Output"],
    )


def test_without_a_cluster_deploy_serves_locally_checks_the_endpoint_and_moves_the_champion(
    kfp_local, gcs_bucket
):
    registry = f"{gcs_bucket}/models"
    run = train_and_deploy(model_registry=registry, runtime="mlstages-sklearn", cluster="none", kubeconfig="")
    model_uri = run.outputs["model_uri"]
    assert model_uri.startswith(f"{registry}/{NAME}/")
    assert run.outputs["deployed"] is True
    assert run.outputs["endpoint"].startswith("http://127.0.0.1:")

    manifest = yaml.safe_load(Path(run.outputs["inference_service"].path).read_text())
    assert manifest == build_inference_service(DeployConfig(model_name=NAME), model_uri)
    assert run.outputs["inference_service"].metadata["target"] == "local"
    summary = Path(run.outputs["summary"].path).read_text()
    assert summary.startswith("# Deploy")
    assert f"{NO_CLUSTER_NOTE.capitalize()}." in summary
    assert "/v2/models/penguins/infer (v2) with 5 row(s) of the test split: HTTP 200" in summary
    assert "the same predictions as the model" in summary
    assert read_champion(registry, NAME)["model_uri"] == model_uri


def test_the_stock_runtime_is_refused_before_anything_is_written(kfp_local, gcs_bucket, capfd):
    registry = f"{gcs_bucket}/models"
    with pytest.raises(RuntimeError, match="Inner task failed"):
        train_and_deploy(
            model_registry=registry, runtime="kserve-sklearnserver", cluster="none", kubeconfig=""
        )
    output = capfd.readouterr()
    logs = output.out + output.err
    assert "parameter runtime='kserve-sklearnserver' cannot serve this model" in logs
    assert "the stock runtime loads scikit-learn ~=1.5.1" in logs
    root = kfp_local / "root"
    assert list(root.rglob("model.joblib"))  # the training step wrote its model
    assert not [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[1] == "deploy"]
    assert read_champion(registry, NAME) is None


def test_on_the_kubernetes_stand_in_deploy_applies_waits_smoke_tests_and_promotes(
    kfp_local, gcs_bucket, tmp_path
):
    registry = f"{gcs_bucket}/models"
    with KubernetesStandIn() as standin:
        standin.controller = serving_controller(standin)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "standin", "cluster": {"server": standin.host}}],
                    "users": [{"name": "deployer", "user": {"token": "not-checked"}}],
                    "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "deployer"}}],
                    "current-context": "standin",
                }
            )
        )
        run = train_and_deploy(
            model_registry=registry,
            runtime="mlstages-sklearn",
            cluster="kubeconfig",
            kubeconfig=str(kubeconfig),
        )
        stored = standin.get(NAME)
        methods = [method for method, *_ in standin.requests]
    model_uri = run.outputs["model_uri"]
    assert run.outputs["deployed"] is True
    assert stored["spec"]["predictor"]["model"]["storageUri"] == model_uri
    assert run.outputs["endpoint"] == stored["status"]["url"]
    assert methods[:2] == ["GET", "POST"]  # read the rollback target, then create
    assert read_champion(registry, NAME)["model_uri"] == model_uri
    summary = Path(run.outputs["summary"].path).read_text()
    assert "promoted to champion on InferenceService default/penguins" in summary
    assert run.outputs["inference_service"].metadata["target"] == "cluster"


def test_with_a_kubeflow_model_registry_the_version_is_registered_and_labelled(kfp_local, gcs_bucket):
    """The real model-registry client inside the task, against the registry stand-in
    (tests/model_registry_standin.py), not a Kubeflow Model Registry."""
    from mlstages.components.deploy.kubeflow_registry import MODEL_VERSION_ID_LABEL, REGISTERED_MODEL_ID_LABEL

    registry = f"{gcs_bucket}/models"
    with ModelRegistryStandin() as standin:
        run = train_and_deploy(
            model_registry=registry,
            runtime="mlstages-sklearn",
            cluster="none",
            kubeconfig="",
            kubeflow_model_registry=standin.root_url,
        )
        writes = standin.writes()
    model_uri = run.outputs["model_uri"]
    artifact = writes[-1].body
    assert (artifact["uri"], artifact["modelFormatName"]) == (model_uri, "sklearn")
    # kfp.local's run ids are random: the local run folder is the source instead.
    run_folder = Path(run.outputs["inference_service"].path).parents[1]
    assert (artifact["modelSourceKind"], artifact["modelSourceId"]) == ("mlstages", str(run_folder))
    assert writes[1].body["name"] == model_uri.rsplit("/", 1)[-1]
    manifest = yaml.safe_load(Path(run.outputs["inference_service"].path).read_text())
    labels = manifest["metadata"]["labels"]
    metadata = run.outputs["inference_service"].metadata
    assert labels[MODEL_VERSION_ID_LABEL] == metadata["model_version_id"]
    assert labels[REGISTERED_MODEL_ID_LABEL] == metadata["registered_model_id"]
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == model_uri
    assert "Kubeflow Model Registry" in Path(run.outputs["summary"].path).read_text()
    assert read_champion(registry, NAME)["model_uri"] == model_uri


def test_an_unreachable_kubeflow_model_registry_fails_deploy_before_the_champion_moves(
    kfp_local, gcs_bucket, capfd
):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{probe.getsockname()[1]}"
    registry = f"{gcs_bucket}/models"
    with pytest.raises(RuntimeError, match="Inner task failed"):
        train_and_deploy(
            model_registry=registry,
            runtime="mlstages-sklearn",
            cluster="none",
            kubeconfig="",
            kubeflow_model_registry=address,
        )
    output = capfd.readouterr()
    assert f"the Kubeflow Model Registry at {address} (kubeflow_model_registry) could not be reached" in (
        output.out + output.err
    )
    assert read_champion(registry, NAME) is None
