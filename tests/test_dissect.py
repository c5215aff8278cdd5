"""The dissector on bytes alone (sans-I/O): HTTP/1.1, chunked bodies, Server-Sent Events and
WebSocket frames, including records whose bytes were cut across segments."""

from __future__ import annotations

import json
import zlib

from transport_demo.lab import ws_wire
from transport_demo.lab.dissect import Record, Segment, dissect, dissect_quic

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


def _h2_conversation() -> list[Segment]:
    """A cleartext HTTP/2 exchange made by the h2 library on both sides (sans-I/O): a POST with
    a JSON body and its answer, as segments (the server's SETTINGS before the client's preface
    has been read, as a server may send it)."""
    import h2.config
    import h2.connection

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )
    server.initiate_connection()
    segments = [Segment(0.0, False, server.data_to_send())]
    client.initiate_connection()
    headers = [(":method", "POST"), (":path", "/poll"), (":scheme", "http")]
    client.send_headers(1, [*headers, (":authority", "127.0.0.1")])
    client.send_data(1, b'{"last_seq": 0}', end_stream=True)
    up = client.data_to_send()
    segments += [Segment(1.0, True, up[:30]), Segment(1.5, True, up[30:])]  # the preface cut
    server.receive_data(up)
    server.send_headers(1, [(":status", "200"), ("content-type", "application/json")])
    body = json.dumps({"events": [{"type": "message", "seq": 3}, {"type": "message", "seq": 4}]})
    server.send_data(1, body.encode(), end_stream=True)
    server.close_connection()
    segments.append(Segment(2.0, False, server.data_to_send()))
    return segments


def test_http2_in_the_clear_is_read_frame_by_frame() -> None:
    records = dissect(_h2_conversation())
    assert {r.kind for r in records} == {"http2"}
    summaries = [(r.up, r.summary.split(",")[0]) for r in records]
    assert summaries == [
        (False, "SETTINGS stream 0"),
        (True, "HTTP/2 preface"),
        (True, "SETTINGS stream 0"),
        (True, "HEADERS stream 1 END_HEADERS"),
        (True, "DATA stream 1 END_STREAM"),
        (False, "SETTINGS stream 0 ACK"),
        (False, "HEADERS stream 1 END_HEADERS"),
        (False, "DATA stream 1 END_STREAM"),
        (False, "GOAWAY stream 0"),
    ]
    server_settings, preface, _, request, body, _, status, answer, goaway = records
    assert server_settings.fields["settings"]["MAX_CONCURRENT_STREAMS"] == 100
    assert preface.segments == (1,) and request.segments == (2,)  # the cut preface, whole
    assert request.fields["request_line"] == "POST /poll HTTP/2"
    assert request.summary.endswith(": :method POST; :path /poll")
    assert body.fields["text"] == '{"last_seq": 0}' and body.fields["length"] == 15
    assert status.fields["status"] == 200 and status.fields["stream_id"] == 1
    assert answer.fields["seqs"] == [3, 4] and answer.summary.endswith(": seq 3, 4")
    assert goaway.fields["error"] == "NO_ERROR" and goaway.fields["last_stream_id"] == 1
    # each record's bytes are one frame: a 9-byte header whose length field counts the rest
    for record in records[2:]:
        assert int.from_bytes(record.data[:3], "big") == len(record.data) - 9


def test_hpack_tables_carry_over_between_requests() -> None:
    """The second request's HEADERS is a few bytes of indexes into the table the first built;
    decoded in order, it names the same method and path (RFC 7541 §2.3.2)."""
    import h2.config
    import h2.connection

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    headers = [(":method", "POST"), (":path", "/poll"), (":scheme", "http")]
    for stream_id in (1, 3):
        client.send_headers(
            stream_id, [*headers, (":authority", "127.0.0.1:8000")], end_stream=True
        )
    requests = [
        r for r in dissect([Segment(0.0, True, client.data_to_send())]) if "method" in r.fields
    ]
    assert [r.fields["request_line"] for r in requests] == ["POST /poll HTTP/2"] * 2
    assert [r.fields["stream_id"] for r in requests] == [1, 3]
    assert requests[1].fields["length"] < requests[0].fields["length"] // 2


def test_tls_with_secrets_for_another_session_stays_encrypted() -> None:
    """A key log that does not name this session's ClientHello random: the hellos are read,
    the encrypted records are named as such, never guessed at."""

    def record(content_type: int, body: bytes) -> bytes:
        return bytes([content_type, 3, 3]) + len(body).to_bytes(2, "big") + body

    hello = record(22, b"\x01\x00\x00\x26\x03\x03" + bytes(range(32)) + b"\x00\x00")
    server_hello = record(22, b"\x02\x00\x00\x26\x03\x03" + bytes(32) + b"\x00\x13\x01")
    encrypted = record(23, bytes(32))
    records = dissect(
        _segments((True, hello), (False, server_hello + encrypted)),
        secrets={bytes(32): {"SERVER_TRAFFIC_SECRET_0": bytes(32)}},
    )
    assert [(r.kind, r.summary) for r in records] == [
        ("tls", "TLS Handshake: ClientHello"),
        ("tls", "TLS Handshake: ServerHello"),
        ("tls", "TLS encrypted record, 32 bytes (no key)"),
    ]


def test_a_long_polls_answer_names_the_seqs_it_carries() -> None:
    """The server's batch (``"messages"``, docs/protocol.md) shows each message's seq."""
    body = json.dumps({"type": "message", "messages": [{"type": "message", "seq": 1}]}).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    request = b"POST /poll HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\n{}"
    records = dissect(_segments((True, request), (False, head % len(body) + body)))
    assert records[-1].summary == f"body, {len(body)} bytes: message seq 1"
    assert records[-1].fields["seqs"] == [1]


def test_quic_headers_are_read_without_keys() -> None:
    """RFC 9000 §17: a client's Initial padded with zeros, a server's coalesced Initial and
    Handshake, then 1-RTT packets whose DCID length comes from the other side's SCID."""

    def long(kind: int, dcid: bytes, scid: bytes, body: bytes, token: bool = False) -> bytes:
        head = bytes([0xC0 | kind << 4]) + (1).to_bytes(4, "big")
        head += bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
        head += b"\x00" if token else b""  # an Initial's token length: none
        return head + bytes([0x40 | len(body) >> 8, len(body) & 0xFF]) + body  # 2-byte varint

    client, server = b"\xaa" * 8, b"\xbb" * 5
    hello = long(0, b"\x01" * 8, client, b"\x11" * 300, token=True)
    records = dissect_quic(
        [
            Segment(0.0, True, hello + bytes(1200 - len(hello))),
            Segment(
                0.1,
                False,
                long(0, client, server, b"\x22" * 90, True)
                + long(2, client, server, b"\x33" * 400),
            ),
            Segment(0.2, True, b"\x41" + server + b"\x44" * 30),
            Segment(0.3, False, b"\x5f" + client + b"\x55" * 20),
        ]
    )
    assert [r.summary for r in records] == [
        f"QUIC Initial v1 + {1200 - len(hello)} bytes of padding, DCID 8 bytes, 1200 bytes",
        f"QUIC Initial v1 + Handshake v1, DCID 8 bytes, {len(records[1].data)} bytes",
        "QUIC 1-RTT (short header), DCID 5 bytes, 36 bytes",
        "QUIC 1-RTT (short header), DCID 8 bytes, 29 bytes",
    ]
    assert records[1].fields["packets"][1]["scid"] == server.hex()
    assert records[2].fields["packets"][0]["dcid"] == server.hex()
    assert {r.kind for r in records} == {"quic"} and [r.segments for r in records] == [
        (0,),
        (1,),
        (2,),
        (3,),
    ]
