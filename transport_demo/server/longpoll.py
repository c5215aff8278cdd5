"""Long polling: ``POST /poll``. Moves requests to the hub and its answers back, nothing else."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from .backend import Backend
from .errors import InvalidRequest
from .models import PollRequest, check_json_content_type, openapi_body, parse_json

router = APIRouter(tags=["long polling"])


def json_response(body: str) -> Response:
    """An already-encoded JSON answer."""
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.post(
    "/poll",
    summary="Open a connection, send a text, or poll for events",
    openapi_extra=openapi_body(PollRequest, required=False),
)
async def poll(request: Request) -> Response:
    """No ``connection_id``: a new connection (answered at once). With ``text``: queue it and
    answer at once. Otherwise: hold until events after ``last_seq`` exist, or ``poll_timeout``."""
    raw = await request.body()
    check_json_content_type(request.headers.get("content-type"), raw)
    body = parse_json(PollRequest, raw, empty_ok=True)
    hub: Backend = request.app.state.hub
    if body.connection_id is None:
        if body.text is not None:
            raise InvalidRequest("A text needs a connection_id: open a connection first.")
        address = request.client.host if request.client else None
        return json_response(await hub.aconnect_long_poll(address))
    if body.text is not None:
        return json_response(await hub.asend_and_poll(body.connection_id, body.text, body.last_seq))
    return json_response(await hub.apoll(body.connection_id, body.last_seq))
