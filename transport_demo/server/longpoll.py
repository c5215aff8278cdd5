"""Long polling: ``POST /poll``. Moves requests to the hub and its answers back, nothing else.

Served by :func:`poll_endpoint`, a plain ASGI endpoint (:mod:`.hot_paths`: a held poll is the
most frequent request there is, and FastAPI's routing, request object and response cost about as
much CPU as the poll itself); the FastAPI route :func:`poll` documents it in the schema and serves
it when ``Settings.plain_hot_paths`` is off. Both parse and answer through :func:`answer_poll`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.types import Receive, Scope, Send

from .backend import Backend
from .errors import InvalidRequest, TransportDemoError
from .models import PollRequest, check_json_content_type, openapi_body, parse_json
from .plain_asgi import ClientGone, client_host, header, read_body, send_error, send_json

router = APIRouter(tags=["long polling"])


def json_response(body: str) -> Response:
    """An already-encoded JSON answer."""
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


async def answer_poll(
    hub: Backend, raw: bytes, content_type: str | None, address: str | None
) -> str:
    """The encoded answer to a ``POST /poll`` whose body is ``raw``: see :func:`poll`. Raises
    :class:`~transport_demo.server.errors.TransportDemoError` for a request to refuse."""
    check_json_content_type(content_type, raw)
    body = parse_json(PollRequest, raw, empty_ok=True)
    if body.connection_id is None:
        if body.text is not None:
            raise InvalidRequest("A text needs a connection_id: open a connection first.")
        return await hub.aconnect_long_poll(address)
    if body.text is not None:
        return await hub.asend_and_poll(body.connection_id, body.text, body.last_seq)
    return await hub.apoll(body.connection_id, body.last_seq)


@router.post(
    "/poll",
    summary="Open a connection, send a text, or poll for events",
    openapi_extra=openapi_body(PollRequest, required=False),
)
async def poll(request: Request) -> Response:
    """No ``connection_id``: a new connection (answered at once). With ``text``: queue it and
    answer at once. Otherwise: hold until events after ``last_seq`` exist, or ``poll_timeout``."""
    raw = await request.body()
    address = request.client.host if request.client else None
    hub: Backend = request.app.state.hub
    return json_response(await answer_poll(hub, raw, request.headers.get("content-type"), address))


async def poll_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /poll`` as a plain ASGI endpoint: :func:`poll`'s contract."""
    try:
        raw = await read_body(receive)
        answer = await answer_poll(
            scope["app"].state.hub, raw, header(scope, b"content-type"), client_host(scope)
        )
    except ClientGone:  # nobody to answer (the framework path answers a 400 to nobody)
        return
    except TransportDemoError as exc:
        await send_error(scope, receive, send, exc)
        return
    await send_json(send, answer)
