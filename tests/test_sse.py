"""Server-Sent Events against a real uvicorn server, read with httpx-sse (a third-party parser)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx_sse

from transport_demo import RunningServer


def sse_events(
    http: httpx.Client, count: int, headers: dict[str, str] | None = None, **params: Any
) -> tuple[list[httpx_sse.ServerSentEvent], httpx.Response]:
    """The first ``count`` events of a stream (the bare ``retry:`` one included), then hang up."""
    out = []
    with httpx_sse.connect_sse(
        http, "GET", "/sse", params=params, headers=dict(headers or {})
    ) as source:
        for event in source.iter_sse():
            out.append(event)
            if len(out) == count:
                break
        return out, source.response


def data(events: list[httpx_sse.ServerSentEvent]) -> Iterator[dict[str, Any]]:
    for event in events:
        if event.data:
            yield json.loads(event.data)


def test_stream_headers_retry_and_connected(http: httpx.Client) -> None:
    events, response = sse_events(http, 2)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in response.headers
    assert events[0].retry == 1000 and events[0].data == ""
    connected = json.loads(events[1].data)
    assert connected["type"] == "connected" and connected["resumed"] is False
    assert events[1].event == "message"  # unnamed: EventSource.onmessage sees it
    assert events[1].id == f"{connected['connection_id']}:0"


def test_heartbeats_arrive_on_time(http: httpx.Client) -> None:
    started = time.monotonic()
    events, _ = sse_events(http, 5)
    beats = list(data(events))[1:]
    assert [b["type"] for b in beats] == ["heartbeat"] * 3
    assert [b["count"] for b in beats] == [1, 2, 3]
    assert beats[2]["message"] == "Message 3"
    assert 0.5 < time.monotonic() - started < 5  # 3 x 0.2 s, generously


def test_post_message_is_delivered_on_the_stream(server: RunningServer) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=10) as http,
        httpx_sse.connect_sse(http, "GET", "/sse") as source,
    ):
        stream = source.iter_sse()
        next(stream)  # retry
        cid = json.loads(next(stream).data)["connection_id"]
        with httpx.Client(base_url=server.url, timeout=10) as other:
            for i in range(20):
                queued = other.post("/sse/message", json={"connection_id": cid, "text": f"t{i}"})
                assert queued.status_code == 200
                assert queued.json()["type"] == "queued" and queued.json()["seq"] == i + 1
        got = []
        for event in stream:
            payload = json.loads(event.data)
            if payload["type"] == "message":
                assert event.id == f"{cid}:{payload['seq']}"
                got.append((payload["seq"], payload["message"]))
            if len(got) == 20:
                break
        assert got == [(i + 1, f"t{i}") for i in range(20)]


def test_resume_with_last_event_id_loses_nothing(server: RunningServer, http: httpx.Client) -> None:
    events, _ = sse_events(http, 2)
    cid = json.loads(events[1].data)["connection_id"]
    for i in range(5):
        server.hub.publish(cid, f"m{i}")
    # Wait until the first stream's detach is seen (the server noticed the hang-up).
    first, _ = sse_events(http, 4, headers={"Last-Event-ID": f"{cid}:0"})
    seen = [p["seq"] for p in data(first) if p["type"] == "message"]
    assert seen == [1, 2]
    for i in range(5, 7):
        server.hub.publish(cid, f"m{i}")
    again, _ = sse_events(http, 7, headers={"Last-Event-ID": f"{cid}:{seen[-1]}"})
    payloads = list(data(again))
    assert payloads[0]["resumed"] is True and payloads[0]["connection_id"] == cid
    assert [p["seq"] for p in payloads if p["type"] == "message"] == [3, 4, 5, 6, 7]


def test_resume_with_query_parameters(server: RunningServer, http: httpx.Client) -> None:
    events, _ = sse_events(http, 2)
    cid = json.loads(events[1].data)["connection_id"]
    server.hub.publish(cid, "a")
    server.hub.publish(cid, "b")
    again, _ = sse_events(http, 3, connection_id=cid, last_seq=1)
    payloads = list(data(again))
    assert payloads[0]["resumed"] is True
    assert payloads[1]["seq"] == 2 and payloads[1]["message"] == "b"


def test_cut_in_the_middle_of_an_event_then_resume(server: RunningServer) -> None:
    """A raw socket reads part of the stream and hangs up mid-event; the resume replays it."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        buffer = b""
        while b"id: " not in buffer:
            buffer += sock.recv(4096)
        cid = buffer.split(b"id: ")[1].split(b":")[0].decode()
        server.hub.publish(cid, "x" * 50_000)
        buffer = b""
        while len(buffer) < 1000:  # part of the big event only
            buffer += sock.recv(1000)
    assert b"\n\n" not in buffer.split(b"data: ", 1)[-1]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        again, _ = sse_events(http, 3, headers={"Last-Event-ID": f"{cid}:0"})
    payload = list(data(again))[1]
    assert payload["seq"] == 1 and payload["message"] == "x" * 50_000


def test_unknown_or_expired_id_gets_a_new_connection(http: httpx.Client) -> None:
    events, _ = sse_events(http, 2, headers={"Last-Event-ID": "0000dead-beef:4"})
    connected = json.loads(events[1].data)
    assert connected["resumed"] is False and connected["resume_failed"] == "unknown_connection"
    assert connected["connection_id"] != "0000dead-beef"


def test_malformed_resume_point_is_a_clear_4xx(http: httpx.Client) -> None:
    for headers, params in [
        ({"Last-Event-ID": "no-colon"}, {}),
        ({"Last-Event-ID": "abc:-1"}, {}),
        ({}, {"connection_id": "x", "last_seq": "one"}),
    ]:
        response = http.get("/sse", headers=headers, params=params)
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"


def test_message_endpoint_errors(server: RunningServer, http: httpx.Client) -> None:
    cases = [
        ({"json": {"connection_id": "nope", "text": "x"}}, 404, "unknown_connection"),
        ({"json": {"text": "x"}}, 422, "invalid_request"),
        (
            {"content": b"{oops", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        (
            {
                "content": b"text=x",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            415,
            "unsupported_media_type",
        ),
    ]
    for kwargs, status, code in cases:
        response = http.post("/sse/message", **kwargs)
        assert (response.status_code, response.json()["error"]) == (status, code)


def test_stream_detaches_and_expires_after_grace(server: RunningServer, http: httpx.Client) -> None:
    events, _ = sse_events(http, 2)
    cid = json.loads(events[1].data)["connection_id"]
    # Still resumable right after the hang-up: a message is accepted meanwhile.
    assert http.post("/sse/message", json={"connection_id": cid, "text": "x"}).status_code == 200
    deadline = time.monotonic() + 6  # grace is 1 s
    while cid in server.hub and time.monotonic() < deadline:
        time.sleep(0.1)
    response = http.post("/sse/message", json={"connection_id": cid, "text": "late"})
    assert response.status_code == 404
