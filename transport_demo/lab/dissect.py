"""One relayed connection's bytes read back as what the application said: HTTP/1.1 requests and
responses, the chunks of a chunked body, each Server-Sent Event, each WebSocket frame.

Sans-I/O: :func:`dissect` takes the connection's segments as they went (time, direction, bytes,
as :class:`~transport_demo.lab.capture.Capture` keeps them) and returns :class:`Record` s; it
reads no socket and no file. It reuses the suite's own parsers where they exist: the
EventSource's line splitter (:class:`~transport_demo.lab.eventsource.EventStreamParser`, which
also copes with a UTF-8 character cut between chunks) and the WebSocket frame decoder
(:func:`~transport_demo.lab.ws_wire.decode`). What a record says is what Wireshark's dissectors
say, in the suite's words, plus the app-level event each carried (its JSON ``type`` and ``seq``).

A record knows the segments its bytes came from (a frame cut across two segments names both)
and the time of the last one: when the receiver could first have read it whole.

HTTP/2 (RFC 9113) is read frame by frame with hyperframe and its header blocks decoded with
hpack (the parsers the h2 library is built on): the frame type, flags, stream id and length, the
request's method and path or the response's status, the app-level event in a DATA frame. Both
where HTTP/2 is in the clear (``h2c`` with prior knowledge, RFC 9113 §3.3: the client's first
bytes are the preface) and inside TLS 1.3 when the session's secrets are given (``secrets=``, a
key log read by :func:`~transport_demo.lab.keylog.read_keylog`): then the TLS records are
decrypted (:mod:`~transport_demo.lab.keylog`) and what they carry, HTTP/2 or HTTP/1.1, is read
as above; a record read from the decrypted bytes names the segment that ended its last TLS
record. Browsers speak HTTP/2 only over TLS, so that is the lesson's case; ``h2c`` costs nothing
more to read.

Deliberately small: no trailers, no ``Expect: 100-continue``; a byte it cannot place ends the
dissection of that direction: its bytes become ``undecoded`` records (kind ``tcp``), one per
segment, instead of a guess. So does TLS without its secrets.
"""

from __future__ import annotations

import json
import zlib
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hpack import Decoder as HpackDecoder
from hpack import HPACKError
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from .eventsource import EventStreamParser
from .h2_wire import FRAME_TYPES
from .keylog import Secrets, TlsReader
from .ws_wire import CLOSE_CODES, DEFLATE_TAIL, IncompleteFrame, WireFrame, decode

__all__ = ["KINDS", "Conversation", "Record", "Segment", "dissect", "dissect_quic", "with_secrets"]

KINDS = ("tcp", "tls", "http", "http2", "sse", "websocket", "quic")
"""What a record is about: TCP (SYN, FIN, RST, and bytes not read as anything else), a TLS
record, HTTP/1.1, an HTTP/2 frame, a Server-Sent Event, a WebSocket frame, a QUIC datagram."""

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""What an HTTP/2 client sends first (RFC 9113 §3.4)."""
_H2_ERRORS = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x5: "STREAM_CLOSED",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0xB: "ENHANCE_YOUR_CALM",
}  # RFC 9113 §7, the ones a lesson meets
_H2_SETTINGS = {
    0x1: "HEADER_TABLE_SIZE",
    0x2: "ENABLE_PUSH",
    0x3: "MAX_CONCURRENT_STREAMS",
    0x4: "INITIAL_WINDOW_SIZE",
    0x5: "MAX_FRAME_SIZE",
    0x6: "MAX_HEADER_LIST_SIZE",
    0x8: "ENABLE_CONNECT_PROTOCOL",
}  # RFC 9113 §6.5.2, RFC 8441 §3
_H2_SHOWN = (":method", ":path", ":protocol", ":status", "content-type", "last-event-id")

_HEADERS_LIMIT = 64 << 10  # a head longer than this is not HTTP we understand
_SHOWN_HEADERS = (
    "host",
    "origin",
    "content-type",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "last-event-id",
    "sec-websocket-extensions",
)


@dataclass(frozen=True)
class Segment:
    """One TCP segment of a connection as the relay delivered it: ``at`` (seconds since the
    epoch), ``up`` (client to server), its payload, and its TCP flags (``"PA"`` for data,
    ``"S"``, ``"SA"``, ``"A"``, ``"FA"``, ``"RA"`` for control segments without payload)."""

    at: float
    up: bool
    data: bytes = b""
    flags: str = "PA"


@dataclass(frozen=True)
class Record:
    """One thing a connection said. ``kind`` is one of :data:`KINDS`; ``summary`` a line such as
    ``GET /ws HTTP/1.1`` or ``text FIN masked 20 bytes: user_message seq 3``; ``data`` the
    bytes as they were on the wire (for a Server-Sent Event: the event's lines, without the
    chunk framing around them); ``segments`` the indexes (into the segments given to
    :func:`dissect`) its bytes came from; ``at`` the time of the last of them; ``fields`` the
    parts as values (``opcode``, ``fin``, ``masked``, ``length``, ``status``, ``id``, ``type``,
    ``seq``, ``text``, …)."""

    kind: str
    up: bool
    at: float
    summary: str
    data: bytes = b""
    segments: tuple[int, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)


_FLAG_NAMES = {"S": "SYN", "SA": "SYN-ACK", "A": "ACK", "FA": "FIN", "RA": "RST", "R": "RST"}


def _spoken(code_name: str) -> str:
    """``NO_ERROR`` as ``no error``: a summary is read, and a notebook's output that says
    "ERROR" reads as a failure."""
    return code_name.lower().replace("_", " ")


def _app_event(text: str) -> dict[str, Any]:
    """The app-level event in a JSON text: its ``type`` and ``seq`` when it has them."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    if isinstance(value.get("type"), str):
        out["type"] = value["type"]
    if isinstance(value.get("seq"), int):
        out["seq"] = value["seq"]
    for key in ("messages", "events"):  # a long poll's answer: a batch of messages
        if isinstance(value.get(key), list):
            seqs = [e["seq"] for e in value[key] if isinstance(e, dict) and "seq" in e]
            out["seqs"] = [s for s in seqs if isinstance(s, int)]
    return out


def _describe(event: dict[str, Any]) -> str:
    parts = [str(event["type"])] if "type" in event else []
    if "seq" in event:
        parts.append(f"seq {event['seq']}")
    if event.get("seqs"):
        parts.append("seq " + ", ".join(map(str, event["seqs"])))
    return " ".join(parts)


class _Stream:
    """One direction's bytes: a buffer, its offset in the stream, and which segment holds
    which bytes (for naming a record's segments)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.base = 0  # the stream offset of buffer[0]
        self.ends: list[int] = []  # each segment's end offset, in order
        self.indexes: list[int] = []  # that segment's index among all the connection's
        self.times: list[float] = []
        self.dead = False  # an undecodable byte: the rest of this direction is not read

    def add(self, index: int, segment: Segment) -> None:
        self.buffer += segment.data
        self.ends.append(self.base + len(self.buffer))
        self.indexes.append(index)
        self.times.append(segment.at)

    def span(self, start: int, end: int) -> tuple[tuple[int, ...], float]:
        """The segments that hold stream bytes ``[start, end)``, and when the last arrived."""
        first = bisect_right(self.ends, start)
        last = max(first, bisect_right(self.ends, max(start, end - 1)))
        last = min(last, len(self.ends) - 1)
        return tuple(self.indexes[first : last + 1]), self.times[last]

    def take(self, size: int) -> tuple[bytes, int]:
        """The first ``size`` buffered bytes, removed, and their stream offset."""
        data, start = bytes(self.buffer[:size]), self.base
        del self.buffer[:size]
        self.base += size
        return data, start


@dataclass
class _Head:
    first_line: str
    headers: dict[str, str]
    raw: bytes


def _parse_head(raw: bytes) -> _Head:
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return _Head(lines[0], headers, raw)


def _head_summary(head: _Head) -> str:
    shown = [f"{name}: {head.headers[name]}" for name in _SHOWN_HEADERS if name in head.headers]
    more = len(head.headers) - len(shown)
    tail = "; ".join(shown) + (f" (+{more} more headers)" if more else "")
    return head.first_line + (f" — {tail}" if tail else "")


class _Inflater:
    """permessage-deflate for one direction (RFC 7692): one decompressor for the whole
    connection (context takeover), or a fresh one per message when ``no_context_takeover``
    was agreed for that side."""

    def __init__(self, takeover: bool) -> None:
        self.takeover = takeover
        self._inflater = zlib.decompressobj(wbits=-15)  # 15 reads any agreed window size

    def inflate(self, data: bytes) -> bytes:
        if not self.takeover:
            self._inflater = zlib.decompressobj(wbits=-15)
        return self._inflater.decompress(data + DEFLATE_TAIL)


class _Dissector:
    """The state of both directions of one connection while it is read."""

    def __init__(self, secrets: Secrets | None = None) -> None:
        self.records: list[Record] = []
        self.streams = {True: _Stream(), False: _Stream()}  # what HTTP is read from
        self.secrets = secrets
        self.tls: TlsReader | None = None  # inside TLS: ``wire`` holds the records as sent
        self.wire = {True: _Stream(), False: _Stream()}
        self.http2 = False
        self.preface_read = False  # the client's HTTP/2 preface: frames follow it
        self.hpack = {True: HpackDecoder(), False: HpackDecoder()}  # one table per direction
        self.header_block: dict[bool, tuple[int, bytearray] | None] = {True: None, False: None}
        self.requests: deque[str] = deque()  # methods of requests not yet answered
        self.websocket = False
        self.upgrade_asked = False
        # the response body being read (down): "none", "length", "chunked", "close"
        self.body = {True: "none", False: "none"}
        self.body_left = {True: 0, False: 0}
        self.chunk_number = {True: 0, False: 0}
        self.sse: EventStreamParser | None = None
        self.sse_start: int | None = None
        self.sse_bytes = bytearray()
        self.sse_block: dict[str, Any] = {}
        self.sse_data: list[str] = []
        self.inflaters: dict[bool, _Inflater | None] = {True: None, False: None}
        self.messages: dict[bool, list[bytes]] = {True: [], False: []}
        self.message_compressed = {True: False, False: False}
        self.message_opcode = {True: 0x1, False: 0x1}

    def record(
        self, kind: str, up: bool, start: int, end: int, summary: str, wire: bytes, /, **fields: Any
    ) -> None:
        segments, at = self.streams[up].span(start, end)
        self.records.append(Record(kind, up, at, summary, wire, segments, fields))

    # ---- the loop ------------------------------------------------------------------------

    def feed(self, index: int, segment: Segment) -> None:
        if not segment.data:
            name = _FLAG_NAMES.get(segment.flags, segment.flags)
            self.records.append(
                Record("tcp", segment.up, segment.at, name, b"", (index,), {"flags": name})
            )
            return
        if self.tls is None and self.secrets is not None and self._starts_tls(segment):
            self.tls = TlsReader(self.secrets)
        if self.tls is not None:
            self.tls_segment(index, segment)
            return
        stream = self.streams[segment.up]
        stream.add(index, segment)
        if stream.dead:  # past a byte it could not place: one mark per segment, not read
            self.give_up(segment.up)
            return
        self.run(segment.up)

    def run(self, up: bool) -> None:
        stream = self.streams[up]
        while stream.buffer and not stream.dead:
            if self.websocket:
                progressed = self.ws_frame(up)
            elif self.http2 and (self.preface_read or not up):
                progressed = self.h2_frame(up)
            elif self.body[up] != "none":
                progressed = self.body_part(up)
            else:
                progressed = self.head(up)
            if not progressed:
                return

    def give_up(self, up: bool) -> None:
        stream = self.streams[up]
        size = len(stream.buffer)
        data, start = stream.take(size)
        self.record("tcp", up, start, start + size, f"undecoded: {size} bytes", data)
        stream.dead = True

    # ---- TLS -----------------------------------------------------------------------------

    def _starts_tls(self, segment: Segment) -> bool:
        """The client's first bytes are a TLS handshake record (a ClientHello)."""
        return (
            segment.up
            and self.streams[True].base == 0
            and not self.streams[True].buffer
            and (segment.data[:1] == b"\x16" and not self.wire[True].ends)
        )

    def tls_segment(self, index: int, segment: Segment) -> None:
        assert self.tls is not None
        up, wire = segment.up, self.wire[segment.up]
        wire.add(index, segment)
        for tls in self.tls.feed(up, segment.data):
            start = tls.end - len(tls.wire)
            segments, at = wire.span(start, tls.end)
            wire.take(len(tls.wire))
            if tls.content_type == 23 and tls.decrypted:  # what TLS carries: read it as ever
                stream = self.streams[up]
                stream.add(segments[-1], Segment(at, up, tls.plaintext))
                if stream.dead:
                    self.give_up(up)
                else:
                    self.run(up)
                continue
            fields: dict[str, Any] = {"content_type": tls.content_type}
            if tls.encrypted:
                fields["decrypted"] = tls.decrypted
            self.records.append(Record("tls", up, at, tls.summary, tls.wire, segments, fields))

    # ---- HTTP/2 --------------------------------------------------------------------------

    def h2_start(self, up: bool) -> bool:
        """At a direction's first byte: is this HTTP/2? The client's preface (RFC 9113 §3.4),
        or, from the server, a SETTINGS frame on stream 0, which must be its first frame (§3.4).
        Over TLS the server knows HTTP/2 from ALPN and hypercorn sends its SETTINGS at once, so
        they may arrive before the client's preface has been read."""
        buffer = self.streams[up].buffer
        if up:
            if not H2_PREFACE.startswith(bytes(buffer[: len(H2_PREFACE)])):
                return False
            if len(buffer) >= len(H2_PREFACE):
                data, start = self.streams[up].take(len(H2_PREFACE))
                self.http2 = self.preface_read = True
                self.record("http2", True, start, start + len(data), "HTTP/2 preface", data)
            return True
        if len(buffer) < 9:
            return buffer[:1] == b"\x00"  # a frame's length starts so; HTTP/1.1 never does
        if buffer[3] != 0x4 or any(buffer[5:9]):
            return False
        self.http2 = True
        return True

    def h2_frame(self, up: bool) -> bool:
        stream = self.streams[up]
        if len(stream.buffer) < 9:
            return False
        try:
            frame, length = Frame.parse_frame_header(memoryview(bytes(stream.buffer[:9])))
        except HyperframeError:
            self.give_up(up)
            return False
        if len(stream.buffer) < 9 + length:
            return False
        data, start = stream.take(9 + length)
        try:
            frame.parse_body(memoryview(data[9:]))
        except HyperframeError:
            self.record("tcp", up, start, start + len(data), f"undecoded: {len(data)} bytes", data)
            return True
        name = FRAME_TYPES.get(frame.type or 0, f"type {frame.type}")
        flags = sorted(frame.flags)
        fields: dict[str, Any] = {
            "frame_type": name,
            "stream_id": frame.stream_id,
            "flags": flags,
            "length": length,
        }
        summary = f"{name} stream {frame.stream_id}" + "".join(f" {f}" for f in flags)
        summary += f", {length} bytes"
        detail = self.h2_detail(up, frame, fields)
        self.record("http2", up, start, start + len(data), summary + detail, data, **fields)
        return True

    def h2_detail(self, up: bool, frame: Frame, fields: dict[str, Any]) -> str:
        """What the frame says, after the colon of its summary; its parts go in ``fields``."""
        if isinstance(frame, SettingsFrame):
            settings = {_H2_SETTINGS.get(k, f"{k:#x}"): v for k, v in frame.settings.items()}
            fields["settings"] = settings
            return (": " + ", ".join(f"{k} {v}" for k, v in settings.items())) if settings else ""
        if isinstance(frame, WindowUpdateFrame):
            fields["increment"] = frame.window_increment
            return f": +{frame.window_increment}"
        if isinstance(frame, GoAwayFrame):
            fields["last_stream_id"] = frame.last_stream_id
            fields["error"] = _H2_ERRORS.get(frame.error_code, hex(frame.error_code))
            return f": last stream {frame.last_stream_id}, {_spoken(fields['error'])}"
        if isinstance(frame, RstStreamFrame):
            fields["error"] = _H2_ERRORS.get(frame.error_code, hex(frame.error_code))
            return f": {_spoken(fields['error'])}"
        if isinstance(frame, PingFrame):
            return f": {frame.opaque_data.hex()}"
        if isinstance(frame, DataFrame):
            return self.h2_data(bytes(frame.data), fields)
        if isinstance(frame, HeadersFrame | PushPromiseFrame) or frame.type == 0x9:
            return self.h2_headers(up, frame, fields)
        return ""

    def h2_headers(self, up: bool, frame: Frame, fields: dict[str, Any]) -> str:
        """HEADERS and its CONTINUATIONs: one header block, decoded once it is whole (HPACK's
        table changes as it decodes, so every block is decoded, in order, §4.3)."""
        pending = self.header_block[up]
        block = pending[1] if pending and frame.type == 0x9 else bytearray()
        block += bytes(getattr(frame, "data", b""))
        if "END_HEADERS" not in frame.flags:
            self.header_block[up] = (frame.stream_id, block)
            return ": (header block continues)"
        self.header_block[up] = None
        try:
            headers = [(str(k), str(v)) for k, v in self.hpack[up].decode(bytes(block))]
        except HPACKError as error:
            return f": header block not decoded ({error})"
        named = dict(headers)
        fields["headers"] = named
        if ":method" in named:
            fields["method"] = named[":method"]
            fields["request_line"] = f"{named[':method']} {named.get(':path', '')} HTTP/2"
        if ":status" in named and named[":status"].isdigit():
            fields["status"] = int(named[":status"])
        shown = [
            f"{k} {named[k]}" if k.startswith(":") else f"{k}: {named[k]}"
            for k in _H2_SHOWN
            if k in named
        ]
        return ": " + "; ".join(shown) if shown else ""

    def h2_data(self, payload: bytes, fields: dict[str, Any]) -> str:
        """A DATA frame's app-level events: a JSON body, or the events of an event stream."""
        text = payload.decode("utf-8", "replace")
        lines = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        events = [e for e in map(_app_event, lines or [text]) if e]
        if len(events) == 1:
            fields.update(events[0])
        elif events:
            fields["seqs"] = [e["seq"] for e in events if "seq" in e]
        fields["text"] = text
        return (": " + ", ".join(_describe(e) for e in events)) if events else ""

    # ---- HTTP/1.1 ------------------------------------------------------------------------

    def head(self, up: bool) -> bool:
        stream = self.streams[up]
        if stream.base == 0 and self.h2_start(up):
            return self.http2
        if not stream.buffer[:1].isupper():  # no method or "HTTP/" starts so (TLS: 0x16)
            self.give_up(up)
            return False
        end = stream.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(stream.buffer) > _HEADERS_LIMIT:
                self.give_up(up)
            return False
        data, start = stream.take(end + 4)
        head = _parse_head(data[:-4])
        if up:
            self.request(head, start, data)
        else:
            self.response(head, start, data)
        return True

    def request(self, head: _Head, start: int, data: bytes) -> None:
        method = head.first_line.split(" ", 1)[0]
        self.requests.append(method)
        self.upgrade_asked = head.headers.get("upgrade", "").lower() == "websocket"
        self.record(
            "http",
            True,
            start,
            start + len(data),
            _head_summary(head),
            data,
            request_line=head.first_line,
            method=method,
            headers=head.headers,
        )
        self.start_body(True, head)

    def response(self, head: _Head, start: int, data: bytes) -> None:
        parts = head.first_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        method = self.requests.popleft() if self.requests and status >= 200 else ""
        if status == 101 and self.upgrade_asked:
            self.requests.clear()
        self.record(
            "http",
            False,
            start,
            start + len(data),
            _head_summary(head),
            data,
            status_line=head.first_line,
            status=status,
            headers=head.headers,
        )
        if status == 101:
            self.switch_to_websocket(head)
        elif method != "HEAD" and status >= 200 and status not in (204, 304):
            self.start_body(False, head)
            if head.headers.get("content-type", "").startswith("text/event-stream"):
                self.sse = EventStreamParser()
                self.sse_block, self.sse_data, self.sse_bytes = {}, [], bytearray()

    def start_body(self, up: bool, head: _Head) -> None:
        self.chunk_number[up] = 0
        if "chunked" in head.headers.get("transfer-encoding", "").lower():
            self.body[up] = "chunked"
        elif head.headers.get("content-length", "").isdigit():
            self.body_left[up] = int(head.headers["content-length"])
            self.body[up] = "length" if self.body_left[up] else "none"
        elif not up:  # a response with neither: the body runs until the server closes
            self.body[up] = "close"

    def body_part(self, up: bool) -> bool:
        stream = self.streams[up]
        if self.body[up] == "chunked":
            return self.chunk(up)
        if self.body[up] == "length":
            if len(stream.buffer) < self.body_left[up]:
                return False  # a fixed-length body: one record once it is all here
            data, start = stream.take(self.body_left[up])
            self.body[up] = "none"
        else:  # until the server closes: whatever has come
            data, start = stream.take(len(stream.buffer))
        if self.sse is not None and not up:
            self.event_stream(data, start)
            return True
        event = _app_event(data.decode("utf-8", "replace"))
        summary = f"body, {len(data)} bytes" + (f": {_describe(event)}" if event else "")
        self.record("http", up, start, start + len(data), summary, data, length=len(data), **event)
        return True

    def chunk(self, up: bool) -> bool:
        stream = self.streams[up]
        line_end = stream.buffer.find(b"\r\n")
        if line_end < 0:
            return False
        size_text = bytes(stream.buffer[:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            self.give_up(up)
            return False
        total = line_end + 2 + size + 2
        if len(stream.buffer) < total:
            return False
        data, start = stream.take(total)
        payload = data[line_end + 2 : line_end + 2 + size]
        if size == 0:
            self.body[up] = "none"
            self.record("http", up, start, start + total, "last chunk (0): end of body", data)
            if not up:
                self.sse = None
            return True
        self.chunk_number[up] += 1
        self.record(
            "http",
            up,
            start,
            start + total,
            f"chunk {self.chunk_number[up]}, {size} bytes",
            data,
            length=size,
        )
        if self.sse is not None and not up:
            self.event_stream(payload, start + line_end + 2)
        return True

    # ---- Server-Sent Events --------------------------------------------------------------

    def event_stream(self, payload: bytes, offset: int) -> None:
        """Feed the EventSource parser one line at a time, so an event's last byte (and so its
        segment) is known: lines end only at CR or LF, which never occur inside a UTF-8
        character, so a character cut between chunks is still joined by the parser."""
        assert self.sse is not None
        at = 0
        while at < len(payload):
            cut = min(
                (i for i in (payload.find(b"\n", at), payload.find(b"\r", at)) if i >= 0),
                default=len(payload) - 1,
            )
            piece = payload[at : cut + 1]
            if self.sse_start is None:
                self.sse_start = offset + at
            self.sse_bytes += piece
            for line in self.sse.feed(piece):
                if line.kind == "blank":
                    self.sse_event(offset + cut + 1)
                elif line.kind == "comment":
                    self.sse_block.setdefault("comments", []).append(line.value)
                elif line.name == "data":
                    self.sse_data.append(line.value)
                elif line.name in ("id", "event", "retry"):
                    self.sse_block[line.name] = line.value
            at = cut + 1

    def sse_event(self, end: int) -> None:
        start = self.sse_start if self.sse_start is not None else end
        block, data = self.sse_block, "\n".join(self.sse_data)
        raw = bytes(self.sse_bytes)
        self.sse_block, self.sse_data, self.sse_bytes, self.sse_start = {}, [], bytearray(), None
        if not block and not data:
            return  # a blank line alone (a CRLF's second half is joined by the parser)
        fields: dict[str, Any] = {k: v for k, v in block.items() if k != "comments"}
        if self.sse_data or data:
            fields["data"] = data
            fields.update(_app_event(data))
        parts = []
        if "id" in block:
            parts.append(f"id {block['id']}")
        if "event" in block:
            parts.append(f"event {block['event']}")
        if "retry" in block:
            parts.append(f"retry {block['retry']}")
        if _describe(fields):
            parts.append(_describe(fields))
        if not parts:
            parts.append("comment " + repr(":".join(block.get("comments", []))[:60]))
        self.record("sse", False, start, end, "SSE " + ", ".join(parts), raw, **fields)

    # ---- WebSocket -----------------------------------------------------------------------

    def switch_to_websocket(self, head: _Head) -> None:
        self.websocket = True
        extensions = head.headers.get("sec-websocket-extensions", "").lower()
        if "permessage-deflate" in extensions:
            self.inflaters[True] = _Inflater("client_no_context_takeover" not in extensions)
            self.inflaters[False] = _Inflater("server_no_context_takeover" not in extensions)
        self.run(True)  # anything the client sent early is frames, not HTTP

    def ws_frame(self, up: bool) -> bool:
        stream = self.streams[up]
        try:
            frame = decode(bytes(stream.buffer))
        except IncompleteFrame:
            return False
        data, start = stream.take(len(frame.raw))
        fields = self.ws_fields(up, frame)
        flags = ["FIN" if frame.fin else "no FIN"]
        if frame.rsv1:
            flags.append("RSV1")
        if frame.masked:
            flags.append("masked")
        summary = f"{frame.opcode_name} {' '.join(flags)}, {frame.length} bytes"
        if fields.get("close_code") is not None:
            code = fields["close_code"]
            summary += f": close {code} ({CLOSE_CODES.get(code, '?')}) {fields['reason']!r}"
        elif fields.get("note"):
            summary += f": {fields['note']}"
        elif _describe(fields):
            summary += f": {_describe(fields)}"
        elif fields.get("text"):
            summary += f": {fields['text'][:60]!r}"
        self.record("websocket", up, start, start + len(data), summary, data, **fields)
        return True

    def ws_fields(self, up: bool, frame: WireFrame) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "opcode": frame.opcode,
            "opcode_name": frame.opcode_name,
            "fin": frame.fin,
            "rsv1": frame.rsv1,
            "masked": frame.masked,
            "length": frame.length,
            "mask_key": frame.mask_key.hex() if frame.mask_key else None,
        }
        if frame.opcode == 0x8:
            fields["close_code"] = frame.close_code
            fields["reason"] = frame.close_reason or ""
            return fields
        if frame.opcode in (0x9, 0xA):
            fields["text"] = frame.payload.decode("utf-8", "replace")
            return fields
        if frame.opcode not in (0x0, 0x1, 0x2):
            return fields
        if frame.opcode != 0x0:  # a new message starts
            self.messages[up] = []
            self.message_compressed[up] = frame.rsv1
            self.message_opcode[up] = frame.opcode
        self.messages[up].append(frame.payload)
        if not frame.fin:
            return fields
        whole = b"".join(self.messages[up])
        self.messages[up] = []
        if self.message_compressed[up]:
            inflater = self.inflaters[up]
            if inflater is None:
                fields["note"] = f"compressed, {len(whole)} bytes"
                return fields
            try:
                whole = inflater.inflate(whole)
            except zlib.error as error:
                fields["note"] = f"compressed, {len(whole)} bytes (not inflated: {error})"
                return fields
            fields["inflated_length"] = len(whole)
        if self.message_opcode[up] == 0x1:
            text = whole.decode("utf-8", "replace")
            fields["text"] = text
            fields.update(_app_event(text))
        return fields


@dataclass(frozen=True)
class Conversation:
    """One relayed connection: its ``number`` (1, 2, … in the order the relay accepted them),
    the client's port, its segments and what :func:`dissect` made of them."""

    number: int
    client_port: int
    segments: tuple[Segment, ...]
    records: list[Record]

    @property
    def label(self) -> str:
        """``#2 :51234 GET /ws``: the number, the client's port and the first request line."""
        first = next((r for r in self.records if "request_line" in r.fields), None)
        line = str(first.fields["request_line"]).rsplit(" ", 1)[0] if first else ""
        if not first and self.records and self.records[0].kind == "quic":
            line = "QUIC over UDP"
        return f"#{self.number} :{self.client_port}" + (f" {line}" if line else "")

    def text(self, width: int = 110) -> str:
        """The records one a line: milliseconds since the first, ↑ (client to server) or ↓,
        the kind and the summary (cut at ``width`` characters)."""
        start = self.records[0].at if self.records else 0.0
        lines = [self.label]
        for r in self.records:
            summary = r.summary if len(r.summary) <= width else r.summary[: width - 1] + "…"
            arrow = "↑" if r.up else "↓"
            lines.append(f"{(r.at - start) * 1000:8.1f} ms {arrow} {r.kind:<9} {summary}")
        return "\n".join(lines)


def dissect(segments: Iterable[Segment], secrets: Secrets | None = None) -> list[Record]:
    """The records of one connection, from its segments in the order they were delivered.
    ``secrets``: a TLS key log (:func:`~transport_demo.lab.keylog.read_keylog`), to read what a
    TLS 1.3 connection carried; without it TLS stays ``undecoded``."""
    dissector = _Dissector(secrets)
    for index, segment in enumerate(segments):
        dissector.feed(index, segment)
    return dissector.records


def with_secrets(conversations: Iterable[Conversation], secrets: Secrets) -> list[Conversation]:
    """The same connections dissected again with a TLS key log: ``with_secrets(net.timeline(),
    read_keylog("lesson.keys"))``."""
    return [
        Conversation(c.number, c.client_port, c.segments, dissect(c.segments, secrets))
        for c in conversations
    ]


# ---- QUIC: what a datagram's headers say without keys (RFC 9000 §17) --------------------------

_LONG_TYPES = {0: "Initial", 1: "0-RTT", 2: "Handshake", 3: "Retry"}  # RFC 9000 §17.2, version 1
_QUIC_VERSIONS = {0x00000001: "v1", 0x6B3343CF: "v2", 0x00000000: "version negotiation"}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """A variable-length integer (RFC 9000 §16): its value and where the next field starts."""
    if at >= len(data):
        raise IndexError(at)
    size = 1 << (data[at] >> 6)
    if at + size > len(data):
        raise IndexError(at)
    value = data[at] & 0x3F
    for byte in data[at + 1 : at + size]:
        value = (value << 8) | byte
    return value, at + size


def _quic_packets(data: bytes, short_dcid: int) -> list[dict[str, Any]]:
    """The QUIC packets coalesced in one datagram (RFC 9000 §12.2), each as its header's
    readable fields. Header protection hides the packet number and the short header's low
    bits, and the payload is encrypted: what is left is the form, the long packet's type and
    version, the connection ids and the lengths. A short header (1-RTT) does not carry its
    DCID's length: ``short_dcid`` is the length the other side chose (its long headers' SCID)."""
    packets: list[dict[str, Any]] = []
    at = 0
    while at < len(data):
        first = data[at]
        if not first & 0x40:  # the fixed bit is 1 in every QUIC v1 packet (§17.2, §17.3.1)
            packets.append({"header": "padding", "length": len(data) - at})  # e.g. zeros
            break
        if not first & 0x80:  # short header: the rest of the datagram (§17.3.1)
            dcid = data[at + 1 : at + 1 + short_dcid]
            packets.append(
                {"header": "short", "type": "1-RTT", "dcid": dcid.hex(), "length": len(data) - at}
            )
            break
        try:
            version = int.from_bytes(data[at + 1 : at + 5], "big")
            dcid_length = data[at + 5]
            dcid = data[at + 6 : at + 6 + dcid_length]
            cursor = at + 6 + dcid_length
            scid_length = data[cursor]
            scid = data[cursor + 1 : cursor + 1 + scid_length]
            cursor += 1 + scid_length
        except IndexError:
            break
        kind = "Version Negotiation" if version == 0 else _LONG_TYPES[(first >> 4) & 0x3]
        if version == 0x6B3343CF:  # QUIC v2 reorders the types (RFC 9369 §3.2)
            kind = {0: "Retry", 1: "Initial", 2: "0-RTT", 3: "Handshake"}[(first >> 4) & 0x3]
        packet: dict[str, Any] = {
            "header": "long",
            "type": kind,
            "version": _QUIC_VERSIONS.get(version, f"{version:#010x}"),
            "dcid": dcid.hex(),
            "scid": scid.hex(),
        }
        if kind in ("Retry", "Version Negotiation"):  # no Length: the rest of the datagram
            packet["length"] = len(data) - at
            packets.append(packet)
            break
        try:
            if kind == "Initial":
                token, cursor = _varint(data, cursor)
                cursor += token
            length, cursor = _varint(data, cursor)
        except IndexError:
            break
        packet["length"] = cursor + length - at
        packets.append(packet)
        at = cursor + length
    return packets


def dissect_quic(datagrams: Iterable[Segment]) -> list[Record]:
    """One UDP flow's datagrams (``up``: client to server), each a record of kind ``quic``
    summarizing its QUIC packets' headers (RFC 9000 §17): ``QUIC Initial v1 + Handshake v1,
    DCID 8 bytes, 1200 bytes`` or ``QUIC 1-RTT (short header), DCID 8 bytes, 45 bytes``. Readable
    without keys; what the packets carry (streams, datagrams, ACKs) is encrypted."""
    records: list[Record] = []
    scid_length = {True: 0, False: 0}  # each side's chosen connection id length
    for index, datagram in enumerate(datagrams):
        packets = _quic_packets(datagram.data, scid_length[not datagram.up])
        for packet in packets:
            if packet["header"] == "long" and packet["type"] != "Version Negotiation":
                scid_length[datagram.up] = len(packet["scid"]) // 2
        names = " + ".join(
            f"{p['type']} {p['version']}"
            if p["header"] == "long"
            else "1-RTT (short header)"
            if p["header"] == "short"
            else f"{p['length']} bytes of padding"
            for p in packets
        )
        dcid = len(packets[0].get("dcid", "")) // 2 if packets else 0
        summary = f"QUIC {names or 'datagram, not QUIC'}"
        summary += f", DCID {dcid} bytes, {len(datagram.data)} bytes"
        fields: dict[str, Any] = {
            "packets": packets,
            "header": packets[0]["header"] if packets else None,
            "dcid_length": dcid,
            "length": len(datagram.data),
        }
        records.append(
            Record("quic", datagram.up, datagram.at, summary, datagram.data, (index,), fields)
        )
    return records
