"""Long polling against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx

from transport_demo import RunningServer
from transport_demo.server.held_polls import hold_for

from .waiting import until


def connect(http: httpx.Client) -> str:
    response = http.post("/poll", json={})
    assert response.status_code == 200
    event = response.json()
    assert event["type"] == "connected" and event["poll_timeout"] == 1.0
    return str(event["connection_id"])


def poll(http: httpx.Client, cid: str, **body: Any) -> dict[str, Any]:
    response = http.post("/poll", json={"connection_id": cid, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_connect_gives_distinct_ids(http: httpx.Client) -> None:
    ids = {connect(http) for _ in range(5)}
    assert len(ids) == 5
    # An empty body (curl -X POST /poll) connects too.
    assert http.post("/poll").json()["type"] == "connected"


def test_poll_holds_then_times_out(http: httpx.Client) -> None:
    cid = connect(http)
    started = time.monotonic()
    answer = poll(http, cid, last_seq=0)
    elapsed = time.monotonic() - started
    assert answer["type"] == "timeout" and answer["reason"] == "hold_expired"
    assert answer["connection_id"] == cid
    assert 0.8 < elapsed < 5  # hold is 1 s; generous margin for a busy machine


def test_poll_answers_at_once_when_data_is_queued(
    server: RunningServer, http: httpx.Client
) -> None:
    cid = connect(http)
    server.hub.publish(cid, "queued first")
    started = time.monotonic()
    answer = poll(http, cid, last_seq=0)
    assert time.monotonic() - started < 0.8
    assert answer["type"] == "message"
    assert [(m["seq"], m["message"], m["type"]) for m in answer["messages"]] == [
        (1, "queued first", "message")
    ]


def test_push_arrives_during_a_held_poll(server: RunningServer, http: httpx.Client) -> None:
    cid = connect(http)
    threading.Timer(0.3, server.hub.publish, (cid, "pushed")).start()
    started = time.monotonic()
    answer = poll(http, cid, last_seq=0)
    assert 0.2 < time.monotonic() - started < 0.9
    assert answer["messages"][0]["message"] == "pushed"


def test_send_text_echoes_at_once_in_fifo_order(http: httpx.Client) -> None:
    cid = connect(http)
    seqs = []
    for i in range(20):
        answer = poll(http, cid, text=f"msg {i}", last_seq=i)
        assert [m["message"] for m in answer["messages"]] == [f"msg {i}"]
        seqs.append(answer["queued_seq"])
    assert seqs == list(range(1, 21))


def test_lost_response_is_redelivered_with_last_seq(
    server: RunningServer, http: httpx.Client
) -> None:
    cid = connect(http)
    for i in range(3):
        server.hub.publish(cid, f"m{i}")
    # A poll whose response is cut off in the middle: read a few bytes, then drop the socket.
    body = json.dumps({"connection_id": cid, "last_seq": 0}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /poll HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert sock.recv(20).startswith(b"HTTP/1.1 200")
    answer = poll(http, cid, last_seq=0)
    assert [m["seq"] for m in answer["messages"]] == [1, 2, 3]
    # Acknowledged now: nothing is sent twice.
    server.hub.publish(cid, "m3")
    assert [m["seq"] for m in poll(http, cid, last_seq=3)["messages"]] == [4]


def test_new_poll_ends_the_held_one_empty(server: RunningServer) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=10) as a,
        httpx.Client(base_url=server.url, timeout=10) as b,
    ):
        cid = connect(a)
        result: dict[str, Any] = {}
        held = threading.Thread(target=lambda: result.update(poll(a, cid, last_seq=0)))
        held.start()
        until(lambda: server.hub.state_of(cid) == "live", what="poll held")
        second = threading.Thread(target=lambda: result.update(second=poll(b, cid, last_seq=0)))
        second.start()
        held.join(3)
        assert result["type"] == "timeout" and result["reason"] == "superseded"
        assert "messages" not in result
        server.hub.publish(cid, "after")
        second.join(3)
        assert [m["message"] for m in result["second"]["messages"]] == ["after"]


def test_unpolled_connection_expires(server: RunningServer, http: httpx.Client) -> None:
    cid = connect(http)
    deadline = time.monotonic() + 6  # poll expiry is 2 x 1 s
    while cid in server.hub and time.monotonic() < deadline:
        time.sleep(0.1)
    response = http.post("/poll", json={"connection_id": cid, "last_seq": 0})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_connection"


def test_isolation(server: RunningServer, http: httpx.Client) -> None:
    a, b = connect(http), connect(http)
    poll(http, a, text="for a only")
    server.hub.publish(b, "for b only")
    answer = poll(http, b, last_seq=0)
    assert [m["message"] for m in answer["messages"]] == ["for b only"]
    assert {m["connection_id"] for m in answer["messages"]} == {b}


def test_jittered_holds_stay_within_the_poll_timeout(make_server: Any) -> None:
    server = make_server(poll_timeout=0.4, poll_hold_jitter=0.5)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        cid = http.post("/poll", json={}).json()["connection_id"]
        holds = [poll(http, cid, last_seq=0)["hold"] for _ in range(6)]
        server.hub.publish(cid, "still delivered")
        answer = poll(http, cid, last_seq=0)
    assert all(0.2 <= hold <= 0.4 for hold in holds), holds
    assert len(set(holds)) > 1  # drawn per poll, not one fixed value
    assert [m["message"] for m in answer["messages"]] == ["still delivered"]


def test_hold_for_draws_within_its_window() -> None:
    assert hold_for(30.0, 0.0) == 30.0
    draws = [hold_for(30.0, 0.2) for _ in range(1000)]
    assert min(draws) >= 24.0 and max(draws) <= 30.0
    assert max(draws) - min(draws) > 4.0  # spread over the window, not bunched
