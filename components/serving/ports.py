"""Whether the model server can listen where it is told to, known before the model is loaded.

The check binds the very addresses the server will bind: uvicorn listens through asyncio's
``create_server``, which resolves the host with ``AI_PASSIVE``, sets ``SO_REUSEADDR`` (so a port
left in TIME_WAIT by a stopped server is usable) and, for IPv6, ``IPV6_V6ONLY``. A probe that
differs from that would refuse ports the server could use, or pass ports it cannot. A listing of
listening sockets (psutil) would miss a port held by another user's process or a socket bound but
not listening, which a bind does not.

A port taken after the check (by another process, in the moment the model loads) still fails in
uvicorn, which logs the OSError itself and exits; ``BindErrorCatcher`` keeps that error so that the
server reports it as the same one line.
"""

from __future__ import annotations

import errno
import logging
import socket

from mlstages.components.common.errors import ParameterError

# In PortInUse's message, which serve_in_background (process.py) looks for in a server's log.
IN_USE = "is already in use by another process"


class CannotListen(ParameterError):
    """The server cannot listen on the host and port it was given."""

    def __init__(self, message: str, host: str, port: int) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class PortInUse(CannotListen):
    """Another process already listens on (or holds) the port."""


def listen_error(
    host: str, port: int, exc: OSError, *, port_option: str = "http_port", host_option: str = "host"
) -> CannotListen:
    """The one-line error for a failed bind of ``host``:``port``, naming what to pass instead.
    ``port_option`` and ``host_option`` are the names the caller's user knows (``--port`` for
    ``mlstages serve``, ``--http_port`` for the serving module, the parameter in Python)."""
    where = host or "every interface"
    if exc.errno == errno.EADDRINUSE:
        return PortInUse(
            f"port {port} on {where} {IN_USE}; pass {port_option} with a free port",
            host,
            port,
        )
    if exc.errno == errno.EACCES:
        hint = f"ports below 1024 need privileges: pass {port_option} with a port above 1023"
    elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        hint = f"pass {host_option} with an address of this machine (127.0.0.1 for this machine only)"
    else:
        hint = f"pass another {host_option} or {port_option}"
    reason = exc.strerror or str(exc)
    return CannotListen(f"cannot listen on {where} port {port}: {reason}; {hint}", host, port)


def check_can_listen(
    host: str, port: int, *, port_option: str = "http_port", host_option: str = "host"
) -> None:
    """Bind every address the server would bind for ``host``:``port``, then let go of them.

    Raises:
        PortInUse: another process holds the port on one of those addresses.
        CannotListen: any other refusal (a host that is not this machine's, a privileged port).
    """
    options = {"port_option": port_option, "host_option": host_option}
    try:
        # asyncio's create_server reads an empty host as "every interface", as None does here.
        addresses = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise listen_error(host, port, exc, **options) from None
    probes: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            probe = socket.socket(family, kind, proto)
            probes.append(probe)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(address)
    except OSError as exc:
        raise listen_error(host, port, exc, **options) from None
    finally:
        for probe in probes:
            probe.close()


class BindErrorCatcher(logging.Filter):
    """On uvicorn's ``uvicorn.error`` logger: keeps the OSError of a failed bind, and keeps its raw
    line ("[Errno 98] error while attempting to bind ...") out of the log.

    uvicorn logs the exception object itself and then calls ``sys.exit(3)``, both when it serves
    alone and when KServe's multi-worker server binds the socket, so the error reaches the caller
    only through this filter."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[OSError] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, OSError):
            self.errors.append(record.msg)
            return False
        return True
