"""A stand-in server that answers every request with ``204 No Content``.

The WHATWG HTML standard's ``EventSource`` (section 9.2, "Server-sent events") reconnects after a
network error, but *fails the connection for good* on any answer that is not a ``200`` with
``Content-Type: text/event-stream``; a ``204 No Content`` is the polite way for a server to say
"stop reconnecting". To show it, stop the server and put this in its place on the same port::

    server.stop()
    stand_in = NoContentServer(server.port)   # EventSource's next retry gets a 204: CLOSED
    ...
    stand_in.close(); server = start_server(port=server.port)   # back; EventSource stays closed

It allows every ``Origin`` (``Access-Control-Allow-Origin`` echoes it): without that header a
cross-origin page would see a CORS failure — a network error, which ``EventSource`` retries —
instead of the 204.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["NoContentServer"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _no_content(self) -> None:
        self.server.answered += 1
        self.send_response(204)
        origin = self.headers.get("Origin")
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Headers", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_OPTIONS = _no_content

    def log_message(self, format: str, *args: object) -> None:  # quiet: no output in a cell
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    answered = 0


class NoContentServer:
    """``NoContentServer(port)``: answers ``204`` on 127.0.0.1:``port`` until :meth:`close`;
    ``answered`` counts the requests."""

    def __init__(self, port: int) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self.port = port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="transport-demo-204", daemon=True
        )
        self._thread.start()

    @property
    def answered(self) -> int:
        return self._server.answered

    def close(self) -> None:
        """Stop answering and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> NoContentServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
