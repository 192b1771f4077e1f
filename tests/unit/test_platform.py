"""Platform settings: parsed strictly; applied to the compiled pipelines, which parse as KFP's own
PipelineSpec and PlatformSpec protos (kfp-pipeline-spec, kfp-kubernetes); no credential values in
any compiled YAML."""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog
from mlstages.tooling.compile import compile_for_cluster
from mlstages.tooling.platform import (
    CREDENTIALS_MOUNT_PATH,
    NEVER_CACHED,
    TaskSettings,
    load_settings,
    parse_settings,
)

EXAMPLE = catalog.PIPELINES_DIR / "settings" / "cluster.example.yaml"


def test_stage_settings_override_defaults():
    settings = parse_settings(
        {"defaults": {"cpu_request": "1", "retries": 2}, "stages": {"train": {"cpu_request": "4"}}}
    )
    assert settings.for_stage("train") == TaskSettings(cpu_request="4", retries=2)
    assert settings.for_stage("ingest") == TaskSettings(cpu_request="1", retries=2)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"default": {}}, "unknown key\\(s\\) default"),
        ({"stages": {"train": {"cpu": "1"}}}, "stages.train: unknown key\\(s\\) cpu"),
        ({"defaults": ["x"]}, "defaults: expected a mapping"),
    ],
)
def test_bad_settings_are_named(raw, message):
    with pytest.raises(ParameterError, match=message):
        parse_settings(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"stages": {"trian": {}}}, "stages: unknown stage\\(s\\) trian; stages: ingest, validate_data"),
        ({"stages": ["train"]}, "stages: expected a mapping of stage name to settings"),
        ({"defaults": {"cpu_limit": "4 cores"}}, "defaults.cpu_limit: '4 cores' is not a quantity such as"),
        ({"defaults": {"memory_request": "1GB"}}, "defaults.memory_request: '1GB' is not a quantity"),
        ({"defaults": {"memory_limit": True}}, "defaults.memory_limit: expected a quantity"),
        (
            {"stages": {"train": {"retries": -1}}},
            "stages.train.retries: expected a whole number >= 0, got -1",
        ),
        ({"defaults": {"timeout_seconds": "1h"}}, "defaults.timeout_seconds: expected a whole number"),
        ({"defaults": {"caching": "no"}}, "defaults.caching: expected true or false, got 'no'"),
        ({"defaults": {"node_selector": ["pool"]}}, "defaults.node_selector: expected a mapping"),
        ({"defaults": {"tolerations": {"key": "a"}}}, "defaults.tolerations: expected a list"),
        (
            {"defaults": {"tolerations": [{"efect": "NoSchedule"}]}},
            "tolerations\\[0\\]: unknown key\\(s\\) efect",
        ),
        (
            {"defaults": {"tolerations": [{"operator": "Equals"}]}},
            "tolerations\\[0\\].operator: 'Equals' is not one of",
        ),
        (
            {"defaults": {"tolerations": [{"effect": "NoRun"}]}},
            "tolerations\\[0\\].effect: 'NoRun' is not one of",
        ),
        ({"service_account": "ML_Runner"}, "service_account: 'ML_Runner' is not a Kubernetes object name"),
        (
            {"gcs_credentials_secret": "key.json/x"},
            "gcs_credentials_secret: 'key.json/x' is not a Kubernetes",
        ),
        ({"image_pull_secrets": "regcred"}, "image_pull_secrets: expected a list of secret names"),
        ({"pipeline_root": "my-bucket"}, "pipeline_root: expected a URI such as gs://bucket/pipeline-root"),
    ],
)
def test_malformed_values_are_named_with_their_key(raw, message):
    with pytest.raises(ParameterError, match=message):
        parse_settings(raw)


def test_run_level_settings_and_quantities_are_read():
    settings = parse_settings(
        {
            "service_account": "mlstages-deployer",
            "pipeline_root": "gs://bucket/root",
            "defaults": {
                "cpu_limit": 2,
                "memory_limit": "8Gi",
                "tolerations": [{"key": "gpu", "operator": "Exists"}],
            },
        }
    )
    assert settings.service_account == "mlstages-deployer" and settings.pipeline_root == "gs://bucket/root"
    assert settings.for_stage("train").cpu_limit == "2"


def test_errors_in_a_settings_file_name_the_file(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("stages:\n  train: {cpu_limit: lots}\n")
    with pytest.raises(ParameterError, match=f"settings file {path}: stages.train.cpu_limit: 'lots'"):
        load_settings(path)


def test_run_level_settings_stay_out_of_the_compiled_yaml(tmp_path):
    (path,) = [p for p in compile_for_cluster(EXAMPLE, tmp_path) if p.name == "training_pipeline.yaml"]
    text = path.read_text()
    assert "mlstages-deployer" not in text and "pipeline-root" not in text


def test_missing_settings_file_is_named(tmp_path):
    with pytest.raises(ParameterError, match="nothere.yaml: no such file"):
        load_settings(tmp_path / "nothere.yaml")


# Credential values a careless compile could pick up from the environment or a key file. They are
# set while compiling and must appear nowhere in the output. Made up at run time, in each kind's
# shape, so that no credential-shaped text sits in the repository for secret scanners to flag.
def _fake(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _fake_jwt() -> str:
    def segment(payload: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    return ".".join([segment({"alg": "RS256"}), segment({"sub": "fake"}), secrets.token_urlsafe(16)])


_PEM_LABEL = " ".join(["PRIVATE", "KEY"])
FAKE_PRIVATE_KEY = (
    f"-----BEGIN {_PEM_LABEL}-----\n{_fake(string.ascii_letters, 48)}\n-----END {_PEM_LABEL}-----\n"
)
FAKE_AWS_ACCESS_KEY_ID = "AKIA" + _fake(string.ascii_uppercase + string.digits, 16)
FAKE_CREDENTIALS_ENV = {
    "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29." + secrets.token_urlsafe(32),
    "AWS_SECRET_ACCESS_KEY": _fake(string.ascii_letters + string.digits + "/+", 40),
    "KF_PIPELINES_TOKEN": _fake_jwt(),
}
# What a credential would look like if one were inlined: a service-account key file's fields, a
# PEM private key, a Google OAuth access token, an AWS access key id, a JWT (bearer tokens).
CREDENTIAL_SHAPES = {
    "service-account key field": re.compile(r"\b(private_key(_id)?|client_email|client_secret)\W*:"),
    "PEM private key": re.compile(r"BEGIN [A-Z ]*PRIVATE KEY"),
    "Google OAuth access token": re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"),
    "AWS access key id": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "JWT": re.compile(r"\beyJ[0-9A-Za-z_-]{8,}\.eyJ[0-9A-Za-z_-]{8,}\."),
}


@pytest.fixture(scope="module")
def cluster_compiled(tmp_path_factory) -> dict[str, Path]:
    """Every pipeline compiled with the example settings, with fake credentials in the environment
    (a key file behind GOOGLE_APPLICATION_CREDENTIALS, tokens in variables); name -> YAML path."""
    workdir = tmp_path_factory.mktemp("cluster")
    key_file = workdir / "service-account.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "private_key": FAKE_PRIVATE_KEY,
                "client_email": "fake@example.iam.gserviceaccount.com",
            }
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        for name, value in FAKE_CREDENTIALS_ENV.items():
            patch.setenv(name, value)
        written = compile_for_cluster(EXAMPLE, workdir / "build")
    assert sorted(p.name for p in written) == sorted(
        catalog.pipeline_yaml_path(n).name for n in catalog.PIPELINES
    )
    return {n: workdir / "build" / catalog.pipeline_yaml_path(n).name for n in catalog.PIPELINES}


def _specs(path: Path) -> tuple[pipeline_spec_pb2.PipelineSpec, pipeline_spec_pb2.PlatformSpec | None]:
    """The YAML's documents as KFP's own protos: a PipelineSpec, then (when the pipeline was compiled
    with platform settings) a PlatformSpec. Unknown fields fail the parse."""
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert 1 <= len(documents) <= 2, f"{path.name}: {len(documents)} YAML documents"
    spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
    platform = (
        json_format.ParseDict(documents[1], pipeline_spec_pb2.PlatformSpec()) if len(documents) == 2 else None
    )
    return spec, platform


def _containers(spec: pipeline_spec_pb2.PipelineSpec) -> dict[str, Any]:
    """Executor label -> PipelineContainerSpec (the deployment spec is a Struct in the proto)."""
    deployment = json_format.ParseDict(
        json_format.MessageToDict(spec.deployment_spec), pipeline_spec_pb2.PipelineDeploymentConfig()
    )
    return {label: executor.container for label, executor in deployment.executors.items()}


def _kubernetes(platform: pipeline_spec_pb2.PlatformSpec) -> dict[str, Any]:
    """Executor label -> KubernetesExecutorConfig (kfp-kubernetes' proto)."""
    executors = platform.platforms["kubernetes"].deployment_spec.executors
    return {
        label: json_format.ParseDict(
            json_format.MessageToDict(config), kubernetes_executor_config_pb2.KubernetesExecutorConfig()
        )
        for label, config in executors.items()
    }


def _tasks(spec: pipeline_spec_pb2.PipelineSpec) -> list[tuple[str, Any]]:
    """(executor label, PipelineTaskSpec) of every task that runs a container, in every DAG."""
    dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
    return [
        (spec.components[task.component_ref.name].executor_label, task)
        for dag in dags
        for task in dag.tasks.values()
        if spec.components[task.component_ref.name].executor_label
    ]


def _stage(executor_label: str) -> str | None:
    """The stage an executor runs (exec-validate-data-2 -> validate_data); None for helper steps."""
    stage = re.sub(r"^exec-|-\d+$", "", executor_label).replace("-", "_")
    return stage if stage in catalog.COMPONENTS else None


@pytest.mark.parametrize("name", list(catalog.PIPELINES))
def test_committed_pipeline_yaml_is_a_pipeline_spec_without_platform_settings(name):
    from mlstages.components import __version__

    spec, platform = _specs(catalog.pipeline_yaml_path(name))
    assert spec.pipeline_info.name == f"mlstages-{name}"
    assert "data_uri" in spec.root.input_definitions.parameters
    assert platform is None, "the committed YAML is for any cluster: no platform settings in it"
    for label, container in _containers(spec).items():
        if _stage(label):
            assert container.image.endswith(f":{__version__}"), (label, container.image)
    assert _tasks(spec), "no container tasks found"


@pytest.mark.parametrize("name", list(catalog.PIPELINES))
def test_cluster_yaml_carries_the_settings_in_the_pipeline_and_platform_specs(cluster_compiled, name):
    settings = load_settings(EXAMPLE)
    spec, platform = _specs(cluster_compiled[name])
    assert platform is not None, f"{cluster_compiled[name].name} has no PlatformSpec document"
    containers, kubernetes = _containers(spec), _kubernetes(platform)
    assert set(kubernetes) == set(containers), "every executor is configured for Kubernetes"

    for label, container in containers.items():
        own = settings.for_stage(_stage(label) or "")
        config = kubernetes[label]
        # Credentials by secret name only, mounted where GOOGLE_APPLICATION_CREDENTIALS points.
        assert [(v.secret_name, v.mount_path) for v in config.secret_as_volume] == [
            (settings.gcs_credentials_secret, CREDENTIALS_MOUNT_PATH)
        ], label
        env = {e.name: e.value for e in container.env}
        assert (
            env["GOOGLE_APPLICATION_CREDENTIALS"]
            == f"{CREDENTIALS_MOUNT_PATH}/{settings.gcs_credentials_key}"
        )
        assert [s.secret_name for s in config.image_pull_secret] == settings.image_pull_secrets, label
        if _stage(label) is None:
            continue  # helper steps take the settings of the stage they serve
        assert config.active_deadline_seconds == own.timeout_seconds, label
        assert dict(config.node_selector.labels) == own.node_selector, label
        assert [
            {"key": t.key, "operator": t.operator, "value": t.value, "effect": t.effect}
            for t in config.tolerations
        ] == own.tolerations, label
        resources = container.resources
        assert (
            resources.resource_cpu_request,
            resources.resource_cpu_limit,
            resources.resource_memory_request,
            resources.resource_memory_limit,
        ) == tuple(
            value or "" for value in (own.cpu_request, own.cpu_limit, own.memory_request, own.memory_limit)
        ), label

    for label, task in _tasks(spec):
        own = settings.for_stage(_stage(label) or "")
        assert task.retry_policy.max_retry_count == (own.retries or 0), (label, task.task_info.name)
        if _stage(label) in NEVER_CACHED:
            assert not task.caching_options.enable_cache, (label, task.task_info.name)
        elif _stage(label) and own.caching is not None:
            assert task.caching_options.enable_cache == own.caching, (label, task.task_info.name)


def _every_compiled_yaml(cluster_compiled: dict[str, Path]) -> list[Path]:
    committed = [catalog.pipeline_yaml_path(n) for n in catalog.PIPELINES]
    components = [catalog.component_yaml_path(s) for s in catalog.COMPONENTS]
    return [*committed, *components, *cluster_compiled.values()]


def test_no_credential_value_in_any_compiled_yaml(cluster_compiled):
    values = [
        *FAKE_CREDENTIALS_ENV.values(),
        FAKE_PRIVATE_KEY.splitlines()[1],
        "service-account.json",
    ]
    for path in _every_compiled_yaml(cluster_compiled):
        text = path.read_text(encoding="utf-8")
        for value in values:
            assert value not in text, f"{path.name} contains a credential value from the environment"
        for shape, pattern in CREDENTIAL_SHAPES.items():
            assert not pattern.search(text), f"{path.name} contains something shaped like a {shape}"


@pytest.mark.parametrize("shape", list(CREDENTIAL_SHAPES))
def test_each_credential_shape_is_recognised(shape):
    # The shapes must catch the fake values above, or the previous test proves nothing.
    samples = [
        json.dumps({"private_key": FAKE_PRIVATE_KEY, "client_email": "a@b"}),
        *FAKE_CREDENTIALS_ENV.values(),
        FAKE_AWS_ACCESS_KEY_ID,
    ]
    assert any(CREDENTIAL_SHAPES[shape].search(sample) for sample in samples)
