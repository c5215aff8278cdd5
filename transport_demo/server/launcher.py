"""The launcher notebooks use: ``start_server()`` runs uvicorn in a daemon thread with its own loop.

Known pitfalls handled here:

* We bind the socket ourselves, so a busy port is a clear :class:`PortInUseError` at once, and
  ``port=0`` gives a free port we can read back; uvicorn's own failed bind calls ``sys.exit``,
  which in a thread only ends the thread and leaves a ``while not started`` loop hanging.
* uvicorn waits for open connections before it stops; SSE streams, held polls and WebSockets
  never end by themselves, so :class:`DemoServer` ends them (``hub.close()``) first.
* Nothing is printed: log records go to a bounded in-memory buffer (``server.log_lines()``),
  because whatever a thread prints lands in whichever notebook cell happens to be running.
* The thread's loop is its own, so the kernel's running loop is untouched and ``nest_asyncio``
  is not needed.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import html
import socket
import ssl
import threading
import time
from typing import Any

import uvicorn

from . import logs, urls
from .app import create_app
from .backend import Backend, make_hub
from .certificates import Certificate, certificate_for
from .https_server import HttpsServer, TlsServerLoop
from .join_page import join_card
from .settings import Settings
from .socket_guard import GuardedHttpProtocol, GuardedWebSocketProtocol, SocketLimits

__all__ = [
    "DemoServer",
    "PortInUseError",
    "RunningServer",
    "certificate_for",
    "start_server",
    "stop_all",
]

STARTUP_DEADLINE = 10.0  # seconds; a healthy start takes well under 1 s


class PortInUseError(OSError):
    """The port is held by another process (or another server of this process)."""


class DemoServer(uvicorn.Server):
    """uvicorn's server, which first ends the hub's streams and held polls when it shuts down."""

    def __init__(self, config: uvicorn.Config, hub: Backend) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.hub.close()
        await super().shutdown(sockets)


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration we run with, from the launcher and the command line alike."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "asyncio",
        # httptools (a dependency: never fall back to h11 silently) with bounds on header time,
        # header size and sockets per address (socket_guard.py)
        "http": GuardedHttpProtocol,
        # websockets-sansio, closing cleanly after a 1009 (ws_protocol.py), counted likewise
        "ws": GuardedWebSocketProtocol,
        "ws_max_size": settings.max_envelope_bytes,
        "ws_per_message_deflate": settings.ws_compression,
        "timeout_graceful_shutdown": 1,
        "lifespan": "on",
        **overrides,
    }
    config = uvicorn.Config(app, **options)
    # Read by the protocols above; a plain attribute, so that it reaches --workers processes with
    # the rest of the pickled configuration.
    config.socket_limits = SocketLimits(  # type: ignore[attr-defined]
        header_timeout=settings.header_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_sockets_per_address=settings.max_sockets_per_address,
    )
    return config


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; :class:`PortInUseError` names the port if it's taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it a response's body waits ~40 ms behind its headers (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # SO_REUSEADDR lets a restarted server take its port back from TIME_WAIT at once; on Linux it
    # does not let two listeners share a port, so a busy port still fails here.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            error = PortInUseError(
                f"Port {port} on {host} is already in use by another process. Stop that process "
                f"or use another port (port {port + 1}, say, or 0 for any free port)."
            )
            error.errno = exc.errno
            raise error from None
        raise
    sock.listen(2048)
    return sock


class RunningServer:
    """A server running in a background thread: ``url``, ``browser_url``, ``hub``, ``settings``
    and ``stop()``."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings = settings
        self.hub: Backend = make_hub(settings)
        self.host = settings.host
        self.port: int = sock.getsockname()[1]
        self.url = urls.server_url(self.host, self.port, scheme=settings.scheme)
        self.ws_url = urls.server_url(
            self.host, self.port, scheme="wss" if settings.https else "ws"
        )
        self.certificate: Certificate | None = certificate_for(settings) if settings.https else None
        """With ``https=True``: the certificate served (``.fingerprint``, ``.cert_file``)."""
        # WebTransport listens on UDP at the same port number, with --https's certificate if any.
        self.app = create_app(settings, hub=self.hub, port=self.port, certificate=self.certificate)
        self._error: BaseException | None = None
        self._prepare(sock)

    def _prepare(self, sock: socket.socket) -> None:
        """A uvicorn server and its thread for ``sock`` (used again by :meth:`restart`)."""
        config = uvicorn_config(
            self.app,
            self.settings,
            port=self.port,
            log_config=None,
            log_level="info",
            access_log=False,
        )
        self._server: DemoServer | HttpsServer = DemoServer(config, self.hub)
        if self.certificate is not None:
            self._server = HttpsServer(self.app, self.settings, self.hub, self.certificate)
        self._sock = sock
        self._error = None
        self._thread = threading.Thread(
            target=self._run, name=f"transport-demo:{self.port}", daemon=True
        )

    def _run(self) -> None:
        try:
            https = isinstance(self._server, HttpsServer)
            with asyncio.Runner(loop_factory=TlsServerLoop if https else None) as runner:
                runner.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # SystemExit too: uvicorn exits on a failed startup
            self._error = exc
        finally:
            self._sock.close()

    def _start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_DEADLINE
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(
                    f"The server on port {self.port} failed to start: {self._error!r}. "
                    "Recent log lines: " + " | ".join(self.log_lines()[-5:])
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"The server on port {self.port} did not start in time.")
            time.sleep(0.01)

    def restart(self, timeout: float = 2.0, *, down_for: float = 0.0) -> None:
        """Stop the server and start it again on the same port with the same hub: its
        connections, replay buffers and counters survive, so every client reconnects (with
        backoff) and resumes with nothing lost. A real restart loses them unless they are kept
        outside the process (``redis_url``: docs/scaling.md).
        ``down_for`` seconds between the two: long enough for clients to notice (a lesson)."""
        self.stop(timeout)
        time.sleep(down_for)
        self._prepare(bind_socket(self.host, self.port))
        self._start()
        with _registry_lock:
            _servers[(self.settings.host, self.port)] = self

    def ssl_context(self) -> ssl.SSLContext:
        """With ``https=True``: a client-side context that trusts this server's certificate (and
        only it), for ``verify=`` of the clients, httpx and ``websockets``."""
        if self.certificate is None:
            raise ValueError("this server speaks plain HTTP (start it with https=True)")
        return ssl.create_default_context(cafile=str(self.certificate.cert_file))

    @property
    def browser_url(self) -> str:
        """The link to client.html for a person's browser, right where this code runs.

        ``http://127.0.0.1:8000/`` when Python runs on its own; inside a Jupyter server with
        jupyter-server-proxy (JupyterHub, Binder, JupyterLab) the proxied URL relative to the
        Jupyter server's root, ``/user/NAME/proxy/8000/`` or ``/proxy/8000/``, because there the
        browser may reach only the Jupyter server. A notebook cell ending in ``server`` shows it
        as a link. See :mod:`transport_demo.server.urls`.
        """
        return urls.browser_url(self.host, self.port)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._server.should_exit

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the server: end every stream, held poll and WebSocket, and join the thread.

        Returns within ``timeout`` seconds; a server still busy then is forced to exit.
        """
        with _registry_lock:
            for key, server in list(_servers.items()):
                if server is self:
                    del _servers[key]
        if not self._thread.is_alive():
            return
        self._server.should_exit = True
        self._thread.join(timeout * 0.75)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout * 0.25)

    @staticmethod
    def log_lines() -> list[str]:
        """The most recent log lines of the servers in this process (they are never printed)."""
        return list(logs.recent.lines)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RunningServer {self.url} {state}>"

    def _repr_html_(self) -> str:
        """In a notebook, ``server`` alone shows the link to client.html (``browser_url``): a
        relative link (on a hub) is clickable there, where printed text would not be. In
        classroom mode: the join URL for the students and its QR code."""
        if self.settings.classroom:
            return join_card(self.settings.join_url(self.port))
        link = html.escape(self.browser_url, quote=True)
        state = "running" if self.running else "stopped"
        return (
            f'<a href="{link}" target="_blank" rel="noopener">open client.html</a> '
            f"(<code>{link}</code>) · transport-demo at <code>{html.escape(self.url)}</code>, "
            f"{state}"
        )


_servers: dict[tuple[str, int], RunningServer] = {}
_registry_lock = threading.RLock()


def start_server(port: int = 8000, **options: Any) -> RunningServer:
    """Start the server in a background thread, or return the one already running.

    ``options`` are :class:`~transport_demo.server.settings.Settings` fields: ``host``,
    ``heartbeat_interval``, ``poll_timeout``, ``resume_grace``, ``max_message_bytes``,
    ``max_queue``, ``max_connections``, ``allowed_origins``, ...

    * Same port and same settings as a running server: that server is returned (so the cell can
      be run again). Other settings: it is restarted with them. Another port: another server.
      ``port=0`` starts a new server on a free port each time (read ``server.port``).
    * A port held by another process raises :class:`PortInUseError`, at once.
    * Returns once the server accepts connections.
    """
    settings = Settings(port=port, **options)
    with _registry_lock:
        existing = _servers.get((settings.host, port)) if port else None
        if existing is not None:
            if existing.running and existing.settings == settings:
                return existing
            existing.stop()
        logs.keep_quiet()
        server = RunningServer(settings, bind_socket(settings.host, port))
        server._start()
        _servers[(settings.host, server.port)] = server
        return server


def stop_all() -> None:
    """Stop every server this process started (also run when the interpreter exits)."""
    with _registry_lock:
        servers = list(_servers.values())
    for server in servers:
        server.stop()


atexit.register(stop_all)
