"""What a failed gs:// request says, with real exceptions from the real client against
fake-gcs-server: (a) an upload was interrupted, (b) the store is unreachable, (c) a write-once
object already exists. Each is one line that names the URI and what to do."""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path

import pytest
from storage_helpers import MIB, bytes_read_by, random_file

from mlstages.components.common import storage
from mlstages.components.common.emulator import EmbeddedGCS, free_port
from mlstages.components.common.errors import ObjectExists, StorageError, StorageNotFound

# The package exports a function named client, which hides the module of that name.
storage_client = importlib.import_module("mlstages.components.common.storage.client")

pytestmark = pytest.mark.usefixtures("no_external_network")


def test_b_a_write_to_a_closed_port_says_the_store_is_unreachable(monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv(storage.RETRY_TIMEOUT_ENV, "1")
    with pytest.raises(StorageError) as caught:
        storage.write_bytes("gs://some-bucket/models/v1/metadata.json", b"{}", if_absent=True)
    message = str(caught.value)
    assert message.startswith("cannot look up gs://some-bucket/models/v1/metadata.json: ")
    assert f"the GCS emulator at http://127.0.0.1:{port} is unreachable (" in message
    assert "Connection refused" in message and "gave up after retrying for 1 s" in message
    assert "interrupted" not in message and "\n" not in message


def test_c_a_second_write_once_write_says_the_object_exists(gcs_bucket):
    uri = gcs_bucket + "/models/v1/evaluation.json"
    storage.write_bytes(uri, b'{"f1": 0.9}', if_absent=True)
    with pytest.raises(ObjectExists) as caught:
        storage.write_bytes(uri, b'{"f1": 0.5}', if_absent=True)
    assert str(caught.value).startswith(f"{uri} already exists (generation ")
    assert "will not be overwritten" in str(caught.value)
    assert storage.read_bytes(uri) == b'{"f1": 0.9}'


def test_c_a_412_from_the_store_is_the_same_message(gcs_bucket):
    # Straight through the translation: the real client, a real 412 from the emulator.
    uri = gcs_bucket + "/taken.bin"
    storage.write_bytes(uri, b"first")
    bucket, name = storage.split_gcs_uri(uri)
    blob = storage.client().bucket(bucket).blob(name)
    with pytest.raises(ObjectExists, match=r"taken.bin already exists \(or changed since it was read"):
        with storage_client._gcs_errors(uri, "write", upload=True):
            blob.upload_from_string(b"second", if_generation_match=0)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/<pid>/io")
def test_a_a_vanished_upload_session_is_an_interruption_not_a_missing_object(tmp_path, monkeypatch):
    # Small chunks make the upload a resumable session of many requests; the server keeps its
    # sessions in memory and forgets them when it restarts, so the next chunk finds the session
    # gone (404). The filesystem backend keeps the bucket on disk: with the memory backend the
    # bucket is re-created only after the server answers, and a chunk retried in between would
    # rightly be told that the bucket is missing (the flake CI met).
    monkeypatch.setattr(storage_client, "UPLOAD_CHUNK_BYTES", 256 * 1024)
    monkeypatch.setenv(storage.RETRY_TIMEOUT_ENV, "20")
    size = 48 * MIB
    source = random_file(tmp_path / "big.bin", size, seed=5)
    uri = "gs://sessions/model/big.bin"
    server = EmbeddedGCS(root=tmp_path / "store", buckets=["sessions"], export_environment=False)
    server.start()
    for name, value in server.environment.items():
        monkeypatch.setenv(name, value)
    try:
        errors: list[BaseException] = []

        def upload() -> None:
            try:
                storage.upload_file(source, uri)
            except BaseException as exc:
                errors.append(exc)

        baseline = bytes_read_by(server.pid)
        writer = threading.Thread(target=upload)
        writer.start()
        deadline = time.monotonic() + 30
        while bytes_read_by(server.pid) - baseline < size // 4:
            assert time.monotonic() < deadline and writer.is_alive(), "the upload never got going"
            time.sleep(0.002)
        server.stop()
        server.start()  # same port, no sessions
        writer.join(timeout=60)
        assert not writer.is_alive()
        assert len(errors) == 1 and not isinstance(errors[0], StorageNotFound), errors
        message = str(errors[0])
        assert message == (
            f"the upload of {uri} to the GCS emulator at {server.endpoint} was interrupted (the upload "
            "session no longer exists on the store); nothing was published, run again"
        )
        assert not storage.exists(uri)
    finally:
        server.stop()
