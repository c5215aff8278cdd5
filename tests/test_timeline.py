"""The packet lens's timeline on a real server and relay: net.timeline() and the widget's Python
side (its traits, its filters, the download)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from transport_demo import start_server
from transport_demo.lab import ws_wire
from transport_demo.lab.dissect import Conversation, Record, Segment
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


def test_the_widget_fills_its_traits_and_filters(lesson: tuple[Network, list[int]]) -> None:
    net, seen = lesson
    widget = TimelineWidget(net)
    assert [c["number"] for c in widget.connections] == [1, 2]
    assert widget.marks and widget.marks[0]["t"] == 0.0
    assert [m["t"] for m in widget.marks] == sorted(m["t"] for m in widget.marks)
    assert widget.note == "" and widget.file_name == "lesson.pcapng"
    assert {m["kind"] for m in widget.shown()} == {"tcp", "http", "sse", "websocket"}
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
