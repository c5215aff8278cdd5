"""The hot paths, served as plain ASGI endpoints in front of FastAPI's routing.

A held poll's answer, an SSE stream and a WebSocket are what a crowd makes thousands of; through
FastAPI each also paid for route matching over every route, a request object, dependency
resolution and its exit stack, a response object and, for a stream, a task group and a task
waiting for the client to leave. :class:`HotPaths` sends the requests for the endpoints it is
given (``app.HOT_PATHS``) straight to them and everything else on to FastAPI, which keeps the
schema (it still declares these routes: ``/docs`` shows them) and the cold endpoints.

It sits inside the Host/Origin gatekeeper, CORS and the body limit, so that every request meets
the same checks either way; ``Settings.plain_hot_paths=False`` leaves it out, and the same
requests then go through FastAPI's routes (``tests/test_hot_paths.py`` holds both to one
contract).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["WEBSOCKET", "Endpoint", "HotPaths"]

Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]
"""A plain ASGI endpoint: it reads the app's state from ``scope["app"].state``."""

WEBSOCKET = "WEBSOCKET"
"""The "method" under which a WebSocket endpoint is registered."""


class HotPaths:
    """ASGI middleware: ``endpoints[(method, path)]`` serves a request of that method (an HTTP
    method, or :data:`WEBSOCKET`) and exact path; anything else goes to ``app``."""

    def __init__(self, app: ASGIApp, endpoints: Mapping[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            endpoint = self.endpoints.get((scope["method"], scope["path"]))
        elif kind == "websocket":
            endpoint = self.endpoints.get((WEBSOCKET, scope["path"]))
        else:
            endpoint = None
        if endpoint is None:
            await self.app(scope, receive, send)
        else:
            await endpoint(scope, receive, send)
