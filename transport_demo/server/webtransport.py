"""WebTransport: ``GET /webtransport`` says where; a session at ``https://HOST:PORT/wt`` (HTTP/3,
UDP, the HTTP port's number) carries the WebSocket's events as lines. Checks the session's Host
and Origin, then moves lines between the session and the hub.

The wire (docs/webtransport.md): the server opens one bidirectional stream per session and writes
the same JSON events as on ``/ws`` (``connected``, heartbeats, ``message``, ``user_message``
echoes with ``seq``, ``error``), one per line; the client writes ``{"message": …}`` lines on that
stream, the WebSocket's frame schema (:class:`~transport_demo.server.models.WebSocketFrame`), so
both are parsed by one model. Resume with ``?connection_id=…&last_seq=…`` as on ``/ws``.
``?heartbeats=datagram`` (a lesson's option) sends the heartbeats as HTTP/3 datagrams instead of
lines: a lost one stays lost (no seq, no replay), while every durable event stays on the stream. The
session ends with the WebSocket's close codes (:data:`~transport_demo.server.protocol.END_CLOSES`)
in WebTransport's close capsule (:mod:`.wt_framing`). QUIC and HTTP/3 are
:mod:`.h3_endpoint`'s; this module imports it only when aioquic is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from . import events
from .backend import Backend
from .certificates import Certificate, certificate_for
from .delivery import AttachedStream, receive_message
from .errors import TransportDemoError
from .http_errors import error_response, status_of
from .lan import is_wildcard
from .origins import HostPolicy, OriginPolicy, host_name, is_loopback
from .protocol import END_CLOSES, SHUTDOWN_CLOSE, CloseCode, ErrorCode, EventType, Transport
from .resume import resume_point
from .settings import Settings
from .urls import server_url
from .wt_framing import LineBuffer, LineTooLong, encode_line

if TYPE_CHECKING:
    from .h3_endpoint import WebTransportEndpoint, WebTransportSession

__all__ = ["PATH", "WebTransportService", "available", "router"]

logger = logging.getLogger("transport_demo.webtransport")

PATH = "/wt"
"""Where a session is opened."""
HEARTBEATS = ("stream", "datagram")
"""The values of ``?heartbeats=``: on the stream (the default), or as datagrams."""
_HEARTBEAT_PREFIX = f'{{"type":"{EventType.HEARTBEAT}"'  # events.encode: compact, type first

router = APIRouter()


def available() -> bool:
    """Whether aioquic, which WebTransport needs, is installed."""
    return importlib.util.find_spec("aioquic") is not None


@router.get("/webtransport", tags=["webtransport"], summary="Where WebTransport is served")
async def webtransport_info(request: Request) -> JSONResponse:
    """``{"url": "https://127.0.0.1:PORT/wt", "cert_sha256": "<hex>"}``: the session's URL and
    the SHA-256 of the certificate (for a page's ``serverCertificateHashes``); 404 when the server
    serves no WebTransport (``--no-webtransport``, aioquic missing, or its UDP port was taken)."""
    service: WebTransportService | None = request.app.state.webtransport
    if service is None or service.endpoint is None:
        detail = "This server serves no WebTransport (turned off, aioquic missing, or UDP busy)."
        return error_response(404, ErrorCode.NOT_FOUND, detail)
    return JSONResponse(
        {"url": service.url(request.headers.get("host")), "cert_sha256": service.cert_sha256},
        headers={"Cache-Control": "no-store"},  # a new certificate each start
    )


class WebTransportService:
    """The app's WebTransport: started and closed by its lifespan, beside uvicorn on one loop."""

    def __init__(
        self,
        hub: Backend,
        settings: Settings,
        origins: OriginPolicy,
        hosts: HostPolicy,
        certificate: Certificate | None = None,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.origins = origins
        self.hosts = hosts
        self.certificate = certificate
        self.endpoint: WebTransportEndpoint | None = None
        """The running endpoint; ``None`` before start, after close, or when UDP was busy."""

    @property
    def cert_sha256(self) -> str:
        """The served certificate's SHA-256, in hex."""
        return self.certificate.sha256.hex() if self.certificate is not None else ""

    def bind_host(self) -> str:
        """The UDP address: the TCP one (``localhost`` as 127.0.0.1: Chromium's QUIC does not
        fall back from ::1)."""
        host = self.settings.host
        return "127.0.0.1" if is_loopback(host) and not host[:1].isdigit() else host

    def url(self, request_host: str | None = None) -> str:
        """The session URL; on a wildcard bind, with the host the request named."""
        assert self.endpoint is not None and self.endpoint.port is not None
        host = self.bind_host()
        if is_wildcard(host) and request_host:
            host = host_name(request_host)
        if host == "localhost" or host.endswith(".localhost") or is_wildcard(host):
            host = "127.0.0.1"
        return server_url(host, self.endpoint.port, PATH, scheme="https")

    async def start(self, port: int) -> None:
        """Listen on UDP ``port`` (the HTTP port's number). A port that cannot be bound is logged
        as a warning and the server goes on without WebTransport."""
        from .h3_endpoint import WebTransportEndpoint

        if self.certificate is None:
            self.certificate = certificate_for(self.settings)  # a new one each start
        endpoint = WebTransportEndpoint(
            self._serve, self.certificate, receive_buffer=self.settings.udp_receive_buffer
        )
        try:
            await endpoint.start(self.bind_host(), port)
        except OSError as exc:
            logger.warning(
                "WebTransport is off: UDP port %s on %s cannot be bound (%s)",
                port,
                self.settings.host,
                exc,
            )
            return
        self.endpoint = endpoint
        logger.info("WebTransport (HTTP/3) on UDP %s:%s%s", self.bind_host(), port, PATH)

    async def close(self) -> None:
        """End every session (within a second) and close the UDP socket."""
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            await endpoint.close()

    async def _serve(self, session: WebTransportSession) -> None:
        await serve_session(session, self)


async def serve_session(session: WebTransportSession, service: WebTransportService) -> None:
    """One session: the checks a WebSocket handshake gets, then events out and texts in."""
    origin, authority = session.header("origin"), session.header(":authority")
    if not service.hosts.allows(authority):
        detail = f"This server does not answer for the host {authority!r}."
        _refuse(session, 421, ErrorCode.HOST_NOT_ALLOWED, detail)
        return
    if not service.origins.allows(origin, authority):
        _refuse(session, 403, ErrorCode.ORIGIN_NOT_ALLOWED, f"Origin {origin!r} is not allowed.")
        return
    if session.path != PATH:
        _refuse(session, 404, ErrorCode.NOT_FOUND, f"WebTransport is served at {PATH}.")
        return
    query = parse_qs(session.query)
    heartbeats = _first(query, "heartbeats") or "stream"
    if heartbeats not in HEARTBEATS:
        detail = f"heartbeats is 'stream' or 'datagram', not {heartbeats[:40]!r}."
        _refuse(session, 400, ErrorCode.INVALID_REQUEST, detail)
        return
    try:
        cid, seq = resume_point(_first(query, "connection_id"), _first(query, "last_seq"))
        stream = await service.hub.aopen_stream(
            Transport.WEBTRANSPORT, cid, seq, address=session.address
        )
    except TransportDemoError as exc:
        _refuse(session, status_of(exc), exc.code, exc.detail)
        return
    try:
        session.accept()
        session.open_stream()
        code, reason = await _run(
            session, stream, service.settings.max_envelope_bytes, heartbeats == "datagram"
        )
        session.close(code, reason)
    finally:
        await stream.aclose()


async def _run(
    session: WebTransportSession, stream: AttachedStream, max_line: int, datagrams: bool
) -> tuple[int, str]:
    # Two halves; the first to finish ends the other (as the WebSocket router does).
    sender = asyncio.create_task(_send_events(session, stream, datagrams))
    receiver = asyncio.create_task(_receive_lines(session, stream, max_line))
    done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    result: tuple[int, str] | None = None
    for task in done:
        with contextlib.suppress(OSError, RuntimeError):
            result = task.result() or result
    if result is not None:
        return result
    return END_CLOSES.get(stream.ended, SHUTDOWN_CLOSE)  # the hub ended it, or the client left


async def _send_events(
    session: WebTransportSession, stream: AttachedStream, datagrams: bool
) -> None:
    async for batch in stream.batches():
        if datagrams:
            # Heartbeats are not durable (no seq): as datagrams, a lost one is simply gone. A
            # client that takes no datagrams gets them on the stream.
            batch = [item for item in batch if not _sent_as_datagram(session, item.data)]
        # a batch in one write: one QUIC packet where it fits (stream_loop.batches)
        if batch and not session.send(b"".join(encode_line(item.data) for item in batch)):
            return
        # Backpressure: a client that does not read leaves what comes next in its bounded queue.
        await session.wait_writable()


async def _receive_lines(
    session: WebTransportSession, stream: AttachedStream, max_line: int
) -> tuple[int, str] | None:
    """Read lines until the client ends; a close code when the server must end the session."""
    lines = LineBuffer(max_line)
    while True:
        data = await session.receive()
        if data is None and session.overflowed:
            return CloseCode.POLICY_VIOLATION, "the client writes faster than the server reads"
        if data is None:  # the client ended its stream or the session (or vanished)
            return CloseCode.NORMAL, "the client ended the session"
        try:
            complete = lines.feed(data)
        except LineTooLong as exc:
            return CloseCode.MESSAGE_TOO_BIG, str(exc)
        for line in complete:
            if not line.strip():  # a blank line is nothing to say (keeps typing by hand easy)
                continue
            if not await receive_message(stream, line):  # bad lines faster than it reads errors
                return CloseCode.POLICY_VIOLATION, "too many bad lines"


def _sent_as_datagram(session: WebTransportSession, data: str) -> bool:
    """Send a heartbeat as one datagram; ``False`` for any other event (or when the datagram
    could not be sent)."""
    return data.startswith(_HEARTBEAT_PREFIX) and session.send_datagram(data.encode())


def _refuse(session: WebTransportSession, status: int, code: str, detail: str) -> None:
    """Answer the CONNECT with an HTTP status and the error body (the session never opens)."""
    session.refuse(status, events.encode(events.error_event(None, code, detail)).encode())


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
