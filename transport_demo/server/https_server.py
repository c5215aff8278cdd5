"""``--https``: the same app over TLS, HTTP/2 chosen by ALPN and HTTP/1.1 still accepted.

Why hypercorn (docs/http2.md has the measurements): it serves HTTP/2 with h2, the maintained
HTTP/2 state machine, and it carries a WebSocket over an HTTP/2 stream (RFC 8441's extended
CONNECT) to the app as an ordinary ASGI ``websocket`` scope; Chromium uses that on a page's own
connection. uvicorn's experimental HTTP/2 (``http="zttp"``) advertises extended CONNECT and then
hands it to the app as a plain request (the WebSocket fails with 404), and granian is a Rust
server outside this suite's Python tools. Plain HTTP stays uvicorn's (:mod:`.launcher`).

:class:`HttpsServer` has the life cycle the launcher and the command line drive
(:class:`~transport_demo.server.launcher.DemoServer`'s): ``serve(sockets)``, ``run(sockets)``,
``started``, ``should_exit``, ``force_exit``. Long streams would hold hypercorn's graceful shutdown
for its whole timeout, so the shutdown trigger ends them first (``hub.close()``), as
``DemoServer.shutdown`` does for uvicorn.

Bounds: hypercorn's own, set from the settings — request head ``max_header_bytes``
(``h11_max_incomplete_size``; on HTTP/2 the header list, ``h2_max_header_list_size``), WebSocket
messages ``max_envelope_bytes``, ``SETTINGS_MAX_CONCURRENT_STREAMS`` 100 per connection. The
uvicorn-only guards of :mod:`.socket_guard` (the header timeout, sockets per address, resetting a
superseded unread stream) do not run here; docs/threat-model.md says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from .backend import Backend
from .certificates import Certificate
from .settings import Settings

__all__ = ["HttpsServer", "TlsServerLoop", "hypercorn_config", "write_secrets_if_asked"]

SSL_SHUTDOWN_TIMEOUT = 0.5
"""Seconds a closing TLS connection waits for the client's close_notify (asyncio's default: 30).
hypercorn's graceful stop waits for every connection to close, and closing TLS waits for the
peer: a client that keeps its connection and does not read (an idle browser tab, httpx) would
hold the stop for half a minute."""

MAX_CONCURRENT_STREAMS = 100
"""HTTP/2 streams one connection may have open (``SETTINGS_MAX_CONCURRENT_STREAMS``, RFC 9113
§5.1.2): where the browser's six-connection limit moves to."""


def hypercorn_config(settings: Settings, certificate: Certificate, sock: socket.socket) -> Config:
    """hypercorn's configuration for ``sock`` (a duplicate of its descriptor: hypercorn closes
    its own) with ``certificate``."""
    config = Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.certfile = str(certificate.cert_file)
    config.keyfile = str(certificate.key_file)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.h11_max_incomplete_size = settings.max_header_bytes
    config.h2_max_header_list_size = settings.max_header_bytes
    config.h2_max_concurrent_streams = MAX_CONCURRENT_STREAMS
    config.websocket_max_message_size = settings.max_envelope_bytes
    config.graceful_timeout = 0.5
    config.ssl_handshake_timeout = settings.header_timeout
    config.accesslog = None
    config.errorlog = logging.getLogger("transport_demo.hypercorn")
    config.include_server_header = False
    return config


class HttpsServer:
    """hypercorn serving ``app`` on one bound socket; see the module docstring. Serve it on a
    :class:`TlsServerLoop` (:meth:`run` does; so does the launcher's thread)."""

    def __init__(
        self, app: Any, settings: Settings, hub: Backend, certificate: Certificate
    ) -> None:
        self.app = app
        self.settings = settings
        self.hub = hub
        self.certificate = certificate
        self.started = False
        self.should_exit = False
        self.force_exit = False

    async def serve(self, sockets: list[socket.socket]) -> None:
        """Serve until :attr:`should_exit` is set; then end the hub's streams and stop."""
        (sock,) = sockets
        config = hypercorn_config(self.settings, self.certificate, sock)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "lifespan":
                await self.app(scope, receive, send)
                return

            async def sent(message: Any) -> None:
                await send(message)
                if message["type"] == "lifespan.startup.complete":
                    # The socket already listens (bound and listening before we start), so a
                    # connection made now waits in its backlog until hypercorn accepts it.
                    self.started = True

            await self.app(scope, receive, sent)

        await serve(app, config, shutdown_trigger=self._stopped, mode="asgi")

    async def _stopped(self) -> None:
        while not self.should_exit:
            await asyncio.sleep(0.05)
        await self.hub.close()

    def run(self, sockets: list[socket.socket]) -> None:
        """:meth:`serve` in a new event loop, in the foreground (the command line)."""
        with asyncio.Runner(loop_factory=TlsServerLoop) as runner:
            runner.run(self.serve(sockets))


def write_secrets_if_asked(context: ssl.SSLContext) -> None:
    """With ``SSLKEYLOGFILE`` set in the environment (the convention curl, Firefox and Chromium
    follow), write each TLS session's secrets there in NSS key log format, so Wireshark decrypts
    a capture of it (``-o tls.keylog_file:PATH``; the relay's ``capture=``). Off unless set, and
    said loudly: anyone with the file reads every session it covers. hypercorn builds its own
    context without ``ssl.create_default_context``, the only place Python reads the variable."""
    path = os.environ.get("SSLKEYLOGFILE")
    if path:
        context.keylog_filename = path
        logging.getLogger("transport_demo.https").warning(
            "TLS secrets are written to %s (SSLKEYLOGFILE): whoever has that file can decrypt "
            "every session of this server. Unset it outside a lesson.",
            path,
        )


class TlsServerLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, with TLS servers that wait :data:`SSL_SHUTDOWN_TIMEOUT` for a closing
    client (hypercorn passes no ``ssl_shutdown_timeout`` of its own)."""

    async def create_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:
        context = kwargs.get("ssl")
        if context is not None:
            kwargs.setdefault("ssl_shutdown_timeout", SSL_SHUTDOWN_TIMEOUT)
            write_secrets_if_asked(context)
        return await super().create_server(*args, **kwargs)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        # That timeout reaches hypercorn's connection task as an error of its own; it is the
        # bound doing its job (a client that would not close), not a fault to log as one.
        error = context.get("exception")
        if isinstance(error, TimeoutError) and "SSL shutdown timed out" in str(error):
            logging.getLogger("transport_demo.hypercorn").info("a TLS client did not close")
            return
        super().call_exception_handler(context)
