"""The benchmark's WebTransport probe: one session over HTTP/3 (aioquic, UDP), as lean as the
WebSocket probe's ``websockets`` connection, so that a capacity run measures the server.

A probe asks ``GET /webtransport`` where the session is and which certificate to expect (once per
server and process: 10,000 sessions need not ask 10,000 times), opens its own QUIC connection on
its own UDP socket (as each browser tab does), pins the certificate by its SHA-256, sends the
session's ``CONNECT`` and reads the ``connected`` line from the stream the server opens. From then
on each line is handled as it arrives, in the protocol's callback: the arrival time is taken
there, not when a reader task gets round to it.

It counts the UDP payload bytes of its connection both ways (``socket_bytes()``):
the QUIC packets as sent, encrypted, headers and acknowledgements included — what a TCP relay
counts for the other probes (TCP payload), one layer over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
import time
from typing import Any, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, ProtocolNegotiated, QuicEvent
from cryptography.hazmat.primitives.serialization import Encoding

from ..server.h3_endpoint import quiet_quic_logs
from ..server.wt_framing import LineBuffer, encode_line
from .http_clients import RawHTTP
from .probe_base import Probe

__all__ = ["WebTransportProbe", "where"]

_WHERE: dict[int, tuple[str, int, bytes]] = {}
"""Per server port: the session's path, its UDP port and the certificate's SHA-256."""


async def where(port: int, *, fresh: bool = False) -> tuple[str, int, bytes]:
    """``GET /webtransport`` of the server on TCP ``port``: (path, UDP port, certificate SHA-256),
    remembered for this process (``fresh``: ask again, e.g. after a pin mismatch: a server started
    anew on the same port has a new certificate)."""
    if fresh or port not in _WHERE:
        http = RawHTTP(port)
        try:
            answer = json.loads(await http.request("GET", "/webtransport"))
        finally:
            http.close()
        url = str(answer["url"])  # https://127.0.0.1:UDP/wt
        authority, _, path = url.removeprefix("https://").partition("/")
        _WHERE[port] = (
            "/" + path,
            int(authority.rsplit(":", 1)[1]),
            bytes.fromhex(answer["cert_sha256"]),
        )
    return _WHERE[port]


class _Session(QuicConnectionProtocol):
    """One QUIC connection with one WebTransport session; lines go to ``on_line``."""

    def __init__(self, quic: QuicConnection) -> None:
        super().__init__(quic)
        self.http: H3Connection | None = None
        self.settings = asyncio.Event()
        self.session_id: int | None = None
        self.stream_id: int | None = None
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_line: Any = None  # Callable[[bytes, int], None]
        self.lines = LineBuffer(1 << 20)
        self.sent = 0
        self.received = 0

    # -- counting the UDP payload -----------------------------------------------------------

    def transmit(self) -> None:
        # aioquic's transmit, with the bytes counted (it sends what datagrams_to_send gives).
        transport = cast(asyncio.DatagramTransport, self._transport)
        for data, addr in self._quic.datagrams_to_send(now=self._loop.time()):
            self.sent += len(data)
            transport.sendto(data, addr)
        timer_at = self._quic.get_timer()
        if self._timer is not None and self._timer_at != timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None:
            self._timer = self._loop.call_at(timer_at, self._handle_timer)
        self._timer_at = timer_at

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self.received += len(data)
        super().datagram_received(data, addr)

    # -- events ----------------------------------------------------------------------------

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.http = H3Connection(self._quic, enable_webtransport=True)
        elif isinstance(event, ConnectionTerminated):
            self._end()
            return
        if self.http is not None:
            for http_event in self.http.handle_event(event):
                self._http_event(http_event)
            if self.http.received_settings is not None:
                self.settings.set()

    def _http_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived) and event.stream_id == self.session_id:
            if not self.status.done():
                status = dict(event.headers).get(b":status", b"0")
                self.status.set_result(int(status) if status.isdigit() else 0)
        elif isinstance(event, DataReceived) and event.stream_id == self.session_id:
            if event.stream_ended:  # a close capsule and the CONNECT stream's end
                self._end()
        elif isinstance(event, WebTransportStreamDataReceived):
            if self.stream_id is None:
                self.stream_id = event.stream_id  # the one stream the server opens
            if event.stream_id == self.stream_id and event.data and self.on_line is not None:
                at = time.monotonic_ns()
                for line in self.lines.feed(event.data):
                    self.on_line(line, at)

    def _end(self) -> None:
        if not self.status.done():
            self.status.set_exception(ConnectionError("the QUIC connection ended"))
            # Marked as seen: a probe whose open timed out no longer awaits it, and asyncio would
            # log "Future exception was never retrieved" for each such session.
            self.status.exception()
        if not self.ended.done():
            self.ended.set_result(None)


class WebTransportProbe(Probe):
    """Our WebTransport (``/wt``): the WebSocket's events, one per line, on the stream the server
    opens; texts sent as ``{"message": …}`` lines on the same stream."""

    transport = "webtransport"

    def __init__(self, port: int, heartbeat_s: float = 5.0) -> None:
        super().__init__(port, heartbeat_s)
        self._session: _Session | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._greeted: asyncio.Future[str] | None = None

    @property
    def version(self) -> str:
        return "HTTP/3"

    def links(self) -> set[object]:
        """The QUIC connection (one per probe, each on its own UDP socket)."""
        return {self._session} if self._session is not None else set()

    def socket_bytes(self) -> int | None:
        """UDP payload bytes this probe's connection sent and received (module docstring)."""
        session = self._session
        return None if session is None else session.sent + session.received

    async def open(self) -> None:
        path, udp_port, digest = await where(self.port)
        try:
            try:
                await self._connect(path, udp_port, digest)
            except _PinMismatch:  # a new server on a port a previous one had: ask again
                await self.close()
                path, udp_port, digest = await where(self.port, fresh=True)
                await self._connect(path, udp_port, digest)
        except BaseException:
            # A failed (or timed out) open leaves no UDP socket behind resending its handshake.
            await self.close()
            raise

    async def _connect(self, path: str, udp_port: int, digest: bytes) -> None:
        quiet_quic_logs()
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536,
            idle_timeout=60.0, server_name="127.0.0.1",
        )  # fmt: skip
        # No CA: the certificate is compared with the announced hash below (as a page's
        # serverCertificateHashes pins it).
        configuration.verify_mode = ssl.CERT_NONE
        loop = asyncio.get_running_loop()
        udp, session = await loop.create_datagram_endpoint(
            lambda: _Session(QuicConnection(configuration=configuration)),
            local_addr=("127.0.0.1", 0),
        )
        self._udp, self._session = udp, session
        self._greeted = loop.create_future()
        session.on_line = self._first_line
        session.connect(("127.0.0.1", udp_port))
        await session.wait_connected()
        certificate = session._quic.tls._peer_certificate
        seen = b"" if certificate is None else certificate.public_bytes(Encoding.DER)
        if hashlib.sha256(seen).digest() != digest:
            raise _PinMismatch("the certificate is not the one GET /webtransport announced")
        await session.settings.wait()
        assert session.http is not None
        session.session_id = session._quic.get_next_available_stream_id()
        session.http.send_headers(session.session_id, [
            (b":method", b"CONNECT"), (b":scheme", b"https"),
            (b":authority", f"127.0.0.1:{udp_port}".encode()), (b":path", path.encode()),
            (b":protocol", b"webtransport"),
        ])  # fmt: skip
        session.transmit()
        status = await session.status
        if status != 200:
            raise ConnectionError(f"WebTransport session refused: HTTP {status}")
        self.requests += 1
        self.push_to = await self._greeted  # the connected line's connection_id

    def _first_line(self, line: bytes, at: int) -> None:
        event = json.loads(line)
        assert self._session is not None and self._greeted is not None
        if event.get("type") == "connected" and not self._greeted.done():
            self._greeted.set_result(event["connection_id"])
            self._session.on_line = self._line
        else:
            self._line(line, at)

    def _line(self, line: bytes, at: int) -> None:
        event = json.loads(line)
        if event["type"] == "heartbeat":
            self.beat(at)
        elif "seq" in event:
            self.on_text(event["message"], at)

    async def receive(self) -> None:
        """Lines are handled as they arrive (module docstring): wait for the session's end."""
        assert self._session is not None
        await asyncio.shield(self._session.ended)

    async def send(self, text: str) -> None:
        session = self._session
        assert session is not None and session.stream_id is not None
        line = encode_line(json.dumps({"message": text}))
        session._quic.send_stream_data(session.stream_id, line)
        session.transmit()

    async def close(self) -> None:
        session, udp = self._session, self._udp
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()  # CONNECTION_CLOSE, sent now: the server ends the session
        if udp is not None:
            udp.close()


class _PinMismatch(ConnectionError):
    pass
