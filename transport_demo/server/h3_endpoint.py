"""The HTTP/3 endpoint that carries WebTransport: aioquic's QUIC server on UDP, beside uvicorn, on
the same event loop, and one :class:`WebTransportSession` per ``CONNECT`` with
``:protocol = webtransport``.

Why aioquic: it is the maintained QUIC and HTTP/3 stack for Python, typed, and speaks
WebTransport's draft-02 (what Chromium accepts). No ASGI server serves WebTransport yet, so the
endpoint is not an ASGI app: :meth:`WebTransportEndpoint.start` binds the UDP socket from the
app's lifespan, and each session is handed to a handler coroutine
(:func:`transport_demo.server.webtransport.serve_session`) that moves lines between the session
and the hub. This module knows QUIC and HTTP/3, nothing of connections, seq or events.

One pitfall of aioquic 1.7.2 is worked around here (:meth:`WebTransportSession.open_stream`):
data the peer sends on a bidirectional WebTransport stream that *this* side opened is parsed as
HTTP/3 frames and lost. The stream is marked as a WebTransport stream of its session
(``frame_type``, ``session_id`` of aioquic's private ``H3Stream``) right after it is created;
aioquic is pinned (constraints/test.txt) and the tests send lines both ways on such a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any, TextIO
from urllib.parse import unquote

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import (
    DataReceived,
    H3Event,
    HeadersReceived,
    WebTransportStreamDataReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, ProtocolNegotiated, QuicEvent, StreamReset

from .certificates import Certificate
from .wakeups import Inbox, Wakeup
from .wt_framing import CapsuleReader, SessionClose, close_capsule

__all__ = [
    "DRAFT_HEADER",
    "IDLE_TIMEOUT",
    "SessionHandler",
    "WebTransportEndpoint",
    "WebTransportSession",
    "quic_configuration",
    "quiet_quic_logs",
    "secrets_log_if_asked",
]

logger = logging.getLogger("transport_demo.webtransport")

IDLE_TIMEOUT = 30.0
"""Seconds of silence after which QUIC drops a connection (the heartbeats keep a session busy)."""
MAX_DATAGRAM_FRAME_SIZE = 65536
"""Offered so that the peer may send DATAGRAM frames: HTTP/3's ``H3_DATAGRAM`` setting, which
WebTransport requires, is refused without it (aioquic issue #237)."""
DRAFT_HEADER = (b"sec-webtransport-http3-draft", b"draft02")
"""The answer header of draft-02, the draft aioquic speaks and Chromium accepts."""
STREAM_REFUSED = 0
"""The WebTransport error code a refused extra stream is stopped with."""
SEND_HIGH_WATER = 1 << 20
"""Bytes written on a session's stream and not yet acknowledged past which the writer waits
(:meth:`WebTransportSession.wait_writable`). aioquic buffers whatever it is given; without this a
client that stops reading (or vanishes) would let its events pile up in that buffer, marked as
written, instead of waiting in its connection's queue, which is bounded (``max_queue``): the
WebSocket gets the same from its transport's write buffer."""

RECEIVE_HIGH_WATER = 1 << 20
"""Bytes the client may have written on the session's stream that the handler has not read yet.
QUIC's flow control does not bound them: aioquic raises its windows as data arrives, not as the
application reads it. Past this the session is :attr:`WebTransportSession.overflowed` and its
handler closes it (the WebSocket's reader is bounded by its ``max_queue`` instead)."""

SessionHandler = Callable[["WebTransportSession"], Coroutine[Any, Any, None]]


def quiet_quic_logs() -> None:
    """aioquic logs every connection's events at INFO on ``quic`` ("Duplicate CRYPTO data", ...):
    WARNING and up only, unless someone chose a level."""
    quic = logging.getLogger("quic")
    if quic.level == logging.NOTSET:
        quic.setLevel(logging.WARNING)


def quic_configuration(certificate: Certificate) -> QuicConfiguration:
    """aioquic's server configuration: HTTP/3 by ALPN, datagrams allowed, ``certificate``."""
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN,
        max_datagram_frame_size=MAX_DATAGRAM_FRAME_SIZE,
        idle_timeout=IDLE_TIMEOUT,
    )
    configuration.load_cert_chain(certificate.cert_file, certificate.key_file)
    return configuration


def secrets_log_if_asked() -> TextIO | None:
    """With ``SSLKEYLOGFILE`` set in the environment, QUIC's TLS secrets of every connection,
    appended there in NSS key log format (aioquic's ``secrets_log_file``), so Wireshark decrypts
    a capture of the sessions (the relay's ``capture=``) as it does the https server's
    (:func:`transport_demo.server.https_server.write_secrets_if_asked`). Off unless set, and said
    loudly."""
    path = os.environ.get("SSLKEYLOGFILE")
    if not path:
        return None
    logger.warning(
        "QUIC secrets are written to %s (SSLKEYLOGFILE): whoever has that file can decrypt "
        "every WebTransport session of this server. Unset it outside a lesson.",
        path,
    )
    return open(path, "a", encoding="ascii")  # closed with the endpoint


class WebTransportSession:
    """One WebTransport session: its ``CONNECT`` request, the one bidirectional stream this server
    opens on it, and what arrives on that stream (:attr:`incoming`: data, then ``None`` when the
    client ends the stream or the session, or the connection is gone).

    The handler answers the request (:meth:`accept` or :meth:`refuse`), opens the stream, writes
    with :meth:`send` and ends with :meth:`close`. Every call transmits at once.
    """

    __slots__ = (
        "_capsules",
        "_http",
        "_protocol",
        "_unread",
        "_writable",
        "address",
        "ended",
        "headers",
        "incoming",
        "overflowed",
        "peer_close",
        "session_id",
        "stream_id",
    )

    def __init__(
        self,
        protocol: H3ServerProtocol,
        http: H3Connection,
        session_id: int,
        headers: dict[bytes, bytes],
        address: str | None,
    ) -> None:
        self._protocol = protocol
        self._http = http
        self.session_id = session_id
        self.headers = headers
        self.address = address
        """The client's IP address."""
        self.stream_id: int | None = None
        self.incoming: Inbox[bytes | None] = Inbox()
        self.overflowed = False
        """The client wrote more than :data:`RECEIVE_HIGH_WATER` unread bytes: :attr:`incoming`
        got ``None`` and nothing more (the handler closes the session)."""
        self._unread = 0
        self.peer_close: SessionClose | None = None
        """The client's own close capsule, if it sent one."""
        self.ended = False
        """The session is over: closed by either side, or its connection is gone."""
        self._capsules = CapsuleReader()
        self._writable = Wakeup()  # one waiter: the session's writer (wait_writable)

    # -- the request -----------------------------------------------------------------------

    def header(self, name: str) -> str | None:
        """A request header (``origin``, ``:authority``, ``:path``), decoded, or ``None``."""
        value = self.headers.get(name.encode())
        return None if value is None else value.decode("utf-8", "replace")

    @property
    def path(self) -> str:
        """The request's path without its query, percent-decoded."""
        return unquote((self.header(":path") or "").partition("?")[0])

    @property
    def query(self) -> str:
        """The request's raw query string."""
        return (self.header(":path") or "").partition("?")[2]

    # -- the handler's operations ------------------------------------------------------------

    async def receive(self) -> bytes | None:
        """What the client wrote next on the stream; ``None`` once it ended (or
        :attr:`overflowed`)."""
        data = await self.incoming.get()
        if data is not None:
            self._unread -= len(data)
        return data

    def accept(self) -> None:
        """Answer 200: the session is open."""
        self._http.send_headers(self.session_id, [(b":status", b"200"), DRAFT_HEADER])
        self._protocol.transmit()

    def refuse(self, status: int, body: bytes) -> None:
        """Answer the ``CONNECT`` with ``status`` and a JSON ``body``; the session never opens."""
        self.ended = True
        with contextlib.suppress(Exception):  # the client may have gone already
            headers = [(b":status", str(status).encode()), (b"content-type", b"application/json")]
            self._http.send_headers(self.session_id, headers)
            self._http.send_data(self.session_id, body, end_stream=True)
        self._protocol.transmit()
        self._protocol.forget(self)

    def open_stream(self) -> int:
        """Open the session's bidirectional stream (the page reads it from
        ``incomingBidirectionalStreams``) and return its id."""
        stream_id = self._http.create_webtransport_stream(self.session_id)
        # The workaround of the module docstring: without it, aioquic 1.7.2 parses what the client
        # writes on this stream as HTTP/3 frames and drops it.
        with self._http._get_or_create_stream(stream_id) as stream:
            stream.frame_type = FrameType.WEBTRANSPORT_STREAM
            stream.session_id = self.session_id
        self.stream_id = stream_id
        self._protocol.transmit()
        return stream_id

    def send(self, data: bytes) -> bool:
        """Write ``data`` on the stream; ``False`` once the session is over."""
        if self.stream_id is None:
            return False
        return self.send_on(self.stream_id, data)

    def open_unidirectional(self) -> int:
        """Open one more stream, server to client only, and return its id (the session's own
        stream is :meth:`open_stream`'s; the head-of-line lab opens several of these)."""
        stream_id = self._http.create_webtransport_stream(self.session_id, is_unidirectional=True)
        self._protocol.transmit()
        return stream_id

    def send_on(self, stream_id: int, data: bytes) -> bool:
        """Write ``data`` on one of this session's streams; ``False`` once the session is over."""
        if self.ended:
            return False
        try:
            self._http._quic.send_stream_data(stream_id, data)
        except Exception:  # the client reset or stopped the stream: the session is over for us
            self._end()
            return False
        self._protocol.transmit()
        return True

    def send_datagram(self, data: bytes) -> bool:
        """Send ``data`` as one HTTP/3 datagram of this session (RFC 9297 §2.1: QUIC's DATAGRAM
        frame, RFC 9221, never retransmitted); ``False`` once the session is over or if the
        client does not take datagrams (then it has not sent ``max_datagram_frame_size``)."""
        if self.ended:
            return False
        try:
            self._http.send_datagram(self.session_id, data)
        except Exception:
            return False
        self._protocol.transmit()
        return True

    def unacknowledged(self) -> int:
        """Bytes written on the stream that the client has not acknowledged yet (aioquic's
        sender buffer: a private attribute, read here only)."""
        if self.stream_id is None:
            return 0
        stream = self._http._quic._streams.get(self.stream_id)
        return 0 if stream is None else len(stream.sender._buffer)

    async def wait_writable(self) -> None:
        """Wait while more than :data:`SEND_HIGH_WATER` bytes are unacknowledged (woken by each
        datagram from the client, which is where acknowledgements come from)."""
        while not self.ended and self.unacknowledged() > SEND_HIGH_WATER:
            self._writable.clear()
            await self._writable.wait()

    def close(self, code: int, reason: str) -> None:
        """End the session: the close capsule with ``code`` and ``reason`` on the ``CONNECT``
        stream, then the end of both streams."""
        if not self.ended:
            with contextlib.suppress(Exception):  # a side the client already reset
                if self.stream_id is not None:
                    self._http._quic.send_stream_data(self.stream_id, b"", end_stream=True)
            with contextlib.suppress(Exception):
                self._http.send_data(self.session_id, close_capsule(code, reason), end_stream=True)
            self._protocol.transmit()
        self._end()
        self._protocol.forget(self)

    # -- from the protocol -------------------------------------------------------------------

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.incoming.put_nowait(None)
            self._writable.set()

    def _connect_stream_data(self, data: bytes, ended: bool) -> None:
        """Data on the ``CONNECT`` stream: capsules (a close), or its end (the session's)."""
        try:
            closes = self._capsules.feed(data)
        except ValueError:
            closes = [SessionClose(0, "a capsule too large")]
        if closes:
            self.peer_close = closes[0]
        if closes or ended:
            self._end()

    def _stream_data(self, stream_id: int, data: bytes, ended: bool) -> None:
        if stream_id != self.stream_id:
            # One stream per session: this server reads only the one it opened. A stream the
            # client opens is stopped (the page's writer sees an error), its data never read.
            with contextlib.suppress(ValueError):
                self._http._quic.stop_stream(stream_id, STREAM_REFUSED)
            return
        if data and not self.ended and not self.overflowed:
            if self._unread + len(data) > RECEIVE_HIGH_WATER:
                self.overflowed = True
                self.incoming.put_nowait(None)  # wakes the handler, which closes the session
                return
            self._unread += len(data)
            self.incoming.put_nowait(data)
        if ended:
            self._end()

    def _stream_reset(self, stream_id: int) -> None:
        if stream_id in (self.session_id, self.stream_id):
            self._end()


RELEASE_DELAY = 1.0
"""Seconds after a connection's termination before its cycles are broken
(:meth:`H3ServerProtocol._release`): its session handlers, woken by the termination, have ended."""


def _nothing(*args: Any, **kwargs: Any) -> None:
    """A released protocol's handlers (aioquic's server had set partials holding the protocol)."""


class H3ServerProtocol(QuicConnectionProtocol):
    """One QUIC connection: HTTP/3 on top, its WebTransport sessions handed to the endpoint."""

    def __init__(self, *args: Any, endpoint: WebTransportEndpoint, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._endpoint = endpoint
        self._http: H3Connection | None = None
        self._sessions: dict[int, WebTransportSession] = {}
        self._address: str | None = None
        endpoint.protocols.add(self)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        # The client's address, as the UDP socket saw it (aioquic has no public accessor).
        self._address = str(addr[0])
        super().datagram_received(data, addr)
        for session in self._sessions.values():  # acknowledgements may have freed their buffers
            session._writable.set()

    def forget(self, session: WebTransportSession) -> None:
        self._sessions.pop(session.session_id, None)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._http = H3Connection(self._quic, enable_webtransport=True)
        elif isinstance(event, ConnectionTerminated):
            for session in list(self._sessions.values()):
                session._end()
            self._sessions.clear()
            self._endpoint.protocols.discard(self)
            # Once aioquic has finished with the connection (this event is its last word, and
            # its server forgot the connection just before it), break its cycles.
            self._loop.call_later(RELEASE_DELAY, self._release)
            return
        elif isinstance(event, StreamReset):
            for session in list(self._sessions.values()):
                session._stream_reset(event.stream_id)
        if self._http is not None:
            for http_event in self._http.handle_event(event):
                self._http_event_received(self._http, http_event)

    def _release(self) -> None:
        """Free a terminated connection by reference counting alone. aioquic's connection refers
        to itself (bound methods in its frame table, its TLS and key-log callbacks, its loss
        recovery) and its server's handlers to this protocol (partials holding it): cycles only
        the collector frees, and never once the command line's GC policy has frozen them
        (:mod:`.gc_policy`): about 100 KiB a connection, for good. Emptying the connection's
        attributes and dropping the handlers breaks every one of those cycles; nothing calls into
        the connection after its termination (the sessions ended with it, the timers are
        cancelled here). Private attributes of aioquic's (pinned; ``tests/test_load.py`` cycles
        sessions against the command line's server, freeze on)."""
        for handle in (self._timer, self._transmit_task):
            if handle is not None:
                handle.cancel()
        self._timer = self._transmit_task = None
        vars(self._quic).clear()
        self._http = None
        self._connection_terminated_handler = _nothing
        self._connection_id_issued_handler = _nothing
        self._connection_id_retired_handler = _nothing

    def _http_event_received(self, http: H3Connection, event: H3Event) -> None:
        if isinstance(event, HeadersReceived) and event.stream_id not in self._sessions:
            headers = dict(event.headers)
            connect = headers.get(b":method") == b"CONNECT"
            if connect and headers.get(b":protocol") == b"webtransport":
                session = WebTransportSession(self, http, event.stream_id, headers, self._address)
                self._sessions[event.stream_id] = session
                self._endpoint.spawn(session)
            else:  # only WebTransport is served over HTTP/3 here; pages come over TCP
                http.send_headers(event.stream_id, [(b":status", b"404")], end_stream=True)
                self.transmit()
        elif isinstance(event, DataReceived) and event.stream_id in self._sessions:
            self._sessions[event.stream_id]._connect_stream_data(event.data, event.stream_ended)
        elif isinstance(event, WebTransportStreamDataReceived):
            owner = self._sessions.get(event.session_id)
            if owner is not None:
                owner._stream_data(event.stream_id, event.data, event.stream_ended)


class WebTransportEndpoint:
    """The UDP socket, its QUIC connections and the sessions' handler tasks.

    ``receive_buffer`` is the ``SO_RCVBUF`` asked for the UDP socket (``None``: the kernel's
    default). One socket receives every client's datagrams; when thousands of sessions arrive at
    once, the handshakes' datagrams pile up faster than the loop reads them, and past the
    kernel's default (~208 KiB) they are dropped and retransmitted seconds later
    (docs/benchmarks.md: with 4 MiB, 10,000 arriving sessions were all held).
    """

    def __init__(
        self,
        handler: SessionHandler,
        certificate: Certificate,
        *,
        receive_buffer: int | None = None,
    ) -> None:
        self.handler = handler
        self.certificate = certificate
        self.receive_buffer_asked = receive_buffer
        self.protocols: set[H3ServerProtocol] = set()
        self.port: int | None = None
        """The UDP port, once started."""
        self.receive_buffer: int | None = None
        """The socket's receive buffer as the kernel reports it, once started (Linux reports
        twice the bytes granted: its own bookkeeping counts against the buffer, socket(7))."""
        self._server: QuicServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._secrets: TextIO | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on UDP ``host:port``; raises ``OSError`` when the port cannot be bound."""
        quiet_quic_logs()
        create = functools.partial(H3ServerProtocol, endpoint=self)
        configuration = quic_configuration(self.certificate)
        configuration.secrets_log_file = self._secrets = secrets_log_if_asked()
        try:
            self._server = await serve(
                host, port, configuration=configuration, create_protocol=create
            )
        except OSError:
            self._close_secrets()
            raise
        self.port = port
        self.set_receive_buffer(self.receive_buffer_asked)

    def _socket(self) -> socket.socket | None:
        # aioquic's QuicServer keeps the datagram transport it was given privately (pinned:
        # constraints/test.txt); its socket is the transport's public extra info.
        transport = getattr(self._server, "_transport", None)
        return None if transport is None else transport.get_extra_info("socket")

    def set_receive_buffer(self, size: int | None) -> int | None:
        """Ask ``SO_RCVBUF = size`` of the running socket (``None``: leave it) and return what
        the kernel reports (also :attr:`receive_buffer`). The kernel caps the request at
        ``net.core.rmem_max`` without an error; ``SO_RCVBUFFORCE`` could pass the cap, but needs
        CAP_NET_ADMIN and overrides the host's own limit, so it is not used."""
        sock = self._socket()
        if sock is None:
            return None
        if size is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        got = self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        logger.info(
            "WebTransport's UDP receive buffer: %s bytes as the kernel reports it (asked: %s)",
            got,
            "the kernel's default" if size is None else size,
        )
        return got

    def _close_secrets(self) -> None:
        if self._secrets is not None:
            self._secrets.close()
            self._secrets = None

    def spawn(self, session: WebTransportSession) -> None:
        """Run the handler for ``session`` (kept until it ends)."""
        task = asyncio.create_task(self.handler(session), name="transport-demo-webtransport")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a WebTransport session failed", exc_info=task.exception())

    @property
    def sessions(self) -> int:
        """Sessions whose handler is running."""
        return len(self._tasks)

    async def close(self, timeout: float = 1.0) -> None:
        """Give the handlers ``timeout`` seconds to end (the hub's close has ended their streams:
        they are writing their close capsules), then close every QUIC connection and the socket."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            self._server.close()  # CONNECTION_CLOSE to every client, then the socket
            self._server = None
        self.protocols.clear()
        self._close_secrets()
