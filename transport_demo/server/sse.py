"""Server-Sent Events: ``GET /sse`` (the stream) and ``POST /sse/message`` (a client's text).

The stream is served by :func:`sse_endpoint`, a plain ASGI endpoint (:mod:`.hot_paths`): it
writes the response start and then each batch of ready events as one body chunk, in FastAPI's SSE
wire format (``format_sse_event``). A connection then costs no dependency exit stack, no
response task group and no task per connection waiting for the client to leave (uvicorn's
protocol calls back instead, ``socket_guard.DISCONNECT_EXTENSION``): ~15 KiB less per stream
(docs/benchmarks.md). The FastAPI route :func:`sse_stream` documents it in the schema and serves
it when ``Settings.plain_hot_paths`` is off, through FastAPI's ``EventSourceResponse``; both
write :func:`sse_body`. Neither yields ``ServerSentEvent`` items: FastAPI's generator path costs
a model, a task hop and a socket write per event, and a burst of 10,000 events ran at a third of
the speed (docs/benchmarks.md has the profile). Here everything ready leaves in one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.types import Receive, Scope, Send

from . import events
from .backend import Backend
from .delivery import AttachedStream
from .errors import TransportDemoError
from .longpoll import json_response
from .models import SSEMessageRequest, check_json_content_type, openapi_body, parse_json
from .plain_asgi import client_host, header, query, send_error
from .protocol import EventType, Transport
from .resume import resume_point
from .socket_guard import ABORT_EXTENSION, DISCONNECT_EXTENSION

router = APIRouter(tags=["server-sent events"])


async def open_sse_stream(
    request: Request,
    connection_id: str | None = None,
    last_seq: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[AttachedStream]:
    """Attach a stream for this request and detach it when the response is over, however it
    ends: a dependency's exit runs after the response, which an async generator's ``finally``
    does not promise when the client disconnects."""
    cid, seq = resume_point(connection_id, last_seq, last_event_id)
    stream = await _attach(request.scope, cid, seq)
    try:
        yield stream
    finally:
        await stream.aclose()


async def _attach(scope: Scope, cid: str | None, seq: int | None) -> AttachedStream:
    hub: Backend = scope["app"].state.hub
    stream: AttachedStream = await hub.aopen_stream(
        Transport.SSE, cid, seq, address=client_host(scope)
    )
    stream.on_superseded = scope.get("extensions", {}).get(ABORT_EXTENSION)
    return stream


async def sse_body(stream: AttachedStream, retry_ms: int) -> AsyncIterator[bytes]:
    """The stream in SSE wire format: ``retry:``, then each batch of events as one chunk."""
    first = format_sse_event(retry=retry_ms)
    async for batch in stream.batches():
        yield first + b"".join(
            format_sse_event(data_str=item.data, id=item.resume_id) for item in batch
        )
        first = b""


# Not response_class=EventSourceResponse: that makes FastAPI expect a generator endpoint.
@router.get(
    "/sse",
    summary="The event stream",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def sse_stream(
    request: Request, stream: Annotated[AttachedStream, Depends(open_sse_stream)]
) -> EventSourceResponse:
    """``retry:``, ``connected``, then durable events (``id: <connection_id>:<seq>``), heartbeats.

    Resume with ``Last-Event-ID`` or ``?connection_id=…&last_seq=…``.
    """
    return EventSourceResponse(
        sse_body(stream, request.app.state.settings.sse_retry_ms),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# As Starlette's StreamingResponse orders them: the given headers, then the type.
SSE_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"content-type", b"text/event-stream; charset=utf-8"),
]


async def sse_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /sse`` as a plain ASGI endpoint: :func:`sse_stream`'s contract.

    The client's leaving cancels this task (as Starlette's response task group cancels its
    stream): the stream's ``finally`` detaches it, and the cancellation, being ours, ends here."""
    params = query(scope)
    try:
        cid, seq = resume_point(
            params.get("connection_id"), params.get("last_seq"), header(scope, b"last-event-id")
        )
        stream = await _attach(scope, cid, seq)
    except TransportDemoError as exc:
        await send_error(scope, receive, send, exc)
        return
    task = asyncio.current_task()
    assert task is not None
    gone = False

    def client_left() -> None:
        nonlocal gone
        gone = True
        task.cancel()

    watch = scope.get("extensions", {}).get(DISCONNECT_EXTENSION)
    waiter = None
    if watch is not None:
        watch(client_left)
    else:  # another server: a task that waits for http.disconnect
        waiter = asyncio.create_task(_wait_for_disconnect(receive, client_left))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        async for chunk in sse_body(stream, scope["app"].state.settings.sse_retry_ms):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not gone or task.uncancel():  # not (only) the client's leaving: pass it on
            raise
    except OSError:  # a server that raises on a write to a gone client (ASGI 2.4)
        pass
    finally:
        if watch is not None:
            watch(None)
        if waiter is not None:
            waiter.cancel()
        await stream.aclose()


async def _wait_for_disconnect(receive: Receive, client_left: Callable[[], None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    client_left()


@router.post(
    "/sse/message",
    summary="Send a text; its echo comes on the stream",
    openapi_extra=openapi_body(SSEMessageRequest),
)
async def sse_message(request: Request) -> Response:
    raw = await request.body()
    check_json_content_type(request.headers.get("content-type"), raw)
    body = parse_json(SSEMessageRequest, raw)
    hub: Backend = request.app.state.hub
    seq = await hub.areceive(body.connection_id, body.text, Transport.SSE)
    return json_response(
        events.encode(events.make_event(EventType.QUEUED, body.connection_id, seq=seq))
    )
