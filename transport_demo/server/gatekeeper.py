"""Who may talk to the server at all: the ``Host`` allow-list on every request and WebSocket, and
the ``Origin`` allow-list on every HTTP request (the WebSocket's Origin is checked in
:mod:`transport_demo.server.websocket`, where the handshake is answered).

A pure ASGI middleware, so that a refused request costs no routing, no body and no hub call.

* A ``Host`` that does not name this server (:class:`~transport_demo.server.origins.HostPolicy`)
gets
  ``421 Misdirected Request`` with ``host_not_allowed`` (RFC 9110 §15.5.20: this server will not
  answer for that name): what stops a DNS-rebinding page.
* An ``Origin`` outside the allow-list (:class:`~transport_demo.server.origins.OriginPolicy`) gets
  ``403`` with ``origin_not_allowed``. CORS alone does not stop a foreign page from *using* the
  server: a ``POST`` with no body or a ``text/plain`` one, and an ``EventSource``, need no
  preflight, and the request is made even though the page may not read the answer, so any site a
  student visits could spend that student's connection places. A request without ``Origin``
  (curl, the Python clients, a page's own navigation) is allowed, as before.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from . import events
from .http_errors import error_response
from .origins import HostPolicy, OriginPolicy
from .protocol import ErrorCode

__all__ = ["Gatekeeper"]


class Gatekeeper:
    """Refuses requests whose ``Host`` or (HTTP) ``Origin`` is not allowed; passes the rest on."""

    def __init__(self, app: ASGIApp, *, hosts: HostPolicy, origins: OriginPolicy) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or await self.admit(scope, receive, send):
            await self.app(scope, receive, send)

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Whether an HTTP request or WebSocket may go on; if not, it has been answered (the hot
        paths in front of the app, :mod:`.hot_paths`, call this too)."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self.hosts.allows(host):
            detail = f"This server does not answer for the host {host!r}."
            await _refuse(scope, receive, send, 421, ErrorCode.HOST_NOT_ALLOWED, detail)
            return False
        if scope["type"] == "http":
            origin = headers.get("origin")
            if not self.origins.allows(origin, host):
                detail = f"Origin {origin!r} is not allowed."
                await _refuse(scope, receive, send, 403, ErrorCode.ORIGIN_NOT_ALLOWED, detail)
                return False
        return True


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str
) -> None:
    if scope["type"] == "http":
        await error_response(status, code, detail)(scope, receive, send)
        return
    # A WebSocket handshake: an HTTP answer where the server supports it (uvicorn does), else a
    # close before accepting (the client sees the handshake fail).
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        body = events.encode(events.error_event(None, code, detail)).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
