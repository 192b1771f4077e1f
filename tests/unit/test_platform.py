"""Platform settings: parsed strictly, applied to the compiled pipeline, no credential values."""

from __future__ import annotations

import re

import pytest
import yaml

from mlstages.components.common.errors import ParameterError
from mlstages.pipelines import catalog
from mlstages.pipelines.compile import compile_for_cluster
from mlstages.pipelines.platform import TaskSettings, load_settings, parse_settings

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


def test_compiled_with_settings_mounts_the_secret_by_name_only(tmp_path):
    written = compile_for_cluster(EXAMPLE, tmp_path)
    assert sorted(p.name for p in written) == sorted(
        catalog.pipeline_yaml_path(n).name for n in catalog.PIPELINES
    )
    (path,) = [p for p in written if p.name == catalog.pipeline_yaml_path("training").name]
    documents = list(yaml.safe_load_all(path.read_text()))
    spec, platform = documents[0], documents[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    train = next(v for k, v in executors.items() if k.endswith("-train"))
    assert train["secretAsVolume"][0]["secretName"] == "mlstages-gcs-key"
    assert train["nodeSelector"]["labels"] == {"cloud.google.com/gke-nodepool": "highmem"}
    assert train["imagePullSecret"][0]["secretName"] == "mlstages-registry"
    containers = spec["deploymentSpec"]["executors"]
    train_container = next(v for k, v in containers.items() if k.endswith("-train"))["container"]
    assert train_container["resources"]["cpuLimit"] == 4.0
    env = {e["name"]: e["value"] for e in train_container["env"]}
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/var/secrets/google/key.json"
    # What a service-account key file or a PEM key would leave in the YAML if one were inlined.
    credential = re.compile(r"private_key\W*:|BEGIN [A-Z ]*PRIVATE KEY|client_email\W*:")
    for compiled in written:
        assert not credential.search(compiled.read_text()), compiled.name
