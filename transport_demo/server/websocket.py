"""WebSocket: ``/ws``. Checks the Origin, then moves frames between the socket and the hub."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from . import events
from .backend import Backend
from .delivery import AttachedStream, receive_message
from .errors import TransportDemoError
from .http_errors import status_of
from .origins import OriginPolicy
from .protocol import END_CLOSES, SHUTDOWN_CLOSE, CloseCode, ErrorCode, Transport
from .resume import resume_point
from .socket_guard import ABORT_EXTENSION

router = APIRouter()


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    """``connected``, then durable events and heartbeats; each ``{"message": …}`` frame is echoed
    as a durable ``user_message``. Resume with ``?connection_id=…&last_seq=…``."""
    app = websocket.app
    hub: Backend = app.state.hub
    policy: OriginPolicy = app.state.origins
    origin = websocket.headers.get("origin")
    if not policy.allows(origin, websocket.headers.get("host")):
        await _deny(
            websocket, 403, ErrorCode.ORIGIN_NOT_ALLOWED, f"Origin {origin!r} is not allowed."
        )
        return
    try:
        cid, seq = resume_point(
            websocket.query_params.get("connection_id"), websocket.query_params.get("last_seq")
        )
        address = websocket.client.host if websocket.client else None
        stream = await hub.aopen_stream(Transport.WEBSOCKET, cid, seq, address=address)
        stream.on_superseded = websocket.scope.get("extensions", {}).get(ABORT_EXTENSION)
    except TransportDemoError as exc:
        await _deny(websocket, status_of(exc), exc.code, exc.detail)
        return
    try:
        await websocket.accept()
        await _serve(websocket, stream, app.state.settings.max_envelope_bytes)
    finally:
        await stream.aclose()


async def _serve(websocket: WebSocket, stream: AttachedStream, max_frame: int) -> None:
    # Two halves; the first to finish ends the other (as Starlette's StreamingResponse does).
    sender = asyncio.create_task(_send_events(websocket, stream))
    receiver = asyncio.create_task(_receive_frames(websocket, stream, max_frame))
    done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    close_code = None
    for task in done:
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            close_code = task.result() or close_code
    if close_code is None:  # the hub ended the stream
        close_code, reason = END_CLOSES.get(stream.ended, SHUTDOWN_CLOSE)
    else:
        reason = _reason(close_code)
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.close(close_code, reason)


async def _send_events(websocket: WebSocket, stream: AttachedStream) -> int | None:
    async for batch in stream.batches():
        for item in batch:  # one frame each: a WebSocket message is one event
            await websocket.send_text(item.data)
    return None


async def _receive_frames(
    websocket: WebSocket, stream: AttachedStream, max_frame: int
) -> int | None:
    """Read frames until the client closes; returns a close code when the server must close."""
    while True:
        message = await websocket.receive()
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


async def _deny(websocket: WebSocket, status: int, code: str, detail: str) -> None:
    """Refuse the handshake with an HTTP answer (before accept), e.g. 403 for a foreign Origin."""
    body = events.error_event(None, code, detail)
    try:
        await websocket.send_denial_response(JSONResponse(body, status_code=status))
    except RuntimeError:  # a server without the denial extension: a bare 403
        await websocket.close(CloseCode.POLICY_VIOLATION)
