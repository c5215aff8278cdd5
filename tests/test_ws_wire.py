"""The teaching frame decoder (transport_demo.lab.ws_wire): RFC 6455 §5.7's examples byte for byte,
agreement with the ``websockets`` library's own parser, and frames captured from the real server
(uvicorn on 127.0.0.1) both ways: masking, the three length forms, fragmentation, ping/pong, the
closing handshake, permessage-deflate, and the close codes a client library reports."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame
from websockets.streams import StreamReader
from websockets.sync.client import connect

from transport_demo import RunningServer
from transport_demo.lab.ws_wire import (
    CLIENT,
    SERVER,
    CuttablePath,
    IncompleteFrame,
    RawWebSocket,
    WireFrame,
    accept_key,
    close_payload,
    close_seen,
    decode,
    decode_all,
    deflate,
    encode,
    mask,
)

HELLO_KEY = bytes.fromhex("37fa213d")


def maintained_parse(
    data: bytes, *, masked: bool, extensions: Sequence[Extension] = ()
) -> list[Frame]:
    """Every frame in ``data`` as the ``websockets`` library parses it."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=masked, extensions=list(extensions))
        with pytest.raises(StopIteration) as done:
            next(parser)
        frames.append(done.value.value)
    return frames


def agrees(ours: WireFrame, theirs: Frame) -> None:
    assert ours.fin == theirs.fin
    assert (ours.rsv1, ours.rsv2, ours.rsv3) == (theirs.rsv1, theirs.rsv2, theirs.rsv3)
    assert ours.opcode == theirs.opcode.value
    assert ours.payload == theirs.data


# -- RFC 6455 §5.7, every example -----------------------------------------------------------------


def test_rfc_single_frame_unmasked_text() -> None:
    raw = bytes.fromhex("810548656c6c6f")
    frame = decode(raw)
    assert (frame.fin, frame.opcode_name, frame.masked, frame.length) == (True, "text", False, 5)
    assert (frame.length_form, frame.mask_key, frame.payload) == ("7-bit", None, b"Hello")
    assert frame.header == bytes.fromhex("8105")
    assert encode(b"Hello") == raw


def test_rfc_single_frame_masked_text() -> None:
    raw = bytes.fromhex("818537fa213d7f9f4d5158")
    frame = decode(raw)
    assert (frame.fin, frame.opcode, frame.masked, frame.length) == (True, 0x1, True, 5)
    assert frame.mask_key == HELLO_KEY
    assert frame.payload_on_wire == bytes.fromhex("7f9f4d5158")
    assert frame.payload == b"Hello"
    assert encode(b"Hello", mask_key=HELLO_KEY) == raw
    assert mask(frame.payload_on_wire, HELLO_KEY) == b"Hello"  # XOR undoes itself


def test_rfc_fragmented_unmasked_text() -> None:
    raw = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
    first, last = decode_all(raw)
    assert (first.fin, first.opcode_name, first.payload) == (False, "text", b"Hel")
    assert (last.fin, last.opcode_name, last.payload) == (True, "continuation", b"lo")
    assert encode(b"Hel", fin=False) + encode(b"lo", 0x0) == raw


def test_rfc_unmasked_ping_and_masked_pong() -> None:
    ping = decode(bytes.fromhex("890548656c6c6f"))
    pong = decode(bytes.fromhex("8a8537fa213d7f9f4d5158"))
    assert (ping.opcode_name, ping.masked, ping.payload) == ("ping", False, b"Hello")
    assert (pong.opcode_name, pong.masked, pong.payload) == ("pong", True, b"Hello")
    assert encode(b"Hello", 0x9) == ping.raw
    assert encode(b"Hello", 0xA, mask_key=HELLO_KEY) == pong.raw


def test_rfc_256_bytes_binary_uses_the_16_bit_length() -> None:
    payload = bytes(range(256))
    raw = bytes.fromhex("827e0100") + payload
    frame = decode(raw)
    assert (frame.opcode_name, frame.length, frame.length_form) == ("binary", 256, "16-bit")
    assert frame.header == bytes.fromhex("827e0100") and frame.payload == payload
    assert encode(payload, 0x2) == raw


def test_rfc_64_kib_binary_uses_the_64_bit_length() -> None:
    payload = bytes(range(256)) * 256  # 65,536 bytes: one more than 16 bits can say
    raw = bytes.fromhex("827f0000000000010000") + payload
    frame = decode(raw)
    assert (frame.opcode_name, frame.length, frame.length_form) == ("binary", 65536, "64-bit")
    assert frame.payload == payload
    assert encode(payload, 0x2) == raw


def test_length_form_boundaries() -> None:
    for size, form in [(0, "7-bit"), (125, "7-bit"), (126, "16-bit"), (65535, "16-bit")]:
        assert decode(encode(b"x" * size)).length_form == form


def test_incomplete_frames_ask_for_more() -> None:
    raw = encode(b"Hello", mask_key=HELLO_KEY)
    for cut in range(len(raw)):
        with pytest.raises(IncompleteFrame):
            decode(raw[:cut])
    with pytest.raises(IncompleteFrame) as incomplete:
        decode(raw[:-1])
    assert incomplete.value.needed == len(raw)
    assert decode(raw + b"next frame").raw == raw  # bytes after the frame are not its own


def test_close_frame_code_and_reason() -> None:
    frame = decode(encode(close_payload(1001, "server shutting down"), 0x8))
    assert (frame.close_code, frame.close_reason) == (1001, "server shutting down")
    assert "close code 1001 (going away)" in frame.explain()
    assert decode(encode(b"", 0x8)).close_code is None  # a close without a code (1005 to a peer)


def test_accept_key_from_the_rfc() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_explain_names_every_field() -> None:
    text = decode(bytes.fromhex("818537fa213d7f9f4d5158")).explain()
    for field in ("FIN", "RSV1", "RSV2-3", "opcode", "MASK", "length", "masking key", "unmasked"):
        assert field in text
    assert "'Hello'" in text


# -- The same as the websockets library -----------------------------------------------------------

CONTROL = st.sampled_from([0x8, 0x9, 0xA])
DATA = st.sampled_from([0x0, 0x1, 0x2])
SIZES = st.one_of(st.integers(0, 300), st.sampled_from([65535, 65536, 70000]))


@given(
    opcode=st.one_of(DATA, CONTROL),
    size=SIZES,
    fin=st.booleans(),
    key=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    seed=st.binary(min_size=1, max_size=64),
)
def test_agrees_with_websockets_both_ways(
    opcode: int, size: int, fin: bool, key: bytes | None, seed: bytes
) -> None:
    if opcode >= 0x8:  # control frames: ≤ 125 bytes, never fragmented (§5.5)
        size, fin = min(size, 125), True
    payload = (seed * (size // len(seed) + 1))[:size]
    ours = encode(payload, opcode, fin=fin, mask_key=key)
    (theirs,) = maintained_parse(ours, masked=key is not None)
    agrees(decode(ours), theirs)
    # ... and what websockets writes, we read.
    written = Frame(theirs.opcode, payload, fin).serialize(mask=key is not None, extensions=[])
    frame = decode(written)
    agrees(frame, theirs)
    assert frame.masked == (key is not None)


def test_our_deflate_is_what_websockets_inflates() -> None:
    message = json.dumps({"message": "hello " * 50}).encode()
    compressed = deflate(message, 12)
    assert len(compressed) < len(message) / 4
    extension = PerMessageDeflate(False, False, 12, 12)
    inflated = extension.decode(decode_frame_as_websockets(encode(compressed, rsv1=True)))
    assert inflated.data == message and not inflated.rsv1


def decode_frame_as_websockets(raw: bytes) -> Frame:
    # Parse without extensions, with RSV1 put back by hand (parse rejects a set RSV1 otherwise).
    (frame,) = maintained_parse(bytes([raw[0] & ~0x40]) + raw[1:], masked=False)
    return Frame(frame.opcode, frame.data, frame.fin, rsv1=bool(raw[0] & 0x40))


# -- Frames captured from the real server ---------------------------------------------------------


def server_bytes(raw: RawWebSocket) -> bytes:
    return b"".join(c.frame.raw for c in raw.frames if c.direction == SERVER)


def client_bytes(raw: RawWebSocket) -> bytes:
    return b"".join(c.frame.raw for c in raw.frames if c.direction == CLIENT)


def check_against_websockets(raw: RawWebSocket, extensions: Sequence[Extension] = ()) -> None:
    """Every frame captured both ways decodes as the websockets library decodes it."""
    server_side = [c for c in raw.frames if c.direction == SERVER]
    theirs = maintained_parse(server_bytes(raw), masked=False, extensions=extensions)
    assert len(theirs) == len(server_side) > 0
    for capture, frame in zip(server_side, theirs, strict=True):
        assert not capture.frame.masked and capture.frame.mask_key is None
        assert capture.frame.fin == frame.fin and capture.frame.opcode == frame.opcode.value
        if capture.data is not None:  # a whole message: its (inflated) bytes
            assert capture.data == frame.data
    client_side = [c for c in raw.frames if c.direction == CLIENT]
    for capture in client_side:
        assert capture.frame.masked and capture.frame.mask_key is not None
        if not capture.frame.rsv1:
            (frame,) = maintained_parse(capture.frame.raw, masked=True)
            agrees(capture.frame, frame)


@pytest.fixture
def raw(server: RunningServer) -> Iterator[Callable[..., RawWebSocket]]:
    opened: list[RawWebSocket] = []

    def open_raw(**options: object) -> RawWebSocket:
        ws = RawWebSocket(server.url, **options)  # type: ignore[arg-type]
        opened.append(ws)
        return ws

    yield open_raw
    for ws in opened:
        ws.close()


def test_real_handshake_and_first_server_frame(raw: Callable[..., RawWebSocket]) -> None:
    ws = raw()
    assert ws.status == 101 and ws.accept_is_right
    assert "sec-websocket-extensions" not in ws.headers  # nothing offered, nothing accepted
    first = ws.read()
    assert first.frame.opcode_name == "text" and first.frame.fin and not first.frame.masked
    assert json.loads(first.text or "")["type"] == "connected"
    assert first.frame.length_form == "16-bit"  # the connected event is over 125 bytes
    check_against_websockets(ws)


def test_real_masked_client_frame_and_its_echo(raw: Callable[..., RawWebSocket]) -> None:
    ws = raw()
    sent = ws.send_text('{"message": "hello"}')
    assert sent.frame.masked and sent.frame.payload_on_wire != sent.frame.payload
    assert sent.frame.payload == b'{"message": "hello"}'
    echo = ws.read_text('"hello"')
    assert json.loads(echo.text or "")["type"] == "user_message"
    check_against_websockets(ws)


def test_real_length_forms_both_ways(raw: Callable[..., RawWebSocket]) -> None:
    ws = raw()
    big = ws.send_text('{"message": "' + "x" * 65_500 + '"}')
    assert big.frame.length_form == "16-bit"
    assert ws.read_text("x" * 65_500).frame.length_form == "64-bit"
    padded = ws.send_text('{"message": "padded"}' + " " * 70_000)  # JSON allows the spaces
    assert padded.frame.length_form == "64-bit" and padded.frame.length > 65_535
    assert ws.read_text('"padded"').frame.length_form == "16-bit"
    check_against_websockets(ws)


def test_real_fragmented_message_is_one_message(raw: Callable[..., RawWebSocket]) -> None:
    ws = raw()
    frames = ws.send_fragmented('{"message": "in three frames"}', parts=3)
    assert [(c.frame.opcode_name, c.frame.fin) for c in frames] == [
        ("text", False),
        ("continuation", False),
        ("continuation", True),
    ]
    echo = ws.read_text("in three frames")
    assert echo.frame.fin and echo.frame.opcode_name == "text"  # one frame back
    assert json.loads(echo.text or "")["message"] == "in three frames"
    check_against_websockets(ws)


def test_real_ping_gets_a_pong_with_the_same_bytes(raw: Callable[..., RawWebSocket]) -> None:
    ws = raw()
    ping = ws.ping(b"are you there?")
    pong = ws.read_opcode(0xA)
    assert ping.frame.masked and not pong.frame.masked
    assert pong.frame.payload == b"are you there?"
    check_against_websockets(ws)


def test_real_closing_handshake(raw: Callable[..., RawWebSocket]) -> None:
    ws = raw()
    ws.send_close(1000, "bye")
    answer = ws.read_opcode(0x8)
    assert (answer.frame.close_code, answer.frame.close_reason) == (1000, "bye")
    assert answer.frame.raw == bytes.fromhex("880503e8") + b"bye"
    check_against_websockets(ws)


def test_real_permessage_deflate(raw: Callable[..., RawWebSocket]) -> None:
    ws = raw(compress=True)
    assert "permessage-deflate" in ws.request
    assert ws.compressed and "permessage-deflate" in ws.headers["sec-websocket-extensions"]
    text = '{"message": "hello hello hello hello"}'
    compressed = ws.send_text(text, compress=True)
    first = ws.read_text("hello hello")
    plain = ws.send_text(text, compress=False)  # allowed: RSV1 is chosen message by message
    second = ws.read_text("hello hello")
    assert compressed.frame.rsv1 and not plain.frame.rsv1
    assert compressed.frame.length < plain.frame.length == len(text)
    assert first.frame.rsv1 and second.frame.rsv1
    assert second.frame.length < first.frame.length < len(first.data or b"")  # context kept
    assert json.loads(second.text or "")["seq"] == 2
    bits = 12 if "=12" in ws.headers["sec-websocket-extensions"] else 15
    check_against_websockets(ws, [PerMessageDeflate(False, False, bits, bits)])


def test_no_compression_when_the_server_does_not_offer_it(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(ws_compression=False)
    with RawWebSocket(server.url, compress=True) as ws:
        assert not ws.compressed and "sec-websocket-extensions" not in ws.headers
        with pytest.raises(ValueError, match="not agreed"):
            ws.send_text("{}", compress=True)
        assert not ws.read().frame.rsv1


# -- Close codes as a third-party client sees them ------------------------------------------------


def test_a_message_over_the_limit_gets_1009(server: RunningServer) -> None:
    limit = server.settings.max_envelope_bytes
    with connect(server.ws_url + "/ws", max_size=None) as ws:
        ws.recv()
        ws.send('{"message": "' + "x" * (limit + 1) + '"}')
        seen = close_seen(ws)
    assert seen.code == 1009 and seen.close_frame_received
    assert "came from the server" in repr(seen)


def test_a_cut_is_1006_and_no_close_frame(server: RunningServer) -> None:
    path = CuttablePath(server.url)
    try:
        with connect(path.ws_url + "/ws") as ws:
            assert json.loads(ws.recv(5))["type"] == "connected"
            path.cut()
            seen = close_seen(ws)
    finally:
        path.close()
    assert seen.code == 1006 and not seen.close_frame_received
    assert "no close frame arrived" in repr(seen)


def test_the_path_passes_a_normal_close_through(server: RunningServer) -> None:
    path = CuttablePath(server.url)
    try:
        with connect(path.ws_url + "/ws") as ws:
            ws.recv(5)
            ws.close(1000, "done")
            assert ws.close_code == 1000
    finally:
        path.close()


def test_a_refused_handshake_is_an_http_answer(server: RunningServer) -> None:
    with RawWebSocket(server.url, origin="http://evil.example") as ws:
        assert ws.status == 403 and "403 Forbidden" in ws.handshake()
        assert not ws.accept_is_right
        with pytest.raises(ConnectionError):
            ws.read(1)


def test_shown_leaves_out_heartbeats(raw: Callable[..., RawWebSocket]) -> None:
    ws = raw()
    ws.read_text('"heartbeat"')  # FAST servers beat every 0.2 s
    ws.ping(b"x")
    ws.read_opcode(0xA)
    assert any('"type":"heartbeat"' in (c.text or "") for c in ws.frames)
    assert not any('"type":"heartbeat"' in (c.text or "") for c in ws.shown())
    assert [c.frame.opcode_name for c in ws.shown()] == ["text", "ping", "pong"]


def test_the_raw_client_answers_the_servers_pings() -> None:
    """uvicorn pings every 20 s; a stand-in server pings at once, and a pong must come back."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answered: list[WireFrame] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", request)
            assert key is not None
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept_key(key.group(1).decode())}\r\n\r\n".encode()
                + encode(b"keepalive", 0x9)
            )
            data = b""
            while True:
                try:
                    answered.append(decode(data))
                    return
                except IncompleteFrame:
                    data += conn.recv(4096)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with RawWebSocket(f"http://127.0.0.1:{port}") as ws:
        assert ws.accept_is_right
        assert ws.read().frame.opcode_name == "ping"
        thread.join(5)
    listener.close()
    (pong,) = answered
    assert (pong.opcode_name, pong.masked, pong.payload) == ("pong", True, b"keepalive")
    assert [c.frame.opcode_name for c in ws.frames] == ["ping", "pong"]
