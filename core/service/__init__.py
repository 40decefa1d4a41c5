"""``nextpick serve``: a local HTTP service answering from one run and taking new events.

``core.service.status`` (the status file the studio reads) needs nothing beyond the standard
library; the HTTP layer in ``core.service.app`` needs the ``[serve]`` extra (FastAPI, uvicorn)
and is only imported by ``make_server``.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Optional

from core.errors import NextPickError
from core.service.status import ServiceStatus, read_status

__all__ = ["WRITE_WAIT_S", "ServiceRefused", "ServiceStatus", "listening_socket", "make_server", "read_status",
           "refusal"]

WRITE_WAIT_S = 10.0  # how long a POST /events waits for another writer (an import) before answering 503


class ServiceRefused(NextPickError):
    """A service that must not start as asked (an open address without a token, a second service)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(host: str, token: Optional[str], workspace_path) -> Optional[str]:
    """Why a service may not start this way, or None.

    Only this machine may call a service without a token: on any other address anyone on the
    network could read every user's history and write events. Two services on one workspace
    would each report the other's status as theirs.
    """
    if not is_loopback(host) and not token:
        return (f"binding to {host} lets other machines call the service: give a --token "
                "(clients send `Authorization: Bearer TOKEN`), or keep the default 127.0.0.1")
    running = read_status(workspace_path)
    if running is not None:
        return f"a service is already running on this workspace: {running.url} (pid {running.pid})"
    return None


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, for ``uvicorn.Server.run(sockets=[...])``: bound before the
    service says where it listens, so an address in use is one ServiceRefused line instead of an
    announcement followed by the server's own error (and exit status 3)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = (error.strerror or str(error)).lower()
        raise ServiceRefused(f"cannot listen on {host}:{port}: {reason}",
                             "Give another --port, or stop the program that listens there.") from None
    return sock


def make_server(engine, run: int, host: str = "127.0.0.1", port: int = 8000, token: Optional[str] = None,
                log_level: str = "warning", follow: bool = False):
    """A ``uvicorn.Server`` serving ``run`` of ``engine``'s workspace (with ``follow``, then whichever
    run becomes its serving run: ``core.service.follow``); ``.run()`` blocks until stopped (Ctrl+C,
    or ``server.should_exit = True`` from another thread). ServiceRefused when it must not start."""
    import uvicorn

    from core.service.app import Service, create_app

    why = refusal(host, token, engine.workspace.path)
    if why is not None:
        raise ServiceRefused(why)
    shown = f"[{host}]" if ":" in host else host
    service = Service(engine, run, f"http://{shown}:{port}", token, follow)
    # uvicorn's defaults otherwise: uvloop and httptools when installed (the serve extra installs
    # both); no access log and no proxy-header rewriting (nothing here reads the client's
    # address): each was a layer of Python on every request.
    config = uvicorn.Config(create_app(service), host=host, port=port, log_level=log_level, access_log=False,
                            proxy_headers=False, limit_concurrency=256, timeout_keep_alive=30)
    return uvicorn.Server(config)
