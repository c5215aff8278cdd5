"""The packet lens's timeline on a real server and relay: net.timeline() and the widget's Python
side (its traits, its filters, the download)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from transport_demo import start_server
from transport_demo.clients import WebTransportClient
from transport_demo.lab import h2_wire, ws_wire
from transport_demo.lab.capture_file import udp_conversations
from transport_demo.lab.dissect import Conversation, Record, Segment, with_secrets
from transport_demo.lab.keylog import read_keylog
from transport_demo.lab.network import Network, network
from transport_demo.server import launcher as server_module
from transport_demo.server.launcher import RunningServer
from transport_demo.widgets.timeline import TimelineWidget, hex_dump


@pytest.fixture
def server() -> Iterator[RunningServer]:
    running = start_server(port=0, heartbeat_interval=0.5, poll_timeout=1, resume_grace=10)
    yield running
    server_module.stop_all()


@pytest.fixture
def lesson(server: RunningServer, tmp_path: Path) -> Iterator[tuple[Network, list[int]]]:
    """A WebSocket conversation and an SSE stream through a capturing relay; the seqs the
    WebSocket client saw."""
    with network(server, capture=tmp_path / "lesson.pcapng") as net:
        seen = []
        with ws_wire.RawWebSocket(net.url, origin="http://localhost:8888") as raw:
            raw.handshake()
            for text in ("one", "two", "three"):
                raw.send_text(json.dumps({"message": text}))
                echo = raw.read_text(f'"{text}"')
                assert echo.text is not None
                seen.append(json.loads(echo.text)["seq"])
            raw.ping(b"hi")
            raw.read_opcode(0xA)
            raw.send_close(1000, "bye")
            raw.read_opcode(0x8)
        with httpx.stream("GET", net.url + "/sse", timeout=5) as response:
            for line in response.iter_lines():
                if line.startswith("data:") and json.loads(line[5:])["type"] == "heartbeat":
                    break
        assert net.wait_idle()
        yield net, seen


def test_the_timeline_has_the_conversation_in_order(lesson: tuple[Network, list[int]]) -> None:
    net, seen = lesson
    ws, sse = net.timeline()
    assert ws.label.startswith("#1 :") and ws.label.endswith("GET /ws")
    assert sse.number == 2 and sse.label.endswith("GET /sse")
    kinds = [r.kind for r in ws.records]
    assert kinds[:3] == ["tcp"] * 3  # the handshake the relay synthesized
    frames = [r for r in ws.records if r.kind == "websocket"]
    echoes = [r.fields["seq"] for r in frames if r.fields.get("type") == "user_message"]
    assert echoes == seen == sorted(seen)
    assert all(r.fields["masked"] for r in frames if r.up)
    assert not any(r.fields["masked"] for r in frames if not r.up)
    names = [r.fields["opcode_name"] for r in frames]
    assert "ping" in names and "pong" in names and names.count("close") == 2
    times = [r.at for r in ws.records]
    assert times == sorted(times)
    assert sum(len(s.data) for s in ws.segments if s.up) == sum(
        len(r.data) for r in ws.records if r.up
    )
    events = [r for r in sse.records if r.kind == "sse"]
    assert any(r.fields.get("type") == "connected" for r in events)
    assert any(r.fields.get("type") == "heartbeat" for r in events)
    assert net.capture is not None and not net.capture.truncated


def test_each_connections_bytes_add_up_to_the_relays_counters(
    lesson: tuple[Network, list[int]],
) -> None:
    """What the capture kept of each connection, both ways, is every byte the relay carried."""
    net, _ = lesson
    conversations = net.timeline()
    for up, counted in ((True, net.bytes_up), (False, net.bytes_down)):
        kept = [sum(len(s.data) for s in c.segments if s.up == up) for c in conversations]
        assert all(kept) and sum(kept) == counted


def test_http2_frames_inside_tls_read_with_the_clients_key_log(tmp_path: Path) -> None:
    """An HTTP/2 connection to the https server through the relay: without the secrets its
    bytes are undecoded; with the key log the client wrote, the TLS handshake's messages and
    every HTTP/2 frame, with their streams, methods, statuses and the app's events."""
    tls = start_server(port=0, https=True, heartbeat_interval=0.5, poll_timeout=1)
    keys = tmp_path / "lesson.keys"
    context = tls.ssl_context()
    context.keylog_filename = str(keys)
    with network(tls, capture=tmp_path / "h2.pcapng") as net:
        exchange = h2_wire.h2_exchange(
            net.url, [("POST", "/poll", None), ("GET", "/stats", None)], verify=context
        )
        assert net.wait_idle()
    assert exchange.alpn == "h2"
    (plain,) = net.timeline()
    assert {r.kind for r in plain.records} == {"tcp"}  # no secrets: nothing read inside TLS
    (conversation,) = with_secrets(net.timeline(), read_keylog(keys))
    tls_names = [r.summary for r in conversation.records if r.kind == "tls"]
    assert tls_names[:3] == [
        "TLS Handshake: ClientHello",
        "TLS Handshake: ServerHello",
        "TLS Handshake: EncryptedExtensions",
    ]
    assert "TLS Alert 0 (close_notify)" in tls_names
    frames = [r for r in conversation.records if r.kind == "http2"]
    # the server's SETTINGS may cross the client's preface (hypercorn sends it at once)
    assert next(r.summary for r in frames if r.up) == "HTTP/2 preface"
    requests = [
        (r.fields["stream_id"], r.fields["request_line"])
        for r in frames
        if r.up and "method" in r.fields
    ]
    assert requests == [(1, "POST /poll HTTP/2"), (3, "GET /stats HTTP/2")]
    assert conversation.label.endswith("POST /poll")
    statuses = [(r.fields["stream_id"], r.fields["status"]) for r in frames if "status" in r.fields]
    assert statuses == [(1, 200), (3, 200)]
    connected = next(r for r in frames if r.fields.get("type") == "connected")
    assert connected.fields["stream_id"] == 1 and connected.fields["frame_type"] == "DATA"
    assert (
        json.loads(connected.fields["text"])["connection_id"]
        == exchange.answers[0]["body"]["connection_id"]
    )
    settings = next(r for r in frames if not r.up and r.fields.get("settings"))
    assert settings.fields["settings"]["MAX_CONCURRENT_STREAMS"] == 100
    assert frames[-1].fields["frame_type"] == "GOAWAY" and frames[-1].up
    # the frames name the segment that ended their TLS record, in time order
    assert all(len(r.segments) == 1 for r in frames)
    assert [r.at for r in conversation.records] == sorted(r.at for r in conversation.records)
    widget = TimelineWidget(net, keylog=keys)
    assert {m["kind"] for m in widget.shown()} == {"tcp", "tls", "http2"}
    widget.kinds = ["http2"]
    assert any("HEADERS stream 3" in m["summary"] for m in widget.shown())


def test_quic_packets_of_a_webtransport_session_through_the_relay(
    server: RunningServer, tmp_path: Path
) -> None:
    """A WebTransportClient through the relay's UDP half: its datagrams read back from the file,
    the handshake's long headers (Initial, Handshake; version 1; the connection ids each side
    chose) and then 1-RTT short headers whose DCID is the other side's SCID; the widget lists
    the flow after the TCP connections."""

    async def session(url: str) -> None:
        client = WebTransportClient(url)
        await client.start()
        try:
            cid = await client.wait_connected(10)
            server.hub.publish(cid, "over QUIC")
            while (await client.next_event(5)).get("type") != "message":
                pass
        finally:
            await client.close()

    with network(server, capture=tmp_path / "quic.pcapng") as net:
        asyncio.run(session(net.url))
        assert net.wait_idle()
        widget = TimelineWidget(net)
    (flow,) = udp_conversations(tmp_path / "quic.pcapng")
    assert flow.label.endswith("QUIC over UDP") and len(flow.records) == len(flow.segments)
    first, answer = flow.records[0], next(r for r in flow.records if not r.up)
    assert (
        first.up and first.summary.startswith("QUIC Initial v1") and first.fields["length"] >= 1200
    )
    client_id = first.fields["packets"][0]["scid"]
    kinds = [p["type"] for p in answer.fields["packets"]]
    assert (
        kinds[:2] == ["Initial", "Handshake"] and answer.fields["packets"][0]["dcid"] == client_id
    )
    server_id = answer.fields["packets"][0]["scid"]
    shorts = [r for r in flow.records if r.fields["header"] == "short"]
    assert shorts and all(r.summary.startswith("QUIC 1-RTT (short header)") for r in shorts)
    for record in shorts:  # each side addresses the other by the id the other chose
        assert record.fields["packets"][0]["dcid"] == (server_id if record.up else client_id)
    assert sum(len(s.data) for s in flow.segments) == sum(r.fields["length"] for r in flow.records)
    assert net.datagrams == len(flow.segments)  # every datagram the relay delivered, in the file
    assert widget.connections[-1]["label"].endswith("QUIC over UDP")
    assert "quic" in {m["kind"] for m in widget.marks}


def test_the_widget_fills_its_traits_and_filters(lesson: tuple[Network, list[int]]) -> None:
    net, seen = lesson
    widget = TimelineWidget(net)
    assert [c["number"] for c in widget.connections] == [1, 2]
    assert widget.marks and widget.marks[0]["t"] == 0.0
    assert [m["t"] for m in widget.marks] == sorted(m["t"] for m in widget.marks)
    assert widget.note == "" and widget.file_name == "lesson.pcapng"
    assert {m["kind"] for m in widget.shown()} == {"tcp", "http", "sse", "websocket"}
    assert set(widget.kinds) == {"tcp", "tls", "http", "http2", "sse", "websocket", "quic"}
    widget.kinds = ["websocket"]
    widget.connection = 1
    shown = widget.shown()
    assert {m["kind"] for m in shown} == {"websocket"} and {m["conn"] for m in shown} == {1}
    assert [m["seq"] for m in shown if "user_message" in m["summary"]] == seen
    masked = next(m for m in shown if m["up"] and "text" in m["summary"])
    assert 'unmasked: {"message": "one"}' in masked["detail"]
    widget.connection = 2
    assert widget.shown() == []


def test_the_download_hands_over_the_file(lesson: tuple[Network, list[int]]) -> None:
    net, _ = lesson
    widget = TimelineWidget(net)
    widget.file_request = 1
    assert widget.file_data["serial"] == 1
    data = base64.b64decode(widget.file_data["b64"])
    assert data[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng Section Header Block
    assert net.capture is not None and data == net.capture.path.read_bytes()


def test_the_widget_is_bounded_and_never_needs_a_capture() -> None:
    records = [Record("websocket", True, float(i), f"<b>{i}</b>") for i in range(30)]
    conversation = Conversation(1, 5000, (Segment(0.0, True, b"x"),), records)
    widget = TimelineWidget([conversation], limit=10)
    assert len(widget.marks) == 10 and "20 more left out" in widget.note
    assert widget.marks[0]["summary"] == "<b>0</b>"  # text, for the page's textContent
    assert widget.file_name == ""
    widget.file_request = 1
    assert widget.file_data == {"serial": 1, "error": "no capture file"}


def test_hex_dump_is_bounded() -> None:
    dump = hex_dump(b"GET / HTTP/1.1\r\n" * 40, limit=32)
    lines = dump.splitlines()
    assert lines[0] == "0000  47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a  GET / HTTP/1.1.."
    assert len(lines) == 3 and lines[-1] == "… 608 more bytes"
