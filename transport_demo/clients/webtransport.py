"""The WebTransport client (aioquic): asks ``GET /webtransport`` where the session is and which
certificate to expect, opens the session over HTTP/3 (UDP), reads the events the server writes as
lines on the stream it opens, and resumes with ``?connection_id=&last_seq=`` as on ``/ws``.

The certificate is pinned by its SHA-256, as a page's ``serverCertificateHashes`` does: aioquic
has no such option, so the handshake runs without CA checks and the peer's certificate is compared
with the hash the server announced before anything is sent. That hash is asked again on every
attempt: a restarted server has a new certificate.

``heartbeats="datagram"`` asks the server for heartbeats as HTTP/3 datagrams (RFC 9297): they are
read like any event (``stats.heartbeats``, the iteration) and counted apart
(:attr:`WebTransportClient.datagrams`, :attr:`WebTransportClient.datagram_heartbeats`), so a lesson
can see which numbers never came; durable events stay on the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import (
    DatagramReceived,
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, ProtocolNegotiated, QuicEvent
from cryptography.hazmat.primitives.serialization import Encoding

from ..server.protocol import CloseCode, Transport
from ..server.wt_framing import CapsuleReader, LineBuffer, LineTooLong, close_capsule, encode_line
from .base import (
    BaseClient,
    ClientError,
    DroppedByClient,
    error_from_response,
    http_client,
    http_timeout,
    should_retry,
)

__all__ = ["WebTransportClient"]

GIVE_UP_CODES = frozenset({CloseCode.POLICY_VIOLATION, CloseCode.MESSAGE_TOO_BIG})
"""Session close codes that say the server refused what this client sent: reconnecting would not
fix it (as for the WebSocket client)."""


class _Ended(Exception):
    """The session ended; ``code`` is the server's close code (``None``: no close capsule)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class _H3ClientProtocol(QuicConnectionProtocol):
    """One QUIC connection carrying one WebTransport session, as events for the client."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http: H3Connection | None = None
        self.settings_received = asyncio.Event()
        self.session_id: int | None = None
        self.stream_id: int | None = None
        self.response: asyncio.Future[tuple[int, bytes]] = asyncio.Future()
        self.status = 0
        self._body = b""
        self.incoming: asyncio.Queue[bytes | _Ended] = asyncio.Queue()
        self.on_datagram: Callable[[bytes], None] | None = None
        self._capsules = CapsuleReader()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.http = H3Connection(self._quic, enable_webtransport=True)
        elif isinstance(event, ConnectionTerminated):
            reason = f"QUIC connection closed ({event.error_code}: {event.reason_phrase})"
            self._fail(_Ended(None, reason))
            return
        if self.http is not None:
            for http_event in self.http.handle_event(event):
                self._http_event(http_event)
            if self.http.received_settings is not None:
                self.settings_received.set()

    def _fail(self, ended: _Ended) -> None:
        if not self.response.done():
            self.response.set_exception(ended)
        self.incoming.put_nowait(ended)

    def _http_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived) and event.stream_id == self.session_id:
            status = dict(event.headers).get(b":status", b"0")
            self.status = int(status) if status.isdigit() else 0
            if self.status == 200 and not self.response.done():
                self.response.set_result((200, b""))
            elif event.stream_ended and not self.response.done():
                self.response.set_result((self.status, b""))
        elif isinstance(event, DataReceived) and event.stream_id == self.session_id:
            if self.status != 200:  # a refusal's JSON body
                self._body += event.data
                if event.stream_ended and not self.response.done():
                    self.response.set_result((self.status, self._body))
                return
            closes = self._capsules.feed(event.data)
            if closes:
                self._fail(_Ended(closes[0].code, closes[0].reason))
            elif event.stream_ended:
                self._fail(_Ended(None, "the server ended the session"))
        elif isinstance(event, DatagramReceived):
            if event.stream_id == self.session_id and self.on_datagram is not None:
                self.on_datagram(event.data)
        elif isinstance(event, WebTransportStreamDataReceived):
            if event.session_id != self.session_id:
                return
            if self.stream_id is None:
                self.stream_id = event.stream_id  # the one stream the server opens
            if event.stream_id == self.stream_id and event.data:
                self.incoming.put_nowait(event.data)


class WebTransportClient(BaseClient):
    """Connects to the server's WebTransport (found at ``GET /webtransport``); after any cut it
    reconnects with backoff and resumes. ``origin`` is sent with the session's ``CONNECT`` (a
    browser always sends one; the server checks it). ``idle_timeout``: QUIC's, which notices a
    silent path (keep it above the heartbeat interval). ``heartbeats``: ``"stream"`` (the
    default) or ``"datagram"`` (module docstring).

    ``verify`` is not used: the certificate is pinned by the hash the server announces (module
    docstring), over the HTTP request to ``base_url`` (which ``verify`` does check, for https).
    """

    transport = Transport.WEBTRANSPORT

    def __init__(
        self,
        base_url: str,
        *,
        origin: str | None = None,
        idle_timeout: float = 30.0,
        max_line: int = 1 << 20,
        heartbeats: str = "stream",
        **options: Any,
    ) -> None:
        if heartbeats not in ("stream", "datagram"):
            raise ValueError("heartbeats is 'stream' or 'datagram'")
        super().__init__(base_url, **options)
        self.heartbeats = heartbeats
        self.datagrams = 0
        """Datagrams received (heartbeats, with ``heartbeats="datagram"``)."""
        self.datagram_heartbeats: deque[int] = deque(maxlen=10_000)
        """The ``count`` of each heartbeat that came as a datagram, in arrival order (the last
        10,000): a number missing was lost on the way, and nothing sends it again."""
        self.origin = origin
        self.idle_timeout = idle_timeout
        self.max_line = max_line
        self.session_url: str | None = None
        """The last session URL the server announced."""
        self.close_code: int | None = None
        """The code of the last session close this client sent or received."""
        self._http = http_client(
            self.base_url,
            http_timeout(self.connect_timeout, self.connect_timeout),
            verify=self.verify,
        )
        self._protocol: _H3ClientProtocol | None = None

    async def _run(self) -> None:
        while not self.closed:
            self.stats.requests += 1
            code: int | None = None
            try:
                url, digest = await self._where()
                await self._attempt(self._session(url, digest))
                reason = "the session ended"
            except ClientError as exc:
                if not should_retry(exc.status, exc.code):
                    self._give_up(exc.code, exc.detail)
                    return
                reason = f"{exc.code}: {exc.detail}"
            except _Ended as exc:
                code, reason = exc.code, f"closed by the server ({exc.code}): {exc.reason}"
                self.close_code = code
                if code in GIVE_UP_CODES:
                    self._give_up(f"close_{code}", exc.reason)
                    return
            except (OSError, ConnectionError, TimeoutError, httpx.TransportError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except DroppedByClient as exc:
                reason = str(exc)
            finally:
                self._protocol = None
            if not await self._after_socket(code, reason):
                return

    async def _where(self) -> tuple[str, bytes]:
        """``GET /webtransport``: the session URL and the certificate's SHA-256."""
        response = await self._http.get("/webtransport")
        if response.status_code != 200:
            raise error_from_response(response.status_code, response.content)
        answer = response.json()
        self.session_url = str(answer["url"])
        return self.session_url, bytes.fromhex(str(answer["cert_sha256"]))

    def _configuration(self) -> QuicConfiguration:
        quiet_quic = logging.getLogger("quic")  # INFO floods ("Duplicate CRYPTO data")
        if quiet_quic.level == logging.NOTSET:
            quiet_quic.setLevel(logging.WARNING)
        configuration = QuicConfiguration(
            is_client=True,
            alpn_protocols=H3_ALPN,
            max_datagram_frame_size=65536,
            idle_timeout=self.idle_timeout,
        )
        # No CA check: the certificate is compared with the announced hash instead (see _pin).
        configuration.verify_mode = ssl.CERT_NONE
        return configuration

    async def _session(self, url: str, digest: bytes) -> None:
        """One session, until it ends (raises :class:`_Ended`) or is refused (``ClientError``)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 443
        params: dict[str, str | int] = {}
        if self.connection_id is not None:
            params = {"connection_id": self.connection_id, "last_seq": self.last_seq}
        if self.heartbeats != "stream":
            params["heartbeats"] = self.heartbeats
        query = "?" + urlencode(params) if params else ""
        loop = asyncio.get_running_loop()
        family, _, _, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM))[0]
        configuration = self._configuration()
        configuration.server_name = host
        # Not aioquic's connect(): its exit waits for the QUIC close to complete, and a client cut
        # in the middle (drop_connection) must still close its UDP socket at once.
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _H3ClientProtocol(QuicConnection(configuration=configuration)),
            local_addr=("::" if family == socket.AF_INET6 else "0.0.0.0", 0),
        )
        protocol.on_datagram = self._datagram
        try:
            async with asyncio.timeout(self.connect_timeout):
                protocol.connect(address)
                await protocol.wait_connected()
            _pin(protocol, digest)
            await self._open(protocol, parts.netloc, (parts.path or "/") + query)
            await self._read(protocol)
        finally:
            protocol.close()  # CONNECTION_CLOSE, sent now
            transport.close()

    async def _open(self, protocol: _H3ClientProtocol, authority: str, path: str) -> None:
        async with asyncio.timeout(self.connect_timeout):
            await protocol.settings_received.wait()
            http = protocol.http
            assert http is not None
            session_id = protocol._quic.get_next_available_stream_id()
            protocol.session_id = session_id
            headers = [
                (b":method", b"CONNECT"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b":protocol", b"webtransport"),
            ]
            if self.origin is not None:
                headers.append((b"origin", self.origin.encode()))
            http.send_headers(session_id, headers)
            protocol.transmit()
            status, body = await protocol.response
        if status != 200:
            raise error_from_response(status, body)
        self._protocol = protocol
        self.http_version = "HTTP/3"

    async def _read(self, protocol: _H3ClientProtocol) -> None:
        lines = LineBuffer(self.max_line)
        while True:
            data = await protocol.incoming.get()
            if isinstance(data, _Ended):
                raise data
            try:
                complete = lines.feed(data)
            except LineTooLong as exc:
                raise _Ended(None, str(exc)) from None
            for line in complete:
                self._handle(json.loads(line))

    def _datagram(self, data: bytes) -> None:
        """A datagram of the session: one event (a heartbeat), read as a line is."""
        try:
            event = json.loads(data)
        except ValueError:
            return  # a datagram is not a stream: nothing to resynchronise, just skip it
        if not isinstance(event, dict):
            return
        self.datagrams += 1
        if isinstance(event.get("count"), int):
            self.datagram_heartbeats.append(event["count"])
        self._handle(event)

    async def send(self, text: str) -> None:
        """Write ``{"message": text}`` as a line; the echo (``user_message``) comes back on the
        stream."""
        self._check_can_send()
        protocol = self._protocol
        if protocol is None or protocol.stream_id is None:
            raise ClientError("not_connected", "The session is not open (yet, or any more).")
        line = encode_line(json.dumps({"message": text}, ensure_ascii=False))
        protocol._quic.send_stream_data(protocol.stream_id, line)
        protocol.transmit()

    async def _close_socket(self) -> None:
        """End the session with code 1000 (the close capsule), as the WebSocket client does."""
        protocol = self._protocol
        if protocol is None or protocol.http is None or protocol.session_id is None:
            return
        with contextlib.suppress(Exception):
            capsule = close_capsule(CloseCode.NORMAL, "client closed")
            protocol.http.send_data(protocol.session_id, capsule, end_stream=True)
            protocol.transmit()
        self.close_code = CloseCode.NORMAL

    async def _release(self) -> None:
        await self._http.aclose()


def _pin(protocol: QuicConnectionProtocol, digest: bytes) -> None:
    """Refuse a server whose certificate is not the announced one (aioquic keeps the peer's
    certificate in a private attribute: pinned version, tests/test_webtransport.py checks a wrong
    hash is refused)."""
    certificate = protocol._quic.tls._peer_certificate
    seen = b"" if certificate is None else certificate.public_bytes(Encoding.DER)
    if hashlib.sha256(seen).digest() != digest:
        raise ClientError(
            "certificate_mismatch",
            "The server's certificate is not the one GET /webtransport announced.",
        )
