"""A model server in a subprocess: started on a free port, waited for until ready, stopped with its
process; what infra validation, deploy's local target and the tests use."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

from mlstages.components.common.errors import MlstagesError, ParameterError
from mlstages.components.common.registry import check_model_name
from mlstages.components.serving.app import DEFAULT_MAX_BODY_BYTES
from mlstages.components.serving.ports import IN_USE
from mlstages.components.serving.prediction_log import DEFAULT_MAX_ROWS, DEFAULT_MAX_SECONDS

START_TIMEOUT_SECONDS = 60.0


STOP_TIMEOUT_SECONDS = 10.0


# Starts on a fresh port when the one found free was taken before the server bound it.
PORT_ATTEMPTS = 3


LOG_TAIL_CHARS = 4000


class ServerStartError(MlstagesError):
    """The model server did not start or did not become ready."""


@dataclass(frozen=True)
class ServerHandle:
    """A running model server started by serve_in_background."""

    name: str
    model_uri: str
    base_url: str
    pid: int
    log_path: Path

    @property
    def v1_predict_url(self) -> str:
        return f"{self.base_url}/v1/models/{self.name}:predict"

    @property
    def v1_model_url(self) -> str:
        return f"{self.base_url}/v1/models/{self.name}"

    @property
    def v2_infer_url(self) -> str:
        return f"{self.base_url}/v2/models/{self.name}/infer"

    @property
    def v2_model_url(self) -> str:
        return f"{self.base_url}/v2/models/{self.name}"

    @property
    def v2_ready_url(self) -> str:
        return f"{self.base_url}/v2/health/ready"

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the server's log (stdout and stderr)."""
        return _tail(self.log_path, chars)


def _tail(path: Path, chars: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return text[-chars:]


def local_session() -> requests.Session:
    """A requests session for the local server: no proxy from the environment, ever."""
    session = requests.Session()
    session.trust_env = False
    return session


def _connect_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextmanager
def serve_in_background(
    model_uri: str,
    name: str,
    *,
    host: str = "127.0.0.1",
    start_timeout_seconds: float = START_TIMEOUT_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_dir: str | os.PathLike | None = None,
    prediction_log: str | None = None,
    prediction_log_max_rows: int = DEFAULT_MAX_ROWS,
    prediction_log_max_seconds: float = DEFAULT_MAX_SECONDS,
    request_log: bool = True,
    python: str | os.PathLike | None = None,
) -> Iterator[ServerHandle]:
    """Run ``python -m mlstages.components.serving`` on a free port until the block ends.

    Yields once ``/v2/health/ready`` answers ready. On exit the server is stopped (SIGTERM, then
    SIGKILL after a few seconds), with every process it started. The log is removed with it unless
    ``log_dir`` is given. ``prediction_log`` and its two limits are passed on to ``serve``; the
    buffered prediction log is written when the server stops. ``request_log=False`` logs only server
    errors, not one line per request. ``python`` is the interpreter that runs the server (default:
    this one); another checkout's ``.venv/bin/python`` serves with that checkout's code, as
    benchmarks/serving_ab.py does to compare two.

    Raises:
        ServerStartError: the server exited or was not ready within ``start_timeout_seconds``;
            the message ends with the tail of its log (a model that does not load says why there).
    """
    check_model_name(name)
    if not start_timeout_seconds > 0:
        raise ParameterError(f"parameter start_timeout_seconds={start_timeout_seconds!r} must be positive")
    own_dir = log_dir is None
    folder = Path(tempfile.mkdtemp(prefix="mlstages-serving-")) if own_dir else Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        options = [] if request_log else ["--request_log=off"]
        if prediction_log:
            options += [
                f"--prediction_log={prediction_log}",
                f"--prediction_log_max_rows={prediction_log_max_rows}",
                f"--prediction_log_max_seconds={prediction_log_max_seconds}",
            ]
        process, handle = _start(
            model_uri, name, host, start_timeout_seconds, max_body_bytes, folder, options, python
        )
        try:
            yield handle
        finally:
            _stop(process)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)


def _start(
    model_uri: str,
    name: str,
    host: str,
    timeout: float,
    max_body_bytes: int,
    folder: Path,
    options: Sequence[str] = (),
    python: str | os.PathLike | None = None,
) -> tuple[subprocess.Popen, ServerHandle]:
    """Start the server on a free port and wait until it is ready. A port found free can be taken
    by another process before the server binds it; then it starts again on another port."""
    from mlstages.components.common.emulator import free_port

    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        log_path = folder / f"{name}-{port}.log"
        command = [
            str(python or sys.executable),
            "-m",
            "mlstages.components.serving",
            f"--model_uri={model_uri}",
            f"--model_name={name}",
            f"--host={host}",
            f"--http_port={port}",
            f"--max_body_bytes={max_body_bytes}",
            *options,
        ]
        with open(log_path, "wb") as log:
            # Its own session (process group), so that stopping it stops every worker it forked.
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        handle = ServerHandle(name, model_uri, f"http://{_connect_host(host)}:{port}", process.pid, log_path)
        try:
            _wait_until_ready(process, handle, port, timeout)
            return process, handle
        except BaseException as exc:
            _stop(process)
            # The server says so in one line (ports.py), before it loads the model.
            lost_port = isinstance(exc, ServerStartError) and IN_USE in handle.log_tail()
            if not lost_port or attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def _listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself listens on ``port``: a ready answer from that port could
    otherwise come from another server that took the port first."""
    import psutil

    try:
        process = psutil.Process(pid)
        connections = process.net_connections if hasattr(process, "net_connections") else process.connections
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections(kind="tcp"))
    except psutil.Error:
        return False


def _wait_until_ready(process: subprocess.Popen, handle: ServerHandle, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with local_session() as session:
        while True:
            code = process.poll()
            if code is not None:
                raise ServerStartError(
                    f"the model server for {handle.model_uri} exited with code {code} before it was "
                    f"ready. The end of its log ({handle.log_path.name}):\n{handle.log_tail()}"
                )
            with suppress(requests.RequestException, ValueError):
                answer = session.get(handle.v2_ready_url, timeout=1.0)
                if (
                    answer.status_code == 200
                    and answer.json().get("ready") is True
                    and _listens_on(process.pid, port)
                ):
                    return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"the model server for {handle.model_uri} was not ready after {timeout:g} s. "
                    f"The end of its log ({handle.log_path.name}):\n{handle.log_tail()}"
                )
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left after a grace period."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    # WNOWAIT leaves the exited server unreaped, so its pid (the group's id) cannot be reused by
    # an unrelated process before the group is killed below.
    while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # Workers forked by the server share its process group; none may outlive it.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
