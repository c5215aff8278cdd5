"""WebSocket: ``/ws``. Checks the Origin, then moves frames between the socket and the hub.

:func:`websocket_endpoint` is a plain ASGI endpoint (:mod:`.hot_paths`); the FastAPI route
(served when ``Settings.plain_hot_paths`` is off) hands its socket to the same function, so there
is one implementation either way. Per connection it runs one task besides the request's own: the
request's task reads frames, the other writes events; the first to finish ends the other.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from . import events
from .backend import Backend
from .delivery import AttachedStream, receive_message
from .errors import TransportDemoError
from .http_errors import status_of
from .origins import OriginPolicy
from .plain_asgi import client_host, header, query
from .protocol import END_CLOSES, SHUTDOWN_CLOSE, CloseCode, ErrorCode, Transport
from .resume import resume_point
from .socket_guard import ABORT_EXTENSION

router = APIRouter()


@router.websocket("/ws")
async def websocket_route(websocket: WebSocket) -> None:
    """``/ws`` through FastAPI's routing: :func:`websocket_endpoint`."""
    await websocket_endpoint(websocket.scope, websocket.receive, websocket.send)


async def websocket_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """``connected``, then durable events and heartbeats; each ``{"message": …}`` frame is echoed
    as a durable ``user_message``. Resume with ``?connection_id=…&last_seq=…``."""
    state = scope["app"].state
    hub: Backend = state.hub
    policy: OriginPolicy = state.origins
    origin = header(scope, b"origin")
    if not policy.allows(origin, header(scope, b"host")):
        detail = f"Origin {origin!r} is not allowed."
        await _deny(scope, receive, send, 403, ErrorCode.ORIGIN_NOT_ALLOWED, detail)
        return
    params = query(scope)
    try:
        cid, seq = resume_point(params.get("connection_id"), params.get("last_seq"))
        stream = await hub.aopen_stream(Transport.WEBSOCKET, cid, seq, address=client_host(scope))
        stream.on_superseded = scope.get("extensions", {}).get(ABORT_EXTENSION)
    except TransportDemoError as exc:
        await _deny(scope, receive, send, status_of(exc), exc.code, exc.detail)
        return
    try:
        if (await receive())["type"] != "websocket.connect":  # gone before the handshake ended
            return
        await send({"type": "websocket.accept"})
        await _serve(receive, send, stream, state.settings.max_envelope_bytes)
    finally:
        await stream.aclose()


async def _serve(receive: Receive, send: Send, stream: AttachedStream, max_frame: int) -> None:
    closing = Closing(send)
    sender = asyncio.create_task(_send_events(send, stream, closing))
    try:
        code = await _receive_frames(receive, stream, max_frame)
    finally:
        sender.cancel()
        await asyncio.wait({sender})
    if code is not None:
        await closing.close(code, _reason(code))
    error = None if sender.cancelled() else sender.exception()
    if error is not None:
        raise error  # a bug: let the server log it


class Closing:
    """The server's close frame, sent at most once, by whichever half decides first."""

    __slots__ = ("send", "sent")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.sent = False

    async def close(self, code: int, reason: str) -> None:
        if self.sent:
            return
        self.sent = True
        # OSError: the client is gone already (uvicorn raises its ClientDisconnected).
        with contextlib.suppress(OSError, RuntimeError):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})


async def _send_events(send: Send, stream: AttachedStream, closing: Closing) -> None:
    """Write the stream's events, one frame each (a WebSocket message is one event); when the hub
    ends the stream, close with its code: the server then hands the reading half a disconnect."""
    try:
        async for batch in stream.batches():
            for item in batch:
                await send({"type": "websocket.send", "text": item.data})
    except OSError:  # the client is gone: the reading half hears of it
        return
    except Exception:
        await closing.close(CloseCode.INTERNAL_ERROR, "")  # so that the reading half ends too
        raise
    code, reason = END_CLOSES.get(stream.ended, SHUTDOWN_CLOSE)
    await closing.close(code, reason)


async def _receive_frames(receive: Receive, stream: AttachedStream, max_frame: int) -> int | None:
    """Read frames until the connection closes (``None``) or the server must close it (the code)."""
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            queued = stream.send_error(
                ErrorCode.BINARY_NOT_SUPPORTED, "Send text frames with JSON."
            )
        elif len(text) > max_frame:  # the server's frame limit normally catches this first
            return CloseCode.MESSAGE_TOO_BIG
        else:
            queued = await receive_message(stream, text)
        if not queued:  # bad frames faster than it reads its errors
            return CloseCode.POLICY_VIOLATION


def _reason(code: int) -> str:
    reasons: dict[int, str] = {
        CloseCode.POLICY_VIOLATION: "too many bad frames",
        CloseCode.MESSAGE_TOO_BIG: "message too big",
    }
    return reasons.get(code, "")


async def _deny(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str
) -> None:
    """Refuse the handshake with an HTTP answer (before accept), e.g. 403 for a foreign Origin."""
    if "websocket.http.response" in scope.get("extensions", {}):
        response = JSONResponse(events.error_event(None, code, detail), status_code=status)
        await response(scope, receive, send)
    else:  # a server without the denial extension: a bare 403
        await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})
