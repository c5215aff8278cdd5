"""Every failure becomes a 4xx/5xx with an error body: ``{"type": "error", "error": code, ...}``.

The one place that maps the hub's errors (and Starlette's own) to HTTP status codes.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors, events
from .protocol import ErrorCode

STATUS: dict[type[errors.TransportDemoError], int] = {
    errors.InvalidJSON: 400,
    errors.UnknownConnection: 404,
    errors.MessageTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.InvalidRequest: 422,
    errors.InvalidText: 422,
    errors.QueueFull: 429,
    errors.RateLimited: 429,
    errors.TooManyConnectionsFromAddress: 429,
    errors.TooManyConnections: 503,
    errors.ServerShuttingDown: 503,
    errors.BackendUnavailable: 503,
}

# Starlette's own refusals (no route, wrong method, body over the limit), named for the wire.
_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.MESSAGE_TOO_LARGE,
}


def status_of(exc: errors.TransportDemoError) -> int:
    return STATUS.get(type(exc), 400)


def error_response(
    status: int, code: str, detail: str, connection_id: str | None = None
) -> JSONResponse:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return JSONResponse(events.error_event(connection_id, code, detail), status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def on_demo_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.TransportDemoError)
        return error_response(status_of(exc), exc.code, exc.detail)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(
            422, ErrorCode.INVALID_REQUEST, "The request's parameters are invalid."
        )

    async def on_client_gone(request: Request, exc: Exception) -> Response:
        # The client hung up while sending its body (a cancelled poll): nobody to answer.
        return Response(status_code=400)

    app.add_exception_handler(ClientDisconnect, on_client_gone)
    app.add_exception_handler(errors.TransportDemoError, on_demo_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


class BodyLimit:
    """Refuses an HTTP body over ``limit`` bytes with a 413 ``message_too_large`` error body,
    before it is buffered whole: at once when ``Content-Length`` says so, else as soon as the
    bytes received pass the limit.

    (FastAPI's ``max_body_size`` also bounds bodies but answers in plain text, and replaces any
    answer to a request whose Content-Length is over the limit: the contract wants an error body.)
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # GET and HEAD: our endpoints never read their bodies, so there is nothing to bound (and
        # an SSE stream's request skips this layer: it is on every request of the benchmark).
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
        elif self.too_long(scope):
            await self.refuse(scope, receive, send)
        else:
            await self.app(scope, self.limited(receive), send)

    def too_long(self, scope: Scope) -> bool:
        """Whether the request's ``Content-Length`` is over the limit (or not a number)."""
        length = Headers(scope=scope).get("content-length")
        return length is not None and (
            not (length.isascii() and length.isdigit()) or int(length) > self.limit
        )

    def limited(self, receive: Receive) -> Receive:
        """``receive``, raising :class:`~transport_demo.server.errors.MessageTooLarge` once the
        bytes received pass the limit."""
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise errors.MessageTooLarge(self._detail())
            return message

        return limited_receive

    def _detail(self) -> str:
        return f"The body is larger than the {self.limit} bytes the server accepts."

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``413`` and close the connection."""
        response = error_response(413, errors.MessageTooLarge.code, self._detail())
        response.headers["Connection"] = "close"  # the unread body must not be taken as a request
        await response(scope, receive, send)
