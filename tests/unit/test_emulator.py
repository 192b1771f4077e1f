"""The embedded GCS emulator: process lifecycle, environment, buckets, and the test fixtures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from mlstages.components.common import storage
from mlstages.components.common.emulator import (
    CLOSED_LOOPBACK_ADDRESS,
    EmbeddedGCS,
    emulator_binary,
    free_port,
    offline_auth_environment,
)
from mlstages.components.common.errors import ParameterError, StorageError

pytestmark = pytest.mark.usefixtures("no_external_network")

VARIABLES = (
    "STORAGE_EMULATOR_HOST",
    "NO_GCE_CHECK",
    "GCE_METADATA_HOST",
    "GCE_METADATA_ROOT",
    "GCE_METADATA_IP",
    "GOOGLE_CLOUD_PROJECT",
)


@pytest.fixture
def clean_environment(monkeypatch):
    """No emulator variables set, and whatever a test changes is put back afterwards."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_offline_auth_environment_points_at_a_closed_loopback_port():
    variables = offline_auth_environment()
    assert variables["NO_GCE_CHECK"] == "true"
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_ROOT", "GCE_METADATA_IP"):
        assert variables[name] == CLOSED_LOOPBACK_ADDRESS
    host, port = CLOSED_LOOPBACK_ADDRESS.split(":")
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex((host, int(port))) != 0, "something listens on the 'closed' port"


def test_binary_is_bundled():
    binary = emulator_binary()
    assert binary.is_file() and os.access(binary, os.X_OK)


def test_start_sets_and_stop_restores_the_environment(clean_environment):
    clean_environment.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")  # an earlier value
    server = EmbeddedGCS(buckets=["env-test"])
    server.start()
    try:
        assert server.running
        assert server.endpoint == f"http://127.0.0.1:{server.port}"
        assert os.environ["STORAGE_EMULATOR_HOST"] == server.endpoint
        assert os.environ["NO_GCE_CHECK"] == "true"
        assert os.environ["GCE_METADATA_HOST"] == CLOSED_LOOPBACK_ADDRESS
        assert os.environ["GCE_METADATA_IP"] == CLOSED_LOOPBACK_ADDRESS
        assert os.environ["GOOGLE_CLOUD_PROJECT"] == "mlstages-local"
        assert server.environment == {name: os.environ[name] for name in server.environment}
        assert storage.exists("gs://env-test")
    finally:
        server.stop()
    assert not server.running
    assert os.environ["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:1"
    for name in VARIABLES[1:]:
        assert name not in os.environ


def test_an_existing_project_is_kept(clean_environment):
    clean_environment.setenv("GOOGLE_CLOUD_PROJECT", "team-project")
    with EmbeddedGCS() as server:
        assert server.environment["GOOGLE_CLOUD_PROJECT"] == "team-project"
        assert os.environ["GOOGLE_CLOUD_PROJECT"] == "team-project"
    assert os.environ["GOOGLE_CLOUD_PROJECT"] == "team-project"


def test_exported_environment_is_scoped_to_a_block(clean_environment):
    server = EmbeddedGCS(export_environment=False)
    server.start()
    try:
        assert "STORAGE_EMULATOR_HOST" not in os.environ
        with server.exported_environment() as variables:
            assert (
                os.environ["STORAGE_EMULATOR_HOST"] == server.endpoint == variables["STORAGE_EMULATOR_HOST"]
            )
        assert "STORAGE_EMULATOR_HOST" not in os.environ
    finally:
        server.stop()


def test_restart_on_the_same_port_memory_backend_starts_empty(clean_environment):
    server = EmbeddedGCS(buckets=["restart-test"])
    server.start()
    try:
        port = server.port
        storage.write_bytes("gs://restart-test/x", b"x")
        server.stop()
        assert not server.running
        server.start()
        assert server.port == port
        assert storage.exists("gs://restart-test")  # buckets are created again at every start
        assert not storage.exists("gs://restart-test/x")
    finally:
        server.stop()


def test_filesystem_backend_keeps_objects_across_restarts(tmp_path, clean_environment):
    server = EmbeddedGCS(root=tmp_path / "store", buckets=["kept"])
    server.start()
    try:
        storage.write_bytes("gs://kept/models/v1/model.bin", b"weights")
        assert server.log_path == tmp_path / "store" / "fake-gcs-server.log"
        server.stop()
        # Users of the embedded mode can look at what was written.
        assert (tmp_path / "store" / "buckets" / "kept").is_dir()
        assert any((tmp_path / "store" / "buckets" / "kept").iterdir())
        server.start()
        assert storage.read_bytes("gs://kept/models/v1/model.bin") == b"weights"
    finally:
        server.stop()


def test_a_port_in_use_fails_with_the_log_tail(clean_environment):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedGCS(port=port)
        with pytest.raises(StorageError) as caught:
            server.start()
    message = str(caught.value)
    assert "the GCS emulator exited with code" in message and f"(port {port})" in message
    assert "address already in use" in message
    assert not server.running
    assert "STORAGE_EMULATOR_HOST" not in os.environ


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="bucket name 'Not_Valid' is not valid"):
        EmbeddedGCS(buckets=["Not_Valid"])
    with pytest.raises(ParameterError, match="parameter port=70000 is not a TCP port"):
        EmbeddedGCS(port=70000)


def test_buckets_need_a_running_server():
    server = EmbeddedGCS(port=free_port())
    with pytest.raises(
        StorageError, match="cannot create bucket 'late': the GCS emulator at .* is not running"
    ):
        server.ensure_bucket("late")


def test_ensure_bucket_is_idempotent_and_delete_bucket_empties_it(gcs_server, gcs_environment):
    gcs_server.ensure_bucket("twice-made")
    gcs_server.ensure_bucket("twice-made")
    for index in range(3):
        storage.write_bytes(f"gs://twice-made/o/{index}", b"x")
    gcs_server.delete_bucket("twice-made")
    assert not storage.exists("gs://twice-made")
    gcs_server.delete_bucket("twice-made")  # already gone: nothing to do


def test_gcs_bucket_fixture_gives_a_fresh_bucket_and_the_environment(gcs_bucket, gcs_server):
    assert gcs_bucket.startswith("gs://test-") and not gcs_bucket.endswith("/")
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_server.endpoint
    assert os.environ["NO_GCE_CHECK"] == "true"
    assert storage.exists(gcs_bucket)
    assert storage.list_uris(gcs_bucket) == []


def test_subprocesses_inherit_the_emulator(gcs_bucket):
    # kfp.local runs each component in a subprocess: it must reach the same emulator.
    storage.write_bytes(gcs_bucket + "/shared.txt", b"from the parent")
    script = "import sys; from mlstages.components.common import storage; print(storage.read_bytes(sys.argv[1]).decode())"
    result = subprocess.run(
        [sys.executable, "-c", script, gcs_bucket + "/shared.txt"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "from the parent"


_AUDIT_GOOGLE_AUTH = """
import ipaddress, json, sys

attempts = []

def loopback(host):
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False

def audit(event, args):
    # Every name lookup and connection this interpreter makes, whoever makes it, is recorded;
    # raising aborts it, so that nothing leaves the machine even when the check fails.
    if event == "socket.getaddrinfo" and not loopback(args[0]):
        attempts.append(f"lookup {args[0]}")
        raise OSError("blocked: not loopback")
    if event == "socket.connect" and isinstance(args[1], tuple) and not loopback(args[1][0]):
        attempts.append(f"connect {args[1][0]}:{args[1][1]}")
        raise OSError("blocked: not loopback")

sys.addaudithook(audit)
import google.auth
from google.auth.exceptions import DefaultCredentialsError
try:
    google.auth.default()
    outcome = "credentials"
except DefaultCredentialsError:
    outcome = "none"
print(json.dumps({"outcome": outcome, "attempts": attempts}))
"""


def _audit_google_auth(environment: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _AUDIT_GOOGLE_AUTH],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=True,
    )
    return json.loads(result.stdout)


def _no_credentials_environment(tmp_path, **variables: str) -> dict[str, str]:
    environment = {
        k: v for k, v in os.environ.items() if k not in (*VARIABLES, "GOOGLE_APPLICATION_CREDENTIALS")
    }
    # No gcloud user credentials either.
    return {**environment, "HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), **variables}


def test_google_auth_does_not_probe_the_network_in_the_emulator_environment(gcs_server, tmp_path):
    # With no credentials anywhere, google.auth.default() must give up without asking the cloud
    # metadata server (by name or by its link-local address).
    report = _audit_google_auth(_no_credentials_environment(tmp_path, **gcs_server.environment))
    assert report == {"outcome": "none", "attempts": []}


def test_the_network_audit_sees_a_metadata_probe(tmp_path):
    # The check above can fail: without the offline variables, google-auth does try to probe
    # (the audit hook blocks the attempt, so nothing is sent).
    report = _audit_google_auth(_no_credentials_environment(tmp_path))
    assert report["outcome"] == "none"
    assert any("169.254.169.254" in a or "metadata.google.internal" in a for a in report["attempts"]), report
