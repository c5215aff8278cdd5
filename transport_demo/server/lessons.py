"""Teaching demos: small endpoints under ``/lessons`` that the notebooks use to show what the
product's own endpoints never do on purpose.

**Not the product's contract.** ``/poll``, ``/sse`` and ``/ws`` (docs/protocol.md) are the
contract; these exist only so that a class can see, on the wire, behaviour those endpoints avoid or
cannot show: answering a poll at once (short polling), an event stream that sets ``retry:``, uses
named ``event:`` lines and comment keep-alives, ends by itself, or answers 204 to stop a browser's
reconnection for good; a ``POST`` that streams ``text/event-stream`` as streaming APIs do; the
three ways a client can authenticate (a header, a cookie, a ticket in the URL); and a drill for a
page's own reconnect code (publish to one connection, cut one connection).

The authentication here is a stand-in: any user name logs in, tokens live in memory. It shows
*where* credentials travel, not how to check them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .backend import Backend

__all__ = ["router"]

# Left out of the OpenAPI schema on purpose: the schema is the contract (and what the fuzz tests
# hold to "never a 5xx"), and /lessons/sse/answer answers a 503 when asked to.
router = APIRouter(prefix="/lessons", tags=["teaching demos"], include_in_schema=False)

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
EVENT_STREAM = "text/event-stream; charset=utf-8"
SESSION_COOKIE = "lesson_session"
TICKET_SECONDS = 30.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    """An error in the shape every error of this server has (docs/protocol.md)."""
    body = {"type": "error", "connection_id": None, "timestamp": _now(), "error": code}
    return JSONResponse({**body, "detail": detail}, status, headers=headers)


# -- short polling ----------------------------------------------------------------------------


class ShortPoll(BaseModel):
    """``POST /lessons/short-poll``: like ``/poll``, but never held."""

    model_config = ConfigDict(strict=True, extra="ignore")

    connection_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    last_seq: Annotated[int, Field(ge=0)] | None = None


@router.post("/short-poll", summary="Short polling: answer at once, held never")
async def short_poll(request: Request, body: ShortPoll | None = None) -> Response:
    """The baseline long polling improves on: the same connections and ``last_seq`` as
    ``/poll``, but the answer comes at once — the events after ``last_seq``, or ``empty``.
    Without ``connection_id``: a new (long-polling) connection."""
    hub: Backend = request.app.state.hub
    body = body or ShortPoll()
    if body.connection_id is None:
        # Counted against the client's address like /poll's connections (a short-poll
        # connection is a long-polling one).
        address = request.client.host if request.client else None
        return _json_text(await hub.aconnect_long_poll(address))
    answer = await hub.apoll(body.connection_id, body.last_seq, hold=0)
    if json.loads(answer).get("type") == "timeout":
        empty = {"type": "empty", "connection_id": body.connection_id, "timestamp": _now()}
        return JSONResponse(empty, headers={"Cache-Control": "no-store"})
    return _json_text(answer)


def _json_text(text: str) -> Response:
    return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})


# -- SSE as a browser runs it -----------------------------------------------------------------


def _event(data: str, *, event: str | None = None, id: str | None = None) -> str:
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in data.split("\n")]
    if id is not None:
        lines.append(f"id: {id}")
    return "\n".join(lines) + "\n\n"


@router.get("/sse/countdown", summary="SSE: retry, an ending stream, Last-Event-ID, then 204")
async def countdown(
    total: Annotated[int, Query(ge=1, le=100)] = 5,
    per_connection: Annotated[int, Query(ge=1, le=100)] = 2,
    retry: Annotated[int, Query(ge=0, le=60_000)] = 500,
    interval: Annotated[float, Query(ge=0, le=2)] = 0.05,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Events ``1`` … ``total`` with ``id: n``, ``per_connection`` per response, then the response
    ends; a reconnection with ``Last-Event-ID: n`` continues at ``n + 1``. Once all were sent the
    answer is ``204 No Content``, which stops a browser's ``EventSource`` for good. Each response
    starts with ``retry: <retry>`` (milliseconds)."""
    digits = last_event_id is not None and last_event_id.isascii() and last_event_id.isdigit()
    done = int(last_event_id) if digits and last_event_id else 0
    if done >= total:
        return Response(status_code=204)

    async def body() -> AsyncIterator[str]:
        yield f"retry: {retry}\n\n"
        for n in range(done + 1, min(done + per_connection, total) + 1):
            await asyncio.sleep(interval)
            yield _event(f"event {n} of {total}", id=str(n))

    return StreamingResponse(body(), media_type=EVENT_STREAM, headers=STREAM_HEADERS)


@router.get("/sse/answer", summary="Any status and Content-Type: which ones a browser gives up on")
async def answer(
    status: Annotated[int, Query(ge=200, le=599)] = 200,
    content_type: Annotated[
        str, Query(max_length=100, pattern=r"^[\w.+-]+/[\w.+-]+(; ?[\w-]+=[\w.-]+)?$")
    ] = "text/event-stream",
) -> Response:
    """Answers ``status`` with ``content_type`` and one event in the body. A browser's
    ``EventSource`` dispatches it only for ``200`` with ``text/event-stream``; anything else fails
    the connection for good (WHATWG HTML §9.2.2, the constructor's fetch steps). 3xx is refused
    here (a redirect needs a ``Location``; browsers follow 301/307 like any request)."""
    if 300 <= status < 400:
        return _error(422, "invalid_request", "No 3xx here: a redirect needs a Location.")
    if status == 204:
        return Response(status_code=204)
    body = "data: a browser never dispatches this unless the status is 200\n\n"
    return Response(body, status_code=status, media_type=content_type, headers=STREAM_HEADERS)


@router.get("/sse/named", summary="SSE: named events, multi-line data and comment keep-alives")
async def named(
    seconds: Annotated[float, Query(ge=0, le=30)] = 1.0,
    keepalive: Annotated[float, Query(gt=0, le=30)] = 0.25,
) -> StreamingResponse:
    """A scripted little chat room: ``join``, ``chat`` and ``leave`` events (``event:`` lines),
    one unnamed event (``onmessage``), one event whose data has two lines, and a comment line
    (``: keep-alive``) every ``keepalive`` seconds for ``seconds``; then the stream ends."""

    async def body() -> AsyncIterator[str]:
        yield "retry: 3000\n: a comment line: EventSource ignores it, the connection stays busy\n\n"
        yield _event(json.dumps({"user": "ada"}), event="join", id="1")
        yield _event("an unnamed event: onmessage gets this one", id="2")
        yield _event("a message\nover two lines", event="chat", id="3")
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(keepalive)
            yield ": keep-alive\n\n"
        yield _event(json.dumps({"user": "ada"}), event="leave", id="4")

    return StreamingResponse(body(), media_type=EVENT_STREAM, headers=STREAM_HEADERS)


# -- a streaming POST, as streaming APIs answer -------------------------------------------------


class ReplyRequest(BaseModel):
    """``POST /lessons/reply``."""

    model_config = ConfigDict(strict=True, extra="ignore")

    prompt: Annotated[str, Field(min_length=1, max_length=500)]


@router.post("/reply", summary="A POST answered with text/event-stream, as streaming APIs do")
async def reply(
    request: Request,
    body: ReplyRequest,
    authorization: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Streams a reply word by word: ``event: token`` with ``{"text": …}``, then ``event: done``.
    One event is written in two pieces 20 ms apart, so a reader sees that a chunk of the body is
    not an event. ``Authorization: Bearer <token>`` (from ``/lessons/login``) is used if sent:
    a ``POST`` made with ``fetch`` can carry any header, unlike ``EventSource``."""
    user = _auth(request).user_for_token(_bearer(authorization))
    greeting = f"Hello {user}. " if user else ""
    words = f"{greeting}You asked: {body.prompt} Here is the answer, one word at a time.".split()

    async def stream() -> AsyncIterator[str]:
        yield ": a comment, as some APIs send while they think\n\n"
        for index, word in enumerate(words):
            text = _event(json.dumps({"text": word + " "}), event="token")
            if index == 1:  # one event in two writes: the reader must buffer until a blank line
                middle = len(text) // 2
                yield text[:middle]
                await asyncio.sleep(0.02)
                text = text[middle:]
            yield text
            await asyncio.sleep(0.01)
        yield _event(json.dumps({"tokens": len(words)}), event="done")

    return StreamingResponse(stream(), media_type=EVENT_STREAM, headers=STREAM_HEADERS)


# -- authentication: header, cookie, ticket in the URL ---------------------------------------------


@dataclass
class _Auth:
    """Sessions and tickets, in memory (a stand-in for a real user store)."""

    sessions: dict[str, str] = field(default_factory=dict)  # token → user
    tickets: dict[str, tuple[str, float]] = field(default_factory=dict)  # ticket → (user, until)

    def user_for_token(self, token: str | None) -> str | None:
        return self.sessions.get(token) if token else None

    def issue_ticket(self, user: str) -> str:
        now = time.monotonic()
        for old in [t for t, (_, until) in self.tickets.items() if until < now]:
            del self.tickets[old]
        ticket = secrets.token_urlsafe(16)
        self.tickets[ticket] = (user, now + TICKET_SECONDS)
        return ticket

    def redeem(self, ticket: str | None) -> str | None:
        """A ticket's user, once: a ticket is gone after its first use (or after 30 s)."""
        if not ticket or ticket not in self.tickets:
            return None
        user, until = self.tickets.pop(ticket)
        return user if until >= time.monotonic() else None


def _auth(request: Request) -> _Auth:
    state = getattr(request.app.state, "lessons_auth", None)
    if state is None:
        state = request.app.state.lessons_auth = _Auth()
    assert isinstance(state, _Auth)
    return state


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def _who(request: Request) -> tuple[str, str] | None:
    """``(user, how)`` from the ``Authorization`` header, the session cookie, or ``?ticket=``."""
    auth = _auth(request)
    if user := auth.user_for_token(_bearer(request.headers.get("authorization"))):
        return user, "header"
    if user := auth.user_for_token(request.cookies.get(SESSION_COOKIE)):
        return user, "cookie"
    if user := auth.redeem(request.query_params.get("ticket")):
        return user, "ticket"
    return None


def _unauthorized() -> Response:
    # RFC 9110 §15.5.2: a 401 carries a WWW-Authenticate challenge.
    return _error(
        401,
        "unauthorized",
        "Log in first: send a Bearer token, the session cookie, or a ticket.",
        {"WWW-Authenticate": 'Bearer realm="lessons"'},
    )


class Login(BaseModel):
    """``POST /lessons/login``."""

    model_config = ConfigDict(strict=True, extra="ignore")

    user: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[\w.-]+$")]
    cookie: bool = True  # false: the token only (a page that must log in by ticket alone)


@router.post("/login", summary="Log in (any name): a token, and the same token as a cookie")
async def login(request: Request, body: Login) -> JSONResponse:
    """Returns ``{"token": …}`` for ``Authorization: Bearer`` and sets it as an ``HttpOnly``,
    ``SameSite=Lax`` cookie for ``/lessons`` (which a browser sends by itself), unless
    ``"cookie": false`` (the reconnect exercise: its stream must depend on the ticket alone)."""
    token = secrets.token_urlsafe(16)
    _auth(request).sessions[token] = body.user
    response = JSONResponse({"user": body.user, "token": token})
    if body.cookie:
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, samesite="lax", path="/lessons", max_age=3600
        )
    return response


@router.post("/ticket", summary="Trade a Bearer token for a one-use ticket to put in a URL")
async def ticket(request: Request, authorization: Annotated[str | None, Header()] = None) -> Any:
    """For clients that cannot send headers (``EventSource``): a ticket valid once, for 30 s."""
    user = _auth(request).user_for_token(_bearer(authorization))
    if user is None:
        return _unauthorized()
    return {"ticket": _auth(request).issue_ticket(user), "expires_in": TICKET_SECONDS}


@router.api_route("/whoami", methods=["GET", "POST"], summary="Who is this request from, and how")
async def whoami(request: Request) -> Any:
    """``{"user": …, "via": "header" | "cookie" | "ticket"}``, or 401."""
    who = _who(request)
    if who is None:
        return _unauthorized()
    return {"user": who[0], "via": who[1]}


@router.get("/sse/private", summary="An event stream for logged-in users only")
async def private_stream(
    request: Request, seconds: Annotated[float, Query(ge=0, le=30)] = 0.2
) -> Response:
    """``event: hello`` with the user and how they authenticated, then the stream ends after
    ``seconds`` (so a browser reconnects — with the same URL, and so the same ticket). 401 without
    credentials, which an ``EventSource`` takes as final."""
    who = _who(request)
    if who is None:
        return _unauthorized()

    async def body() -> AsyncIterator[str]:
        yield "retry: 500\n\n"
        yield _event(json.dumps({"user": who[0], "via": who[1]}), event="hello")
        await asyncio.sleep(seconds)

    return StreamingResponse(body(), media_type=EVENT_STREAM, headers=STREAM_HEADERS)


# -- a drill for a page's reconnect code: publish to one connection, cut one connection ----------


class DrillTarget(BaseModel):
    """``POST /lessons/publish`` and ``POST /lessons/cut``: which connection, and for a publish
    the text (the hub checks its size)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    connection_id: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(min_length=1, max_length=200)] = "drill"


@router.post("/publish", summary="Publish a durable message to one connection (as hub.publish)")
async def publish(request: Request, body: DrillTarget) -> dict[str, int]:
    """``{"seq": n}``: the seq the message got. What a notebook does with ``hub.publish``, for a
    page that drives its own check (the reconnect exercise of notebook 04). 404 for an unknown
    connection, 429 when its queue is full."""
    hub: Backend = request.app.state.hub
    # hub.publish is the any-thread entry point (the Redis hub's waits on the server's loop).
    seq = await asyncio.to_thread(hub.publish, body.connection_id, body.text)
    return {"seq": seq}


@router.post("/cut", summary="Cut the stream or held poll of one connection (a WebSocket: 1012)")
async def cut(request: Request, body: DrillTarget) -> dict[str, bool]:
    """``{"cut": true}`` when a stream or held poll of this connection was attached here and is
    now cut, as ``hub.disconnect_all`` cuts a transport: a WebSocket is closed with 1012, an SSE
    response ends, a held poll is answered ``timeout`` with ``reason: "cut"``. The connection
    stays for its resume grace, so the client can resume with nothing lost."""
    hub: Backend = request.app.state.hub
    return {"cut": hub.disconnect(body.connection_id)}
