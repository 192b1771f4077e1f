"""pytest fixtures for Google Cloud Storage, served by the embedded emulator on 127.0.0.1.

Loaded as a plugin by tests/conftest.py. One emulator (memory backend) serves the whole session;
each test that asks for ``gcs_bucket`` gets a bucket of its own and the emulator's environment
(STORAGE_EMULATOR_HOST, the offline auth variables, GOOGLE_CLOUD_PROJECT) in os.environ for the
duration of the test only, so that kfp.local subprocesses started by the test reach the same
emulator and tests that do not ask for it never see it.

- ``gcs_server``: the session's EmbeddedGCS.
- ``gcs_environment``: the emulator's variables, set for this test and restored afterwards.
- ``gcs_bucket``: ``gs://<fresh bucket>`` (no trailing slash), emptied and deleted afterwards.
- ``no_external_network``: fails the test if anything in this process resolves or connects to an
  address outside loopback (Google's metadata server, storage.googleapis.com, ...).
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Iterator

import pytest

from mlstages.components.common.emulator import EmbeddedGCS

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[EmbeddedGCS]:
    """One fake-gcs-server for the session (memory backend, free port on 127.0.0.1)."""
    server = EmbeddedGCS(export_environment=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gcs_environment(gcs_server: EmbeddedGCS) -> Iterator[dict[str, str]]:
    """The emulator's environment variables, in os.environ for this test only."""
    with gcs_server.exported_environment() as variables:
        yield variables


@pytest.fixture
def gcs_bucket(gcs_server: EmbeddedGCS, gcs_environment: dict[str, str]) -> Iterator[str]:
    """A new, empty bucket as ``gs://name``; deleted with its objects after the test."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    gcs_server.ensure_bucket(name)
    try:
        yield f"gs://{name}"
    finally:
        gcs_server.delete_bucket(name)


def is_loopback_host(host: object) -> bool:
    """True for loopback addresses and names; False for anything that could leave the machine."""
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard, used for binding
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_external_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse name lookups and connections to anything but loopback in this process."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def refuse(what: object) -> None:
        raise AssertionError(f"test tried to reach {what!r}, which is not on loopback")

    def getaddrinfo(host, *args, **kwargs):
        if not is_loopback_host(host):
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback_host(address[0]):
            refuse(address)

    def connect(self, address):
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
