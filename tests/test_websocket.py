"""WebSocket against a real uvicorn server, with the `websockets` library as the client."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from transport_demo import RunningServer

from .waiting import until


def open_ws(server: RunningServer, query: str = "", **kwargs: Any) -> ClientConnection:
    return connect(f"{server.ws_url}/ws{query}", open_timeout=5, **kwargs)


def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout)))


def recv_type(ws: ClientConnection, event_type: str) -> dict[str, Any]:
    """The next event of ``event_type``, skipping heartbeats."""
    while True:
        event = recv(ws)
        if event["type"] == event_type:
            return event
        assert event["type"] == "heartbeat", event


def test_connected_then_heartbeats(server: RunningServer) -> None:
    with open_ws(server) as ws:
        connected = recv(ws)
        assert connected["type"] == "connected" and connected["resumed"] is False
        beats = [recv(ws) for _ in range(3)]
        assert [b["type"] for b in beats] == ["heartbeat"] * 3
        assert [b["count"] for b in beats] == [1, 2, 3]
        assert beats[0]["message"] == "Message 1"


def test_message_frame_is_echoed_as_user_message(server: RunningServer) -> None:
    with open_ws(server) as ws:
        cid = recv(ws)["connection_id"]
        for i in range(20):
            ws.send(json.dumps({"message": f"hello {i}"}))
        echoes = [recv_type(ws, "user_message") for _ in range(20)]
        assert [(e["seq"], e["message"]) for e in echoes] == [
            (i + 1, f"hello {i}") for i in range(20)
        ]
        assert {e["connection_id"] for e in echoes} == {cid}


def test_server_push(server: RunningServer) -> None:
    with open_ws(server) as ws:
        cid = recv(ws)["connection_id"]
        assert server.hub.publish(cid, "from the notebook") == 1
        event = recv_type(ws, "message")
        assert event["seq"] == 1 and event["message"] == "from the notebook"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ('{"text": "wrong field"}', "invalid_request"),
        ('{"message": 5}', "invalid_request"),
        ("[1, 2]", "invalid_request"),
        (b"\x00\x01binary", "binary_not_supported"),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_stays_open(
    server: RunningServer, frame: str | bytes, code: str
) -> None:
    with open_ws(server) as ws:
        recv(ws)
        ws.send(frame)
        error = recv_type(ws, "error")
        assert error["error"] == code and error["detail"]
        ws.send(json.dumps({"message": "still here"}))
        assert recv_type(ws, "user_message")["message"] == "still here"


def test_text_over_the_limit_is_an_error_and_huge_frame_closes_1009(
    make_server: Any,
) -> None:
    server = make_server(max_message_bytes=100)
    with open_ws(server) as ws:
        recv(ws)
        ws.send(json.dumps({"message": "x" * 101}))
        assert recv_type(ws, "error")["error"] == "message_too_large"
        ws.send(json.dumps({"message": "x" * 5000}))  # over 6 x 100 + 1024: the frame limit
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_resume_replays_missed_events(server: RunningServer) -> None:
    with open_ws(server) as ws:
        cid = recv(ws)["connection_id"]
        ws.send(json.dumps({"message": "one"}))
        assert recv_type(ws, "user_message")["seq"] == 1
    server.hub.publish(cid, "while away")
    server.hub.publish(cid, "and another")
    with open_ws(server, f"?connection_id={cid}&last_seq=1") as ws:
        connected = recv(ws)
        assert connected["resumed"] is True and connected["connection_id"] == cid
        got = [recv_type(ws, "message") for _ in range(2)]
        assert [(e["seq"], e["message"]) for e in got] == [(2, "while away"), (3, "and another")]


def test_resume_takes_over_a_still_attached_socket(server: RunningServer) -> None:
    with open_ws(server) as old:
        cid = recv(old)["connection_id"]
        with open_ws(server, f"?connection_id={cid}&last_seq=0") as new:
            assert recv(new)["resumed"] is True
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    recv(old)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
            server.hub.publish(cid, "only on the new one")
            assert recv_type(new, "message")["seq"] == 1


def test_cut_mid_frame_then_resume(server: RunningServer) -> None:
    with open_ws(server) as ws:
        cid = recv(ws)["connection_id"]
    server.hub.publish(cid, "y" * 60_000)
    # A raw client resumes, reads part of the big frame and hangs up.
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            f"GET /ws?connection_id={cid}&last_seq=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        while len(received) < 5000:
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 101")
    until(lambda: server.hub.state_of(cid) == "disconnected", what="socket detached")
    with open_ws(server, f"?connection_id={cid}&last_seq=0") as ws:
        assert recv(ws)["resumed"] is True
        event = recv_type(ws, "message")
        assert event["seq"] == 1 and event["message"] == "y" * 60_000


def test_foreign_origin_is_refused_before_accept(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(server, origin="http://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body or b"{}")["error"] == "origin_not_allowed"
    assert len(server.hub) == 0
    for allowed in ["http://localhost:3000", "http://127.0.0.1:9", "null", server.url]:
        with open_ws(server, origin=allowed) as ws:  # type: ignore[arg-type]
            assert recv(ws)["type"] == "connected"


def test_configured_origin_list(make_server: Any) -> None:
    server = make_server(allowed_origins=["http://classroom.lan:8000"])
    with open_ws(server, origin="http://classroom.lan:8000") as ws:  # type: ignore[arg-type]
        assert recv(ws)["type"] == "connected"
    with pytest.raises(InvalidStatus):
        open_ws(server, origin="http://localhost:3000")  # type: ignore[arg-type]


def test_closed_socket_expires_after_grace(server: RunningServer) -> None:
    with open_ws(server) as ws:
        cid = recv(ws)["connection_id"]
    until(lambda: server.hub.state_of(cid) == "disconnected", what="socket detached")
    deadline = time.monotonic() + 6
    while cid in server.hub and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cid not in server.hub
    with open_ws(server, f"?connection_id={cid}&last_seq=0") as ws:
        connected = recv(ws)
        assert connected["resumed"] is False and connected["connection_id"] != cid


@pytest.mark.parametrize("compression", [True, False])
def test_permessage_deflate_follows_the_setting(make_server: Any, compression: bool) -> None:
    server = make_server(ws_compression=compression)
    with open_ws(server) as ws:  # the websockets client offers permessage-deflate
        assert ws.response is not None
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert ("permessage-deflate" in negotiated) is compression
        assert recv(ws)["type"] == "connected"
        ws.send(json.dumps({"message": "hello " * 50}))
        assert recv_type(ws, "user_message")["message"] == "hello " * 50
