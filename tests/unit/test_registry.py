"""The model registry's champion pointer, on a local folder and on the GCS emulator: what the
blessing gate reads to find its baseline and what deploy moves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlstages.components.common import registry, storage
from mlstages.components.common.artifacts import save_estimator
from mlstages.components.common.errors import ParameterError

pytestmark = pytest.mark.usefixtures("no_external_network")


@pytest.fixture(params=["local", "gcs"])
def registry_root(request, tmp_path):
    """A registry root: a local folder, or a prefix in a fresh emulator bucket."""
    if request.param == "local":
        return str(tmp_path / "registry")
    bucket = request.getfixturevalue("gcs_bucket")
    return f"{bucket}/models"


def model_dir(tmp_path, payload: object, name: str = "model"):
    """A model directory as train exports it (model.joblib + metadata.json with its sha256)."""
    directory = tmp_path / name
    save_estimator(payload, directory, "model", {"task": "classification"})
    return directory


def publish_evaluated(model: Path, registry_root: str, name: str = "penguins") -> str:
    """A version as the training pipeline leaves it before the gate: published, then evaluated."""
    uri = registry.publish_model(model, registry_root, name)
    registry.attach_evaluation(uri, b'{"accuracy": 0.9}')
    return uri


def test_no_champion_before_the_first_deploy(registry_root):
    assert registry.read_champion(registry_root, "penguins") is None


def test_set_champion_points_at_a_published_version(registry_root, tmp_path):
    version_uri = publish_evaluated(model_dir(tmp_path, {"weights": [1, 2]}), registry_root)

    pointer = registry.set_champion(registry_root, "penguins", version_uri)

    assert pointer["model_uri"] == version_uri
    assert pointer["version"] == version_uri.rsplit("/", 1)[-1]
    assert pointer["version"] in registry.list_versions(registry_root, "penguins")
    assert pointer["previous"] is None
    assert registry.read_champion(registry_root, "penguins") == pointer
    stored = json.loads(storage.read_bytes(registry.champion_uri(registry_root, "penguins")))
    assert stored == pointer
    # The pointer lives beside the versions but is not one of them.
    assert registry.list_versions(registry_root, "penguins") == [pointer["version"]]


def test_a_new_champion_keeps_the_previous_one_for_rollback(registry_root, tmp_path):
    first = publish_evaluated(model_dir(tmp_path, {"weights": [1]}, "a"), registry_root)
    second = publish_evaluated(model_dir(tmp_path, {"weights": [2]}, "b"), registry_root)
    assert first != second
    registry.set_champion(registry_root, "penguins", first)

    pointer = registry.set_champion(registry_root, "penguins", second)

    assert pointer["model_uri"] == second
    assert pointer["previous"]["model_uri"] == first
    assert pointer["previous"]["version"] == first.rsplit("/", 1)[-1]
    assert registry.read_champion(registry_root, "penguins")["model_uri"] == second


def test_champions_are_per_model_name(registry_root, tmp_path):
    version_uri = publish_evaluated(model_dir(tmp_path, {"weights": [1]}), registry_root)
    registry.set_champion(registry_root, "penguins", version_uri)

    assert registry.read_champion(registry_root, "penguins-v2") is None


def test_set_champion_refuses_a_uri_without_a_model(registry_root):
    empty = f"{registry_root.rstrip('/')}/penguins/20240101T000000Z-deadbeef"
    with pytest.raises(ParameterError, match=r"cannot make .*deadbeef the champion: it has no model.joblib"):
        registry.set_champion(registry_root, "penguins", empty)
    assert registry.read_champion(registry_root, "penguins") is None


def test_a_pointer_that_is_not_json_names_the_file(registry_root):
    uri = registry.champion_uri(registry_root, "penguins")
    storage.write_bytes(uri, b"{not json")
    with pytest.raises(ParameterError, match=r"champion.json is not valid JSON: fix or delete it"):
        registry.read_champion(registry_root, "penguins")


def test_a_pointer_without_model_uri_is_refused(registry_root):
    uri = registry.champion_uri(registry_root, "penguins")
    storage.write_bytes(uri, json.dumps({"version": "x"}).encode())
    with pytest.raises(ParameterError, match=r"champion.json is not a champion pointer: it has no model_uri"):
        registry.read_champion(registry_root, "penguins")


def test_model_names_must_be_kubernetes_names(tmp_path):
    with pytest.raises(ParameterError, match=r"parameter model_name='Penguins_1' must be lowercase"):
        registry.read_champion(str(tmp_path), "Penguins_1")
    with pytest.raises(ParameterError, match=r"parameter model_name='-x' must be lowercase"):
        registry.champion_uri(str(tmp_path), "-x")


def test_attach_evaluation_writes_once_and_a_retry_with_the_same_bytes_goes_on(registry_root, tmp_path):
    from mlstages.components.common.errors import StorageError

    version = registry.publish_model(model_dir(tmp_path, {"w": 1}), registry_root, "penguins")
    uri = registry.attach_evaluation(version, b'{"accuracy": 0.9}')
    assert storage.read_bytes(uri) == b'{"accuracy": 0.9}'
    assert registry.attach_evaluation(version, b'{"accuracy": 0.9}') == uri  # the same task, retried
    with pytest.raises(StorageError):
        registry.attach_evaluation(version, b'{"accuracy": 0.5}')


def test_attach_blessing_records_the_decision_once_and_a_retry_with_the_same_decision_goes_on(
    registry_root, tmp_path
):
    from mlstages.components.common.errors import StorageError

    version = registry.publish_model(model_dir(tmp_path, {"w": 1}), registry_root, "penguins")
    record = registry.blessing_record(True, "blessed: all 9 gated checks passed", "ab" * 32)
    uri = registry.attach_blessing(version, record)
    assert uri == f"{version}/blessing.json"
    # A retry reaching the same decision (its reason may quote other numbers) goes on.
    assert registry.attach_blessing(version, {**record, "reason": "blessed: again"}) == uri
    with pytest.raises(StorageError, match="already exists with another blessing"):
        registry.attach_blessing(version, {**record, "blessed": False})
    downloaded = tmp_path / "downloaded"
    registry.download_version(version, downloaded)
    assert registry.read_blessing(downloaded) == record
    assert registry.read_blessing(tmp_path / "nowhere") is None


def test_the_champion_and_the_one_before_it_were_deployed(registry_root, tmp_path):
    first = publish_evaluated(model_dir(tmp_path, {"w": 1}), registry_root)
    second = publish_evaluated(model_dir(tmp_path, {"w": 2}), registry_root)
    assert not registry.was_champion(registry_root, "penguins", first)  # no champion yet
    registry.set_champion(registry_root, "penguins", first)
    registry.set_champion(registry_root, "penguins", second)
    assert registry.was_champion(registry_root, "penguins", second)
    assert registry.was_champion(registry_root, "penguins", first + "/")
    assert not registry.was_champion(registry_root, "penguins", f"{registry_root}/penguins/other")
    assert not registry.was_champion("", "penguins", second)


def test_version_of_names_only_versions_of_that_model(registry_root):
    version = f"{registry_root}/penguins/20260101T000000Z-0123abcd"
    assert registry.version_of(version, registry_root, "penguins") == "20260101T000000Z-0123abcd"
    assert registry.version_of(version, registry_root, "other") is None
    assert registry.version_of(f"{version}/model.joblib", registry_root, "penguins") is None
    assert registry.version_of("", registry_root, "penguins") is None


def test_download_champion_fetches_the_pointed_version_or_says_to_train_first(registry_root, tmp_path):
    with pytest.raises(ParameterError, match="no champion for model_name='penguins'"):
        registry.download_champion(registry_root, "penguins", tmp_path / "none")
    with pytest.raises(ParameterError, match="model_registry is empty"):
        registry.download_champion(" ", "penguins", tmp_path / "none")
    version = publish_evaluated(model_dir(tmp_path, {"w": 3}), registry_root)
    registry.set_champion(registry_root, "penguins", version)

    pointer = registry.download_champion(registry_root, "penguins", tmp_path / "champion")

    assert pointer["model_uri"] == version
    assert {p.name for p in (tmp_path / "champion").iterdir()} >= {"model.joblib", "metadata.json"}
