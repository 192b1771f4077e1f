"""Registry versions appear atomically (issue 13 item 3): metadata.json is written last, a folder
without it is invisible to every reader, an unevaluated version never becomes the champion, and
`mlstages registry list|clean` shows and removes what failed runs left behind."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from storage_helpers import MIB, bytes_read_by

from mlstages.components.common import registry, storage
from mlstages.components.common.artifacts import save_estimator
from mlstages.components.common.emulator import EmbeddedGCS
from mlstages.components.common.errors import ParameterError, StorageError, StorageNotFound
from mlstages.tooling import cli

pytestmark = pytest.mark.usefixtures("no_external_network")

NAME = "penguins"


@pytest.fixture(params=["local", "gcs"])
def registry_root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "registry")
    return f"{request.getfixturevalue('gcs_bucket')}/models"


def model_dir(tmp_path: Path, payload: object, name: str = "model") -> Path:
    """A model directory as train exports it: model.joblib, metadata.json and reference.json."""
    directory = tmp_path / name
    save_estimator(payload, directory, "model", {"task": "classification"})
    (directory / "reference.json").write_text('{"columns": {}}')
    return directory


def incomplete_version(registry_root: str, version: str = "20240101T000000Z-deadbeef") -> str:
    """What an interrupted publish leaves: every file but the model card."""
    uri = f"{registry_root}/{NAME}/{version}"
    storage.write_bytes(f"{uri}/reference.json", b"{}")
    storage.write_bytes(f"{uri}/model.joblib", b"half a model")
    return uri


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """Exit code and what was printed (stdout, then stderr)."""
    code = cli.main(["registry", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_publish_writes_the_model_card_last(registry_root, tmp_path, monkeypatch):
    from mlstages.components.common.storage import folders

    order: list[str] = []
    real = folders._upload_file

    def recording(source, uri, *args, **kwargs):
        digest = real(source, uri, *args, **kwargs)
        order.append(uri.rsplit("/", 1)[-1])
        return digest

    monkeypatch.setattr(folders, "_upload_file", recording)
    version = registry.publish_model(model_dir(tmp_path, {"w": 1}), registry_root, NAME)

    assert order[-1] == "metadata.json" and sorted(order) == [
        "metadata.json",
        "model.joblib",
        "reference.json",
    ]
    assert registry.is_published(version)
    [state] = registry.version_states(registry_root, NAME)
    assert state.state == registry.UNEVALUATED and state.uri == version


def test_every_reader_ignores_or_refuses_an_incomplete_version(registry_root, tmp_path):
    broken = incomplete_version(registry_root)
    published = registry.publish_model(model_dir(tmp_path, {"w": 1}), registry_root, NAME)

    assert registry.list_versions(registry_root, NAME) == [published.rsplit("/", 1)[-1]]
    with pytest.raises(
        StorageNotFound, match=r"deadbeef is not a published version: it has no metadata.json"
    ):
        registry.download_version(broken, tmp_path / "download")
    assert not (tmp_path / "download").exists()
    with pytest.raises(ParameterError, match=r"cannot make .*deadbeef the champion: .* no metadata.json"):
        registry.set_champion(registry_root, NAME, broken)
    with pytest.raises(StorageError, match=r"cannot attach an evaluation: .*deadbeef is not a published"):
        registry.attach_evaluation(broken, b"{}")
    # A pointer to such a folder (written by hand: set_champion refuses it) is refused, not read
    # as "no champion", which would let the gate bless without comparing.
    storage.write_bytes(registry.champion_uri(registry_root, NAME), f'{{"model_uri": "{broken}"}}'.encode())
    with pytest.raises(
        ParameterError, match=r"champion.json names .*deadbeef, which is not a published version"
    ):
        registry.read_champion(registry_root, NAME)
    with pytest.raises(ParameterError, match=r"is not a published version"):
        registry.download_champion(registry_root, NAME, tmp_path / "champion")


def test_an_unevaluated_version_never_becomes_the_champion(registry_root, tmp_path):
    version = registry.publish_model(model_dir(tmp_path, {"w": 1}), registry_root, NAME)
    with pytest.raises(ParameterError, match=r"it was never evaluated \(it has no evaluation.json\)"):
        registry.set_champion(registry_root, NAME, version)
    assert registry.read_champion(registry_root, NAME) is None
    registry.attach_evaluation(version, b'{"accuracy": 0.9}')
    assert registry.set_champion(registry_root, NAME, version)["model_uri"] == version
    assert [v.state for v in registry.version_states(registry_root, NAME)] == [registry.COMPLETE]


def test_clean_removes_only_old_incomplete_versions_and_never_the_champion(registry_root, tmp_path):
    old_broken = incomplete_version(registry_root, "20240101T000000Z-deadbeef")
    unevaluated = incomplete_version(registry_root, "20240102T000000Z-0badf00d")
    storage.write_bytes(f"{unevaluated}/metadata.json", b"{}")
    champion = registry.publish_model(model_dir(tmp_path, {"w": 1}), registry_root, NAME)
    registry.attach_evaluation(champion, b"{}")
    registry.set_champion(registry_root, NAME, champion)
    now = dt.datetime.now(dt.timezone.utc)
    fresh = incomplete_version(registry_root, registry.new_version("0" * 64, now))  # still publishing?

    doomed = registry.removable_versions(registry_root, NAME, older_than=dt.timedelta(hours=1), now=now)
    assert [v.uri for v in doomed] == [old_broken]
    with_unevaluated = registry.removable_versions(
        registry_root, NAME, older_than=dt.timedelta(hours=1), unevaluated=True, now=now
    )
    assert [v.uri for v in with_unevaluated] == [old_broken, unevaluated]
    for version in with_unevaluated:
        registry.remove_version(version)

    states = {v.uri: v.state for v in registry.version_states(registry_root, NAME)}
    assert states == {champion: registry.COMPLETE, fresh: registry.INCOMPLETE}
    assert registry.read_champion(registry_root, NAME)["model_uri"] == champion
    [complete] = [v for v in registry.version_states(registry_root, NAME) if v.uri == champion]
    with pytest.raises(ParameterError, match="is a complete version"):
        registry.remove_version(complete)


def test_the_cli_lists_and_cleans_incomplete_versions(tmp_path, capsys):
    root = str(tmp_path / "registry")
    broken = incomplete_version(root)
    published = registry.publish_model(model_dir(tmp_path, {"w": 1}), root, NAME)

    code, out = run_cli(capsys, "list", "--model", NAME, "--registry", root)
    assert code == 0 and "deadbeef  incomplete   2 files" in out and "unevaluated" in out
    code, out = run_cli(capsys, "list", "--model", NAME, "--registry", root, "--incomplete")
    assert code == 0 and broken in out and published in out  # unevaluated is not complete either
    code, out = run_cli(capsys, "clean", "--model", NAME, "--registry", root)
    assert code == 0 and f"would remove {broken} (incomplete, 2 files)" in out and "--yes" in out
    assert registry.version_states(root, NAME)[0].uri == broken
    code, out = run_cli(capsys, "clean", "--model", NAME, "--registry", root, "--yes")
    assert code == 0 and f"removed {broken}" in out and published not in out
    assert not Path(broken).exists()
    assert [v.uri for v in registry.version_states(root, NAME)] == [published]
    code, out = run_cli(capsys, "clean", "--model", NAME, "--registry", root, "--older-than", "soon")
    assert code == 2 and "--older-than 'soon' is not an age" in out


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/<pid>/io")
def test_a_publish_interrupted_by_a_store_stop_publishes_nothing(tmp_path, monkeypatch, capsys):
    # The measurement, for real: the store stops during upload_dir and stays down past
    # the retry window, so the clean-up of what was written cannot run either.
    monkeypatch.setenv(storage.RETRY_TIMEOUT_ENV, "1")
    server = EmbeddedGCS(root=tmp_path / "store", buckets=["registry"], export_environment=False)
    server.start()
    for name, value in server.environment.items():
        monkeypatch.setenv(name, value)
    root = "gs://registry/models"
    size = 64 * MIB
    source = model_dir(tmp_path, np.random.default_rng(1).bytes(size))
    try:
        errors: list[BaseException] = []

        def publish() -> None:
            try:
                registry.publish_model(source, root, NAME)
            except BaseException as exc:
                errors.append(exc)

        baseline = bytes_read_by(server.pid)
        writer = threading.Thread(target=publish)
        writer.start()
        deadline = time.monotonic() + 30
        while bytes_read_by(server.pid) - baseline < size // 3:
            assert time.monotonic() < deadline and writer.is_alive(), "the publish never got going"
            time.sleep(0.002)
        server.stop()
        writer.join(timeout=60)
        assert not writer.is_alive()
        assert len(errors) == 1 and "was interrupted" in str(errors[0]), errors
        assert "nothing was published, run again" in str(errors[0])

        server.start()  # the filesystem backend kept what landed
        [left] = registry.version_states(root, NAME)
        assert left.state == registry.INCOMPLETE and "metadata.json" not in left.files
        assert "model.joblib" not in left.files  # its upload never finalized
        assert registry.list_versions(root, NAME) == []
        with pytest.raises(StorageNotFound, match="is not a published version"):
            registry.download_version(left.uri, tmp_path / "download")

        code, out = run_cli(capsys, "list", "--model", NAME, "--registry", root, "--incomplete")
        assert code == 0 and left.uri in out and "incomplete" in out
        code, out = run_cli(
            capsys, "clean", "--model", NAME, "--registry", root, "--older-than", "0s", "--yes"
        )
        assert code == 0 and f"removed {left.uri}" in out
        assert storage.list_uris(root) == []
        # And the next attempt publishes a whole version.
        version = registry.publish_model(source, root, NAME)
        assert registry.list_versions(root, NAME) == [version.rsplit("/", 1)[-1]]
    finally:
        server.stop()
