"""The hot paths, answered in front of FastAPI: its middleware stack and its routing.

A held poll's answer, an SSE stream and a WebSocket are what a crowd makes thousands of; through
FastAPI each also paid for its error and exception middleware, route matching over every route,
a request object, dependency resolution and its exit stack, a response object and, for a stream,
a task group and a task waiting for the client to leave — and a long-lived request keeps every
layer's suspended frame for its whole life. :class:`HotPaths` sends the requests for the
endpoints it is given (``app.HOT_PATHS``) straight to them, after the same checks the middleware
makes, and everything else on to FastAPI, which keeps the schema (it still declares these routes:
``/docs`` shows them) and the cold endpoints.

The checks are the middleware's own objects, called in the same order: CORS's response headers
(:class:`~starlette.middleware.cors.CORSMiddleware`'s for a simple request: preflights are
``OPTIONS`` and go to FastAPI), the Host and Origin allow-lists
(:class:`~transport_demo.server.gatekeeper.Gatekeeper`), the body limit
(:class:`~transport_demo.server.http_errors.BodyLimit`). ``Settings.plain_hot_paths=False`` turns
this off and the same requests go through FastAPI's routes; ``tests/test_hot_paths.py`` holds both
to one contract, byte for byte.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from .gatekeeper import Gatekeeper
from .http_errors import BodyLimit

__all__ = ["WEBSOCKET", "Endpoint", "HotPaths"]

Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]
"""A plain ASGI endpoint: it reads the app's state from ``scope["app"].state``."""

WEBSOCKET = "WEBSOCKET"
"""The "method" under which a WebSocket endpoint is registered."""


class HotPaths:
    """``endpoints[(method, path)]`` serves a request of that method (an HTTP method, or
    :data:`WEBSOCKET`) and exact path; the app asks :meth:`endpoint_for` first and, when there is
    one, hands the request to :meth:`serve` instead of its middleware stack."""

    def __init__(
        self,
        endpoints: Mapping[tuple[str, str], Endpoint],
        *,
        cors: CORSMiddleware,
        gatekeeper: Gatekeeper,
        body_limit: BodyLimit,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.cors = cors
        self.gatekeeper = gatekeeper
        self.body_limit = body_limit

    def endpoint_for(self, scope: Scope) -> Endpoint | None:
        kind = scope["type"]
        if kind == "http":
            return self.endpoints.get((scope["method"], scope["path"]))
        if kind == "websocket":
            return self.endpoints.get((WEBSOCKET, scope["path"]))
        return None

    async def serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        """The middleware's checks, then ``endpoint``."""
        if scope["type"] == "http":
            # CORS outermost: its headers go on refusals too (and "Vary: Origin" on every answer).
            send = functools.partial(
                self.cors.send, send=send, request_headers=Headers(scope=scope)
            )
            if not await self.gatekeeper.admit(scope, receive, send):
                return
            if scope["method"] not in ("GET", "HEAD"):
                if self.body_limit.too_long(scope):
                    await self.body_limit.refuse(scope, receive, send)
                    return
                receive = self.body_limit.limited(receive)
        elif not await self.gatekeeper.admit(scope, receive, send):
            return
        await endpoint(scope, receive, send)
