"""The few pieces a plain ASGI endpoint needs (:mod:`transport_demo.server.hot_paths`): read a
request's header, query and body, write a JSON answer or an error, without building a framework's
request and response objects on every request.

Each reads the scope the way Starlette does, so that both paths answer alike
(``tests/test_hot_paths.py`` compares them): a header's *first* value, a query parameter's *last*,
the query string decoded as Latin-1 and then percent-decoded as UTF-8.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from .errors import TransportDemoError
from .http_errors import error_response, status_of

__all__ = [
    "ClientGone",
    "client_host",
    "header",
    "query",
    "read_body",
    "send_error",
    "send_json",
]

# As Starlette's Response orders them: the given header, then length, then type.
_NO_STORE = (b"cache-control", b"no-store")
_JSON = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client hung up before its request's body was complete: there is nobody to answer."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case), or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def query(scope: Scope) -> dict[str, str]:
    """The query parameters, the last value of each."""
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return {}
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


def client_host(scope: Scope) -> str | None:
    """The client's address, where the server knows it."""
    client = scope.get("client")
    return str(client[0]) if client else None


async def read_body(receive: Receive) -> bytes:
    """The whole request body (bounded by the body-limit layer in front); raises
    :class:`ClientGone` when the client leaves first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send: Send, body: str) -> None:
    """A ``200`` with an already-encoded JSON answer, never cached."""
    data = body.encode()
    length = (b"content-length", str(len(data)).encode())
    await send(
        {"type": "http.response.start", "status": 200, "headers": [_NO_STORE, length, _JSON]}
    )
    await send({"type": "http.response.body", "body": data})


async def send_error(scope: Scope, receive: Receive, send: Send, exc: TransportDemoError) -> None:
    """The error answer for ``exc``, as the framework path's exception handler writes it."""
    await error_response(status_of(exc), exc.code, exc.detail)(scope, receive, send)
