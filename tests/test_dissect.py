"""The dissector on bytes alone (sans-I/O): HTTP/1.1, chunked bodies, Server-Sent Events and
WebSocket frames, including records whose bytes were cut across segments."""

from __future__ import annotations

import json
import zlib

from transport_demo.lab import ws_wire
from transport_demo.lab.dissect import Record, Segment, dissect

KEY = b"\x01\x02\x03\x04"

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
)


def _segments(*parts: tuple[bool, bytes]) -> list[Segment]:
    return [Segment(float(i), up, data) for i, (up, data) in enumerate(parts)]


def _kind(records: list[Record], kind: str) -> list[Record]:
    return [record for record in records if record.kind == kind]


def test_tcp_control_segments_are_named() -> None:
    records = dissect(
        [
            Segment(0.0, True, flags="S"),
            Segment(0.0, False, flags="SA"),
            Segment(0.0, True, flags="A"),
            Segment(1.0, False, flags="FA"),
            Segment(1.0, True, flags="RA"),
        ]
    )
    assert [r.summary for r in records] == ["SYN", "SYN-ACK", "ACK", "FIN", "RST"]
    assert {r.kind for r in records} == {"tcp"}
    assert [r.segments for r in records] == [(0,), (1,), (2,), (3,), (4,)]


def test_websocket_conversation_with_a_frame_split_across_segments() -> None:
    hello = ws_wire.encode(b'{"message": "hello"}', mask_key=KEY)
    echo = ws_wire.encode(json.dumps({"type": "user_message", "seq": 7, "message": "hi"}).encode())
    ping = ws_wire.encode(b"are you there?", 0x9, mask_key=KEY)
    pong = ws_wire.encode(b"are you there?", 0xA)
    close = ws_wire.encode(ws_wire.close_payload(1000, "bye"), 0x8, mask_key=KEY)
    records = dissect(
        _segments(
            (True, UPGRADE),
            (False, SWITCHED + b"\r\n"),
            (True, hello[:5]),  # the masking key is cut in two
            (True, hello[5:] + ping),
            (False, echo[:10]),
            (False, echo[10:] + pong),
            (True, close),
        )
    )
    http = _kind(records, "http")
    assert http[0].fields["request_line"] == "GET /ws HTTP/1.1"
    assert "upgrade: websocket" in http[0].summary
    assert http[1].fields["status"] == 101
    frames = _kind(records, "websocket")
    assert [(f.up, f.fields["opcode_name"]) for f in frames] == [
        (True, "text"),
        (True, "ping"),
        (False, "text"),
        (False, "pong"),
        (True, "close"),
    ]
    first = frames[0]
    assert first.segments == (2, 3) and first.at == 3.0  # complete with the second segment
    assert first.fields["masked"] and first.fields["fin"] and first.fields["length"] == 20
    assert first.fields["text"] == '{"message": "hello"}'
    assert first.data == hello
    assert "masked" in first.summary and '\'{"message": "hello"}\'' in first.summary
    assert frames[1].segments == (3,)
    assert frames[2].fields["type"] == "user_message" and frames[2].fields["seq"] == 7
    assert not frames[2].fields["masked"] and frames[2].segments == (4, 5)
    assert frames[2].summary.endswith("user_message seq 7")
    assert frames[3].fields["text"] == "are you there?"
    assert frames[4].fields["close_code"] == 1000 and frames[4].fields["reason"] == "bye"


def test_fragmented_message_is_read_at_its_last_frame() -> None:
    text = json.dumps({"type": "user_message", "seq": 2}).encode()
    parts = [
        ws_wire.encode(text[:5], 0x1, fin=False),
        ws_wire.encode(text[5:12], 0x0, fin=False),
        ws_wire.encode(text[12:], 0x0),
    ]
    records = dissect(_segments((True, UPGRADE), (False, SWITCHED + b"\r\n" + b"".join(parts))))
    frames = _kind(records, "websocket")
    assert [f.fields["opcode_name"] for f in frames] == ["text", "continuation", "continuation"]
    assert [f.fields["fin"] for f in frames] == [False, False, True]
    assert "seq" not in frames[0].fields and frames[2].fields["seq"] == 2


def test_permessage_deflate_with_context_takeover() -> None:
    compressor = zlib.compressobj(wbits=-10)
    frames = b""
    for seq in (1, 2):
        message = json.dumps({"type": "user_message", "seq": seq, "message": "hello hello"})
        data = compressor.compress(message.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
        frames += ws_wire.encode(data[:-4], rsv1=True)
    switched = SWITCHED + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    records = dissect(_segments((True, UPGRADE), (False, switched), (False, frames)))
    texts = _kind(records, "websocket")
    assert [f.fields["seq"] for f in texts] == [1, 2]
    assert all(f.fields["rsv1"] and "RSV1" in f.summary for f in texts)
    assert texts[1].fields["length"] < texts[0].fields["length"]  # the context helped


def test_compressed_without_negotiation_is_said() -> None:
    frame = ws_wire.encode(ws_wire.deflate(b'{"type": "x"}'), rsv1=True)
    records = dissect(_segments((True, UPGRADE), (False, SWITCHED + b"\r\n" + frame)))
    (only,) = _kind(records, "websocket")
    assert "compressed" in only.summary and "type" not in only.fields


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_event_stream_events_with_a_utf8_character_split() -> None:
    event = {"type": "message", "seq": 3, "message": "héllo"}
    body = (
        b"retry: 1000\n\n"
        + b"id: abc:3\ndata: "
        + json.dumps(event, ensure_ascii=False).encode()
        + b"\n\n"
    )
    cut = body.index("é".encode()) + 1  # between the two bytes of é
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    records = dissect(
        _segments(
            (True, b"GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"),
            (False, head + _chunk(body[:cut])[:-1]),  # the chunk's CRLF is cut too
            (False, _chunk(body[:cut])[-1:] + _chunk(body[cut:])),
            (False, _chunk(b": comment\r\nevent: notice\r\ndata: a\r\ndata: b\r\n\r\n")),
            (False, b"0\r\n\r\n"),
        )
    )
    events = _kind(records, "sse")
    assert [e.summary for e in events] == [
        "SSE retry 1000",
        "SSE id abc:3, message seq 3",
        "SSE event notice",
    ]
    second = events[1]
    assert second.fields["id"] == "abc:3" and second.fields["seq"] == 3
    assert "héllo" in second.fields["data"]
    assert second.segments == (1, 2) and second.at == 2.0
    assert second.data.startswith(b"id: abc:3") and "héllo".encode() in second.data
    assert events[2].fields["data"] == "a\nb"
    chunks = [r.summary for r in _kind(records, "http") if not r.up]
    assert chunks[1:] == [
        f"chunk 1, {cut} bytes",
        f"chunk 2, {len(body) - cut} bytes",
        "chunk 3, 46 bytes",
        "last chunk (0): end of body",
    ]


def test_requests_with_bodies_and_answers_without() -> None:
    poll = json.dumps({"events": [{"seq": 4}, {"seq": 5}]}).encode()
    records = dissect(
        _segments(
            (True, b'POST /poll HTTP/1.1\r\nContent-Length: 14\r\n\r\n{"last_seq": '),
            (True, b"3"),
            (False, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(poll) + poll),
            (True, b"HEAD /x HTTP/1.1\r\n\r\nDELETE /y HTTP/1.1\r\n\r\n"),
            (False, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),  # HEAD: no body follows
            (False, b"HTTP/1.1 204 No Content\r\n\r\n"),
        )
    )
    summaries = [(r.up, r.summary) for r in _kind(records, "http")]
    assert summaries == [
        (True, "POST /poll HTTP/1.1 — content-length: 14"),
        (True, "body, 14 bytes"),
        (False, f"HTTP/1.1 200 OK — content-length: {len(poll)}"),
        (False, f"body, {len(poll)} bytes: seq 4, 5"),
        (True, "HEAD /x HTTP/1.1"),
        (True, "DELETE /y HTTP/1.1"),
        (False, "HTTP/1.1 200 OK — content-length: 99"),
        (False, "HTTP/1.1 204 No Content"),
    ]
    body = _kind(records, "http")[1]
    assert body.segments == (0, 1) and body.data == b'{"last_seq": 3'


def test_bytes_it_cannot_read_end_that_direction() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    records = dissect(_segments((True, b"GET / HTTP/1.1\r\n\r\n"), (False, head + b"zz\r\nxx")))
    assert records[-1].summary == "undecoded: 6 bytes" and records[-1].kind == "tcp"
    tls = dissect(_segments((True, b"\x16\x03\x01\x02\x00"), (True, b"\x01\x00"), (False, b"x")))
    assert [(r.up, r.summary, r.segments) for r in tls] == [
        (True, "undecoded: 5 bytes", (0,)),
        (True, "undecoded: 2 bytes", (1,)),
        (False, "undecoded: 1 bytes", (2,)),
    ]
