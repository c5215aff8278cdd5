"""Server-Sent Events: ``GET /sse`` (the stream) and ``POST /sse/message`` (a client's text).

The stream is FastAPI's ``EventSourceResponse`` in FastAPI's SSE wire format
(``format_sse_event``); this module only hands it the hub's events. It returns the response
rather than yielding ``ServerSentEvent`` items from the endpoint: FastAPI's generator path costs a
model, a task hop and a socket write per event, and a burst of 10,000 events ran at a third of
the speed (docs/benchmarks.md has the profile). Here everything ready leaves in one write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.sse import EventSourceResponse, format_sse_event

from . import events
from .backend import Backend
from .delivery import AttachedStream
from .longpoll import json_response
from .models import SSEMessageRequest, check_json_content_type, openapi_body, parse_json
from .protocol import EventType, Transport
from .resume import resume_point
from .socket_guard import ABORT_EXTENSION

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
    hub: Backend = request.app.state.hub
    cid, seq = resume_point(connection_id, last_seq, last_event_id)
    address = request.client.host if request.client else None
    stream = await hub.aopen_stream(Transport.SSE, cid, seq, address=address)
    stream.on_superseded = request.scope.get("extensions", {}).get(ABORT_EXTENSION)
    try:
        yield stream
    finally:
        await stream.aclose()


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
