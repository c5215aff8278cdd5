"""HTTP/2 on the wire, for the notebooks: the frames of a few requests on one connection, and
what HPACK makes of a request's headers the second time (RFC 9113, RFC 7541).

Synchronous, like :mod:`transport_demo.lab.wire`: :func:`h2_exchange` opens one TLS connection
with ALPN ``h2`` (the h2 library keeps the protocol's state; nothing here re-implements it), sends
the requests one after another on streams 1, 3, 5, … and records every frame both ways with its
size, so a cell can show a long poll's headers shrinking from dozens of bytes to a handful once
the dynamic table holds them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

__all__ = [
    "FRAME_TYPES",
    "H2Exchange",
    "H2Frame",
    "StreamLimit",
    "first_answer_ms",
    "frame_header",
    "frames",
    "h2_exchange",
    "http1_request_head",
    "stream_limit",
]

FRAME_TYPES = {
    0x0: "DATA",
    0x1: "HEADERS",
    0x2: "PRIORITY",
    0x3: "RST_STREAM",
    0x4: "SETTINGS",
    0x5: "PUSH_PROMISE",
    0x6: "PING",
    0x7: "GOAWAY",
    0x8: "WINDOW_UPDATE",
    0x9: "CONTINUATION",
}
"""RFC 9113 §6: the frame types by their code."""

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface (RFC 9113 §3.4), sent before the first frame."""


def frame_header(header: bytes) -> tuple[int, str, int, int]:
    """The nine bytes that open every HTTP/2 frame (RFC 9113 §4.1): ``(length, type, flags,
    stream_id)`` — a 24-bit length, an 8-bit type, 8 bits of flags, one reserved bit and a 31-bit
    stream identifier."""
    if len(header) < 9:
        raise ValueError(f"a frame header is 9 bytes, not {len(header)}")
    length = int.from_bytes(header[0:3], "big")
    kind = FRAME_TYPES.get(header[3], f"unknown 0x{header[3]:02x}")
    stream_id = int.from_bytes(header[5:9], "big") & 0x7FFF_FFFF
    return length, kind, header[4], stream_id


@dataclass(frozen=True)
class H2Frame:
    """One frame: who sent it, its type, stream, flags and length (the payload, without the
    9-byte header)."""

    sender: str  # "client" or "server"
    kind: str
    stream_id: int
    flags: int
    length: int

    def __repr__(self) -> str:
        return f"{self.sender:>6} {self.kind:<13} stream {self.stream_id:<2} {self.length} bytes"


def frames(data: bytes, sender: str) -> list[H2Frame]:
    """The frames in ``data`` (a client's bytes may start with the preface, which is skipped)."""
    if data.startswith(PREFACE):
        data = data[len(PREFACE) :]
    out = []
    while len(data) >= 9:
        length, kind, flags, stream_id = frame_header(data[:9])
        out.append(H2Frame(sender, kind, stream_id, flags, length))
        data = data[9 + length :]
    return out


@dataclass
class H2Exchange:
    """What :func:`h2_exchange` saw: every frame both ways, the answers, and per request the
    size of its HEADERS block (HPACK-encoded)."""

    alpn: str | None
    frames: list[H2Frame] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    server_settings: dict[str, int] = field(default_factory=dict)
    """The server's SETTINGS (RFC 9113 §6.5.2), by name, as its first frame announced them."""

    @property
    def request_header_bytes(self) -> list[int]:
        """The HEADERS payload of each request, in order: the first carries every header in
        full, the next ones mostly indexes into the dynamic table (RFC 7541 §2.3.2)."""
        return [f.length for f in self.frames if f.sender == "client" and f.kind == "HEADERS"]

    def __repr__(self) -> str:
        return "\n".join(repr(frame) for frame in self.frames)


def h2_exchange(
    url: str,
    requests: list[tuple[str, str, dict[str, Any] | None]],
    *,
    verify: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> H2Exchange:
    """Send ``requests`` (``(method, path, json body or None)``) one after another on one HTTP/2
    connection to ``url`` (https), each answered before the next is sent, and record the frames.
    ``verify``: a context that trusts the server (``server.ssl_context()``); default: the system's
    CAs."""
    with _h2_connection(url, verify, timeout) as (sock, connection, authority):
        exchange = H2Exchange(sock.selected_alpn_protocol())
        _send(sock, connection, exchange)
        for method, path, body in requests:
            stream_id = connection.get_next_available_stream_id()
            payload = b"" if body is None else json.dumps(body).encode()
            headers = [
                (":method", method),
                (":scheme", "https"),
                (":authority", authority),
                (":path", path),
                ("user-agent", "transport-demo-lab"),
                ("accept", "application/json"),
            ]
            if body is not None:
                headers.append(("content-type", "application/json"))
            connection.send_headers(stream_id, headers, end_stream=body is None)
            if body is not None:
                connection.send_data(stream_id, payload, end_stream=True)
            _send(sock, connection, exchange)
            exchange.answers.append(_answer(sock, connection, exchange, stream_id))
        exchange.server_settings = {
            h2.settings.SettingCodes(code).name: value
            for code, value in connection.remote_settings.items()
        }
        connection.close_connection()
        _send(sock, connection, exchange)
    return exchange


@contextlib.contextmanager
def _h2_connection(
    url: str, verify: ssl.SSLContext | None, timeout: float
) -> Iterator[tuple[ssl.SSLSocket, h2.connection.H2Connection, str]]:
    """A TLS socket to ``url`` that offered only ``h2``, a client-side h2 state machine with its
    preface queued, and the ``:authority`` to send."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    context = verify if verify is not None else ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, port), timeout=timeout)
    with context.wrap_socket(raw, server_hostname=host) as sock:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        yield sock, connection, f"{host}:{port}"


def _send(sock: ssl.SSLSocket, connection: h2.connection.H2Connection, seen: H2Exchange) -> None:
    data = connection.data_to_send()
    if data:
        seen.frames.extend(frames(data, "client"))
        sock.sendall(data)


def _answer(
    sock: ssl.SSLSocket,
    connection: h2.connection.H2Connection,
    seen: H2Exchange,
    stream_id: int,
) -> dict[str, Any]:
    status, body = 0, b""
    pending = b""
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        pending += data
        complete = _complete_frames(pending)
        seen.frames.extend(frames(pending[:complete], "server"))
        pending = pending[complete:]
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                body += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                _send(sock, connection, seen)
                return {"status": status, "body": json.loads(body) if body else None}
        _send(sock, connection, seen)


def _complete_frames(data: bytes) -> int:
    """How many leading bytes of ``data`` are whole frames."""
    end = 0
    while len(data) - end >= 9:
        length = int.from_bytes(data[end : end + 3], "big")
        if len(data) - end < 9 + length:
            break
        end += 9 + length
    return end


def http1_request_head(method: str, path: str, host: str, body: bytes = b"") -> bytes:
    """The same request's head as HTTP/1.1 would send it (RFC 9112 §3), for comparison: every
    header in full text, every time."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        "User-Agent: transport-demo-lab",
        "Accept: application/json",
    ]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class StreamLimit:
    """What :func:`stream_limit` saw on one connection."""

    max_concurrent_streams: int
    """The server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` (RFC 9113 §6.5.2)."""
    streaming: int
    """Streams that got their response headers and a first event, all at once."""
    refused: str | None
    """What the client's HTTP/2 state machine said of one stream more, or ``None``."""
    after_one_closed: bool
    """Whether that one more stream opened once one of the others was closed."""

    def __repr__(self) -> str:
        return (
            f"SETTINGS_MAX_CONCURRENT_STREAMS {self.max_concurrent_streams}; "
            f"{self.streaming} streams open at once on one TCP connection; "
            f"one more: {self.refused or 'opened'}; "
            f"after one closed: {'opened' if self.after_one_closed else 'still waiting'}"
        )


def stream_limit(
    url: str, *, path: str = "/sse", verify: ssl.SSLContext | None = None, timeout: float = 10.0
) -> StreamLimit:
    """Open as many event streams (``GET path``) as the server allows on ONE HTTP/2 connection,
    try one more, then close one and try again: where the browser's six connections per origin
    went (a browser queues the extra stream until one ends, as h2 refuses to open it here)."""
    with _h2_connection(url, verify, timeout) as (sock, connection, authority):
        sock.sendall(connection.data_to_send())
        while connection.remote_settings.max_concurrent_streams > 2**30:  # not yet received
            connection.receive_data(sock.recv(65536))
            sock.sendall(connection.data_to_send())
        limit = connection.remote_settings.max_concurrent_streams
        headers = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", authority),
            (":path", path),
            ("accept", "text/event-stream"),
        ]
        opened = [_open(connection, headers) for _ in range(limit)]
        sock.sendall(connection.data_to_send())
        started = _until_data(sock, connection, set(opened))
        refused = None
        try:
            _open(connection, headers)
        except h2.exceptions.TooManyStreamsError as exc:
            refused = f"{type(exc).__name__} ({exc})"
        connection.reset_stream(opened[0])
        extra = _open(connection, headers)
        sock.sendall(connection.data_to_send())
        after = bool(_until_data(sock, connection, {extra}))
        connection.close_connection()
        sock.sendall(connection.data_to_send())
    return StreamLimit(limit, len(started), refused, after)


def _open(connection: h2.connection.H2Connection, headers: list[tuple[str, str]]) -> int:
    stream_id = connection.get_next_available_stream_id()
    connection.send_headers(stream_id, headers, end_stream=True)
    return stream_id


def _until_data(
    sock: ssl.SSLSocket, connection: h2.connection.H2Connection, waiting: set[int]
) -> set[int]:
    """The streams of ``waiting`` that got data before they all did or the socket timed out."""
    got: set[int] = set()
    try:
        while got != waiting:
            for event in connection.receive_data(sock.recv(65536)):
                if isinstance(event, h2.events.DataReceived):
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                    if event.stream_id in waiting:
                        got.add(event.stream_id)
            sock.sendall(connection.data_to_send())
    except TimeoutError:
        pass
    return got


def first_answer_ms(
    url: str, *, verify: ssl.SSLContext | None = None, rounds: int = 20, path: str = "/stats"
) -> float:
    """The median milliseconds from a new TCP connection to the first byte of an answer to
    ``GET path``: the TCP handshake, then for https the TLS handshake (TLS 1.3: one round trip
    more, RFC 8446 §2), then the request. HTTP/1.1 either way, so only TLS differs."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=10) as raw:
            sock: socket.socket = raw
            if parts.scheme == "https":
                context = verify if verify is not None else ssl.create_default_context()
                sock = context.wrap_socket(raw, server_hostname=host)
            sock.sendall(request.encode())
            sock.recv(1)
            times.append((time.perf_counter() - started) * 1000)
            sock.close()
    return round(statistics.median(times), 2)
