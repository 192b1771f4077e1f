"""The HTTP server: KServe's ModelServer with a body-size limit and a bounded log, serving one model
in the foreground."""

from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Any

import kserve

from mlstages.components.common.errors import ParameterError
from mlstages.components.common.registry import check_model_name
from mlstages.components.serving import server_log
from mlstages.components.serving.model import SklearnPipelineModel
from mlstages.components.serving.ports import BindErrorCatcher, check_can_listen, listen_error
from mlstages.components.serving.prediction_log import DEFAULT_MAX_ROWS, DEFAULT_MAX_SECONDS
from mlstages.components.serving.protocol import require_integer_shapes

DEFAULT_HTTP_PORT = 8080


# A 100-row request of raw rows is about 20 KB; 4 MiB holds tens of thousands of rows and keeps a
# single request from occupying the server (and its memory) for long.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is read or parsed.

    uvicorn and Starlette set no body limit of their own. A declared Content-Length over the limit
    is refused at once; a chunked body is counted as it arrives.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        received = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send, received)

    async def _refuse(self, send: Any, size: int) -> None:
        body = json.dumps(
            {
                "error": f"the request body ({size:,} bytes or more) exceeds this server's limit of "
                f"{self.max_bytes:,} bytes: send fewer rows per request"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _install_body_limit(max_bytes: int) -> None:
    """Add BodySizeLimit to KServe's FastAPI application (once per process, before it starts)."""
    from kserve.model_server import app

    if getattr(app.state, "mlstages_body_limit", None) is None:
        app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
        app.state.mlstages_body_limit = max_bytes
    elif app.state.mlstages_body_limit != max_bytes:
        raise ParameterError(
            f"max_body_bytes={max_bytes}: this process already serves with a limit of "
            f"{app.state.mlstages_body_limit}; start another process for another limit"
        )


class _ModelServer(kserve.ModelServer):
    """kserve.ModelServer on a chosen interface.

    KServe's REST server always binds 0.0.0.0. ModelServer.start() builds the uvicorn servers and
    then calls setup_event_loop() before anything is bound, so this is where the host is set, the
    log bounded (server_log.py) and a failed bind caught (ports.py).
    """

    def __init__(self, *, host: str, request_log: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.request_log = request_log
        self.bind_errors = BindErrorCatcher()

    def setup_event_loop(self) -> None:
        from kserve.model_server import app

        rests = [self._rest_server, getattr(self._rest_multiprocess_server, "_rest_server", None)]
        rests = [rest for rest in rests if rest is not None]
        for rest in rests:
            rest.config.host = self.host
        server_log.install(app, rests, self.request_log)
        # One catcher per process: a server started again in the same process replaces the last one's.
        uvicorn_log = logging.getLogger("uvicorn.error")
        for old in [f for f in uvicorn_log.filters if isinstance(f, BindErrorCatcher)]:
            uvicorn_log.removeFilter(old)
        uvicorn_log.addFilter(self.bind_errors)
        super().setup_event_loop()


def _check_port(name: str, port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ParameterError(f"parameter {name}={port!r} must be a TCP port number (1-65535)")
    return port


def serve(
    model_uri: str,
    name: str,
    *,
    host: str = "127.0.0.1",
    http_port: int = DEFAULT_HTTP_PORT,
    grpc_port: int | None = None,
    workers: int = 1,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    cache_dir: str | os.PathLike | None = None,
    prediction_log: str | None = None,
    prediction_log_max_rows: int = DEFAULT_MAX_ROWS,
    prediction_log_max_seconds: float = DEFAULT_MAX_SECONDS,
    request_log: bool = True,
    port_option: str = "http_port",
    host_option: str = "host",
) -> None:
    """Load the model and serve it with kserve.ModelServer until the process is stopped.

    The parameters and the address are checked first (``host``:``http_port`` is bound and let go,
    ports.py), then the model is loaded: a taken port or a model that does not load raises before
    anything is served. A port taken by another process after the check still raises the same
    PortInUse. ``port_option`` and ``host_option`` name the port and host in those messages as the
    caller's user gives them (``--port`` for ``mlstages serve``).
    ``grpc_port`` enables KServe's V2 gRPC server, which always listens on every interface, so it
    is refused unless ``host`` is a wildcard (0.0.0.0 or ::), as in a cluster.
    ``prediction_log`` (a ``gs://`` prefix or a local folder; off when None) logs every scored
    request there as Parquet shards of at most ``prediction_log_max_rows`` rows, written at least
    every ``prediction_log_max_seconds`` and on shutdown (see prediction_log.py).
    ``request_log`` logs one line per request; off, only server errors (5xx) are logged. A client's
    error is never logged with a traceback (server_log.py).

    Raises:
        ParameterError: a parameter is unusable; PortInUse (ports.py) when the port is taken.
    """
    check_model_name(name)
    _check_port("http_port", http_port)
    if grpc_port is not None:
        _check_port("grpc_port", grpc_port)
        if host not in _WILDCARD_HOSTS:
            raise ParameterError(
                f"parameter grpc_port={grpc_port} with host={host!r}: KServe's gRPC server listens on "
                "every interface ([::]), so it is only enabled with host 0.0.0.0; leave grpc_port unset "
                "to serve REST only"
            )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"parameter workers={workers!r} must be an integer >= 1")
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1024:
        raise ParameterError(f"parameter max_body_bytes={max_body_bytes!r} must be an integer >= 1024")
    options = {"port_option": port_option, "host_option": host_option}
    # Loading a model can take seconds (a download from gs://); a taken port is known at once.
    check_can_listen(host, http_port, **options)
    model = SklearnPipelineModel(
        name,
        model_uri,
        cache_dir=cache_dir,
        prediction_log=prediction_log,
        prediction_log_max_rows=prediction_log_max_rows,
        prediction_log_max_seconds=prediction_log_max_seconds,
    )
    model.load()
    _listen(
        model,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        workers=workers,
        max_body_bytes=max_body_bytes,
        request_log=request_log,
        **options,
    )


def _listen(
    model: SklearnPipelineModel,
    *,
    host: str,
    http_port: int,
    grpc_port: int | None,
    workers: int,
    max_body_bytes: int,
    request_log: bool,
    port_option: str,
    host_option: str,
) -> None:
    """Serve the loaded ``model`` until the process is stopped; a failed bind of the HTTP port
    raises CannotListen (PortInUse for a taken port) instead of uvicorn's exit."""
    _install_body_limit(max_body_bytes)
    require_integer_shapes()
    # KServe 0.21 answers with FastAPI's ORJSONResponse, which FastAPI now marks deprecated; the
    # warning says nothing to an operator and would otherwise fill the log.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    server = _ModelServer(
        host=host,
        request_log=request_log,
        http_port=http_port,
        grpc_port=grpc_port or 0,
        enable_grpc=grpc_port is not None,
        workers=workers,
        # One log line per request is a measurable share of a sub-millisecond request; KServe's
        # Prometheus histograms (/metrics) keep the latencies.
        enable_latency_logging=False,
    )
    try:
        server.start([model])
    except SystemExit:
        if not server.bind_errors.errors:
            raise
        error = server.bind_errors.errors[0]
        raise listen_error(host, http_port, error, port_option=port_option, host_option=host_option) from None
