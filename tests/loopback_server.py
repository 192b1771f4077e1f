"""A threaded HTTP server on 127.0.0.1 for the tests' stand-ins of remote APIs (the Kubernetes
API in k8s_standin.py, Kubeflow Pipelines in kfp_standin.py): start, stop, address, ``with``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self


class LoopbackServer:
    """Serves ``handler_class()`` on a free port of 127.0.0.1 in a background thread. The handler
    class gets a ``standin`` attribute pointing at this object."""

    thread_name = "standin"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {type(self).__name__} is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler; a method, so that it may be defined below its stand-in."""
        raise NotImplementedError

    def start(self) -> Self:
        handler = type("Handler", (self.handler_class(),), {"standin": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        # A handler that never answers (a silent host) must not hold up closing the server.
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def before_stop(self) -> None:
        """What a stand-in releases before the server closes (its handlers, what it started)."""

    def stop(self) -> None:
        self.before_stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
