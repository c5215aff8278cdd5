"""The teaching demos under /lessons, the raw HTTP view in wire.py, and the Python EventSource
against them: what the long-polling and SSE notebooks show is what happens."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from transport_demo import RunningServer
from transport_demo.lab import eventsource, wire
from transport_demo.lab.exercises.sse import PARSER_CASES


def test_lessons_are_not_part_of_the_contract(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert paths and not [p for p in paths if p.startswith("/lessons")]


def test_short_poll_answers_at_once(server: RunningServer, http: httpx.Client) -> None:
    cid = http.post("/lessons/short-poll", json={}).json()["connection_id"]
    empty = http.post("/lessons/short-poll", json={"connection_id": cid, "last_seq": 0})
    assert empty.json()["type"] == "empty" and empty.elapsed.total_seconds() < 0.5
    server.hub.publish(cid, "hi")
    answer = http.post("/lessons/short-poll", json={"connection_id": cid, "last_seq": 0}).json()
    assert [(e["seq"], e["message"]) for e in answer["messages"]] == [(1, "hi")]
    bad = http.post("/lessons/short-poll", json={"connection_id": cid, "last_seq": "1"})
    assert bad.status_code == 422 and bad.json()["type"] == "error"
    assert http.post("/lessons/short-poll", json={"connection_id": "nope"}).status_code == 404


def test_countdown_resumes_with_last_event_id_and_ends_with_204(http: httpx.Client) -> None:
    first = http.get("/lessons/sse/countdown", params={"interval": 0})
    assert first.headers["content-type"].startswith("text/event-stream")
    assert eventsource.blocks(first.text) == [
        {"retry": 500},
        {"data": "event 1 of 5", "id": "1"},
        {"data": "event 2 of 5", "id": "2"},
    ]
    last = http.get("/lessons/sse/countdown", headers={"Last-Event-ID": "4"})
    assert eventsource.blocks(last.text)[1:] == [{"data": "event 5 of 5", "id": "5"}]
    done = http.get("/lessons/sse/countdown", headers={"Last-Event-ID": "5"})
    assert done.status_code == 204 and done.content == b""


def test_a_browser_reconnects_with_last_event_id_until_204(server: RunningServer) -> None:
    run = eventsource.run(f"{server.url}/lessons/sse/countdown?retry=100&interval=0", seconds=10)
    assert [e.data for e in run.events] == [f"event {n} of 5" for n in range(1, 6)]
    sent = [r.get("Last-Event-ID") for r in run.requests]
    assert sent == [None, "2", "4", "5"]
    assert run.ready_state == "CLOSED"
    waits = [text for _, text in run.notes if text.startswith("reestablish")]
    assert len(waits) == 3 and all("wait 100 ms" in text for text in waits)


@pytest.mark.parametrize(
    ("status", "content_type", "final"),
    [
        (200, "text/event-stream", False),
        (200, "application/json", True),
        (503, "text/event-stream", True),
        (204, "", True),
    ],
)
def test_which_answers_fail_the_connection(
    server: RunningServer, status: int, content_type: str, final: bool
) -> None:
    url = f"{server.url}/lessons/sse/answer?status={status}&content_type={content_type}"
    run = eventsource.run(url, seconds=0.5, reconnection_ms=100)
    if final:  # failed: CLOSED after one request, nothing dispatched
        assert run.ready_state == "CLOSED" and len(run.requests) == 1 and not run.events
    else:  # a stream that ended: dispatched, then reconnected
        assert run.ready_state != "CLOSED" and len(run.requests) >= 2 and run.events


def test_a_network_error_reconnects() -> None:
    run = eventsource.run("http://127.0.0.1:9/never", seconds=0.5, reconnection_ms=100)
    assert run.ready_state == "CONNECTING" and len(run.requests) >= 2


def test_named_events_comments_and_multiline_data(server: RunningServer) -> None:
    run = eventsource.run(f"{server.url}/lessons/sse/named?seconds=0.3&keepalive=0.1", seconds=0.6)
    assert [(e.type, e.last_event_id) for e in run.events] == [
        ("join", "1"),
        ("message", "2"),
        ("chat", "3"),
        ("leave", "4"),
    ]
    assert run.events[2].data == "a message\nover two lines"
    assert sum("comment : keep-alive" in text for _, text in run.notes) >= 2


def test_streaming_post_reply_parses_with_the_exercise_parser(server: RunningServer) -> None:
    raw = wire.sse_bytes(server.url, path="/lessons/reply", json={"prompt": "why?"}, seconds=5)
    assert raw.status == 200 and len(raw.chunks) > 3
    assert any(not chunk.text.endswith("\n\n") for chunk in raw.chunks)  # an event split in two
    parsed = eventsource.blocks(raw.text)
    words = "".join(json.loads(b["data"])["text"] for b in parsed if b.get("event") == "token")
    assert words.startswith("You asked: why?")
    assert parsed[-1] == {"event": "done", "data": json.dumps({"tokens": len(words.split())})}


def test_header_cookie_and_ticket(server: RunningServer) -> None:
    token = wire.http_bytes(server.url, "POST", "/lessons/login", {"user": "ada"}).json()["token"]
    anonymous = wire.http_bytes(server.url, "GET", "/lessons/whoami")
    assert anonymous.status == 401 and b"www-authenticate: Bearer" in anonymous.response
    header = {"Authorization": f"Bearer {token}"}
    assert wire.http_bytes(server.url, "POST", "/lessons/whoami", {}, headers=header).json() == {
        "user": "ada",
        "via": "header",
    }
    cookie = {"Cookie": f"lesson_session={token}"}
    assert wire.http_bytes(server.url, "GET", "/lessons/whoami", headers=cookie).json()["via"] == (
        "cookie"
    )
    ticket = wire.http_bytes(server.url, "POST", "/lessons/ticket", headers=header).json()["ticket"]
    # A ticket works once: EventSource reconnects with the same URL, and is refused for good.
    run = eventsource.run(f"{server.url}/lessons/sse/private?ticket={ticket}", seconds=3)
    assert [json.loads(e.data)["via"] for e in run.events] == ["ticket"]
    assert run.ready_state == "CLOSED" and any("← 401" in text for _, text in run.notes)
    # A cookie goes with every reconnection.
    run = eventsource.run(f"{server.url}/lessons/sse/private", seconds=1.2, headers=cookie)
    assert len(run.events) >= 2 and run.ready_state != "CLOSED"


def test_raw_http_view_counts_every_byte(server: RunningServer) -> None:
    exchange = wire.http_bytes(server.url, body={})
    head, _, body = exchange.response.partition(b"\r\n\r\n")
    assert exchange.status == 200 and exchange.json()["type"] == "connected"
    assert f"content-length: {len(body)}".encode() in head.lower()
    assert exchange.request.endswith(b"\r\n\r\n{}") and b"Content-Length: 2" in exchange.request
    shown = repr(exchange)
    assert f"sent {len(exchange.request)} bytes" in shown
    assert f"received {len(exchange.response)} bytes" in shown


def test_response_length_frames_chunked_and_sized_bodies() -> None:
    sized = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"
    assert wire.response_length(sized) == len(sized)
    assert wire.response_length(sized[:-1]) is None
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert wire.response_length(chunked + b"HTTP/1.1") == len(chunked)
    assert wire.response_length(chunked[:-2]) is None
    assert wire.response_length(b"HTTP/1.1 204 No Content\r\n\r\n") == 27


def test_held_poll_is_superseded_by_a_send(server: RunningServer) -> None:
    cid = wire.poll(server.url).answer["connection_id"]
    held = wire.held_poll(server.url, {"connection_id": cid, "last_seq": 0})
    for _ in range(200):  # wait until the poll is held at the server
        states = {c["id"]: c["state"] for c in server.hub.stats()["connection_list"]}
        if states.get(cid[:8]) == "live":
            break
        time.sleep(0.01)
    sent = wire.poll(server.url, {"connection_id": cid, "text": "hi", "last_seq": 0})
    assert sent.answer["queued_seq"] == 1
    ended = held.result(5)
    assert ended.answer["type"] == "timeout" and ended.answer["reason"] == "superseded"
    assert ended.seconds < 1


@pytest.mark.parametrize("case", range(len(PARSER_CASES)))
def test_blocks_agrees_with_the_exercise(case: int) -> None:
    text, expected = PARSER_CASES[case]
    assert eventsource.blocks(text) == expected


def test_parser_handles_split_lines_crlf_and_bom() -> None:
    parser = eventsource.EventStreamParser()
    lines = []
    for chunk in [b"\xef\xbb\xbfda", b"ta: \xc3", b"\xa9t\xc3\xa9\r", b"\nid: 1\r", b"\r\n"]:
        lines += parser.feed(chunk)
    assert [(line.kind, line.name, line.value) for line in lines] == [
        ("field", "data", "été"),
        ("field", "id", "1"),
        ("blank", "", ""),
    ]


def test_odd_inputs_are_refused_not_crashed(http: httpx.Client) -> None:
    bad_type = http.get("/lessons/sse/answer", params={"content_type": "text/html\r\nX-Evil: 1"})
    assert bad_type.status_code == 422 and bad_type.json()["type"] == "error"
    assert http.get("/lessons/sse/answer", params={"status": 302}).status_code == 422
    # "²" (latin-1 on the wire) is a digit to str.isdigit, but no number: start over, no crash
    odd_id = http.get("/lessons/sse/countdown?interval=0", headers={"Last-Event-ID": b"\xb2"})
    assert odd_id.status_code == 200 and "event 1 of 5" in odd_id.text
    assert http.post("/lessons/login", json={"user": "a b"}).status_code == 422
    assert http.post("/lessons/reply", json={"prompt": ""}).status_code == 422
