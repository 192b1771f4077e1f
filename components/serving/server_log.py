"""The server's log: at most one line per request, and no traceback for a client's mistake.

KServe 0.21 logs every request three times (uvicorn's access line and two ``kserve.trace`` timing
lines, even with latency logging off) and logs a full traceback, about 2.8 KB, for every 4xx: a
client sending bad requests wrote 37 MB of log in two minutes. Here:

- uvicorn's access log and KServe's timing lines are off (the latencies stay in ``/metrics``);
- ``RequestLog`` writes one line per request: method, path, status, milliseconds and, for an error,
  the message the client got (cut at ``MAX_MESSAGE_CHARS``);
- ``ClientErrorFilter`` drops KServe's traceback for errors that are the client's (400, 404, 413,
  422) and hands their message to that line; a 5xx keeps its traceback, as it is the server's bug;
- ``request_log=False`` (``--request_log off``) leaves only the 5xx lines.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

ACCESS_LOGGER = "mlstages.serving.access"
MAX_MESSAGE_CHARS = 300

# The request being served, for the filter that runs inside KServe's exception handlers: a mutable
# holder, so that what the handler stores is seen by the middleware whatever context it ran in.
_CURRENT: ContextVar[dict[str, Any] | None] = ContextVar("mlstages_request", default=None)

logger = logging.getLogger(ACCESS_LOGGER)


def _client_error_types() -> tuple[type[BaseException], ...]:
    from kserve.errors import InvalidInput, ModelNotFound

    return (InvalidInput, ModelNotFound)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


class ClientErrorFilter(logging.Filter):
    """On KServe's logger: a client error's traceback becomes the request line's message."""

    def __init__(self) -> None:
        super().__init__()
        self._client_errors = _client_error_types()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None or not isinstance(error, self._client_errors):
            return True
        holder = _CURRENT.get()
        if holder is not None:
            holder["error"] = _short(str(error))
        return False


class RequestLog:
    """ASGI middleware: one log line per HTTP request (only 5xx ones when ``enabled`` is False)."""

    def __init__(self, app: Any, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        holder: dict[str, Any] = {"status": None, "error": None}
        token = _CURRENT.set(holder)
        started = time.perf_counter()

        async def recorded_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                holder["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded_send)
        finally:
            _CURRENT.reset(token)
            status = holder["status"] or 500
            if self.enabled or status >= 500:
                milliseconds = (time.perf_counter() - started) * 1000
                line = f"{scope.get('method', '-')} {scope.get('path', '-')} {status} {milliseconds:.1f}ms"
                if holder["error"]:
                    line += f": {holder['error']}"
                logger.log(logging.ERROR if status >= 500 else logging.INFO, line)


def install(app: Any, rest_servers: list[Any], request_log: bool) -> None:
    """Bound the log of ``app`` (KServe's FastAPI app), once per process, before it serves."""
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    kserve_logger = logging.getLogger("kserve")
    if not any(isinstance(f, ClientErrorFilter) for f in kserve_logger.filters):
        kserve_logger.addFilter(ClientErrorFilter())
    for rest in rest_servers:
        rest.config.access_log = False
    logging.getLogger("uvicorn.access").disabled = True
    if getattr(app.state, "mlstages_request_log", None) is None:
        app.add_middleware(RequestLog, enabled=request_log)
        app.state.mlstages_request_log = request_log
