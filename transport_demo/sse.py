"""Server-Sent Events: ``GET /sse`` (the stream) and ``POST /sse/message`` (a client's text).

FastAPI's own SSE support writes the stream; this module only hands it the hub's events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from . import events
from .hub import Hub, Stream, Transport
from .longpoll import json_response
from .models import SSEMessageRequest, check_json_content_type, openapi_body, parse_json
from .resume import resume_point

router = APIRouter(tags=["server-sent events"])


async def open_sse_stream(
    request: Request,
    connection_id: str | None = None,
    last_seq: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[Stream]:
    """Attach a stream for this request and detach it when the response is over, however it
    ends: a dependency's exit runs after the response, which an async generator's ``finally``
    does not promise when the client disconnects."""
    hub: Hub = request.app.state.hub
    cid, seq = resume_point(connection_id, last_seq, last_event_id)
    stream = hub.open_stream(Transport.SSE, cid, seq)
    try:
        yield stream
    finally:
        stream.close()


@router.get("/sse", response_class=EventSourceResponse, summary="The event stream")
async def sse_stream(
    request: Request, stream: Annotated[Stream, Depends(open_sse_stream)]
) -> AsyncIterator[ServerSentEvent]:
    """``retry:``, ``connected``, then durable events (``id: <connection_id>:<seq>``), heartbeats.

    Resume with ``Last-Event-ID`` or ``?connection_id=…&last_seq=…``.
    """
    yield ServerSentEvent(retry=request.app.state.settings.sse_retry_ms)
    async for item in stream.events():
        yield ServerSentEvent(raw_data=item.data, id=item.resume_id)


@router.post(
    "/sse/message",
    summary="Send a text; its echo comes on the stream",
    openapi_extra=openapi_body(SSEMessageRequest),
)
async def sse_message(request: Request) -> Response:
    check_json_content_type(request.headers.get("content-type"))
    body = parse_json(SSEMessageRequest, await request.body())
    hub: Hub = request.app.state.hub
    seq = hub.receive(body.connection_id, body.text, Transport.SSE)
    return json_response(events.encode(events.make_event("queued", body.connection_id, seq=seq)))
