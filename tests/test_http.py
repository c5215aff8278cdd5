"""The HTTP surface shared by all transports: /stats, CORS, the page at /, bad input."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from transport_demo import RunningServer


def test_stats_counts_by_transport_and_state(server: RunningServer, http: httpx.Client) -> None:
    lp = http.post("/poll").json()["connection_id"]
    server.hub.publish(lp, "secret message text")
    with connect(f"{server.ws_url}/ws") as ws:
        ws_id = json.loads(ws.recv(5))["connection_id"]
        stats = http.get("/stats").json()
    assert stats["connections"] == {"long-polling": 1, "sse": 0, "websocket": 1, "webtransport": 0}
    assert stats["states"]["live"] == 1 and stats["states"]["waiting"] == 1
    for key in ("messages_received", "messages_published", "events_sent", "heartbeats_sent"):
        assert isinstance(stats[key], int)
    assert stats["uptime"] >= 0
    listed = {c["id"]: c for c in stats["connection_list"]}
    assert set(listed) == {lp[:8], ws_id[:8]}
    assert listed[lp[:8]]["queued"] == 1 and listed[lp[:8]]["transport"] == "long-polling"
    for field in ("state", "delivered", "created", "last_seen"):
        assert field in listed[lp[:8]]
    raw = http.get("/stats").text
    assert lp not in raw and ws_id not in raw and "secret message text" not in raw


def test_full_ids_never_reach_the_logs(server: RunningServer, http: httpx.Client) -> None:
    cid = http.post("/poll").json()["connection_id"]
    http.post("/poll", json={"connection_id": cid, "text": "x"})
    with connect(f"{server.ws_url}/ws?connection_id={cid}&last_seq=0") as ws:
        ws.recv(5)
    assert not any(cid in line for line in server.log_lines())


def test_cors_allows_listed_origins_and_refuses_others(http: httpx.Client) -> None:
    def preflight(origin: str) -> httpx.Response:
        return http.options(
            "/poll",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )

    for origin in ["http://localhost:8888", "http://127.0.0.1:8000", "null"]:
        response = preflight(origin)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
        simple = http.post("/poll", headers={"Origin": origin})
        assert simple.headers["access-control-allow-origin"] == origin
    refused = preflight("http://evil.example")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert (
        "access-control-allow-origin"
        not in http.post("/poll", headers={"Origin": "http://evil.example"}).headers
    )


def test_page_is_served_at_root(http: httpx.Client) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        (
            {"content": b"\xff\xfe\xfd", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        (
            {"content": b"[" * 10_000, "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        ({"json": [1, 2]}, 422, "invalid_request"),
        ({"json": "text"}, 422, "invalid_request"),
        ({"json": {"connection_id": 5}}, 422, "invalid_request"),
        ({"json": {"connection_id": "x" * 65}}, 422, "invalid_request"),
        ({"json": {"connection_id": "nope", "last_seq": "1"}}, 422, "invalid_request"),
        ({"json": {"connection_id": "nope", "last_seq": -1}}, 422, "invalid_request"),
        ({"json": {"connection_id": "nope", "last_seq": True}}, 422, "invalid_request"),
        ({"json": {"text": "no id"}}, 422, "invalid_request"),
        ({"json": {"connection_id": "nope"}}, 404, "unknown_connection"),
        (
            {"content": b"a=b", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        (
            {"content": b"x" * 2_000_000, "headers": {"content-type": "application/json"}},
            413,
            "message_too_large",
        ),
    ],
)
def test_bad_poll_input_is_a_clear_4xx(
    http: httpx.Client, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = http.post("/poll", **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"] == code and body["detail"]


def test_body_over_the_limit_without_content_length_is_refused(http: httpx.Client) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 10_000

    response = http.post("/poll", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "message_too_large"


def test_text_over_the_limit_and_queue_full(make_server: Any) -> None:
    server = make_server(max_message_bytes=10, max_queue=2)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        cid = http.post("/poll").json()["connection_id"]
        too_big = http.post("/poll", json={"connection_id": cid, "text": "x" * 11})
        assert (too_big.status_code, too_big.json()["error"]) == (413, "message_too_large")
        assert http.post("/poll", json={"connection_id": cid, "text": "1"}).status_code == 200
        server.hub.publish(cid, "2")  # sent without last_seq: "1" counts as delivered
        server.hub.publish(cid, "3")
        full = http.post("/poll", json={"connection_id": cid, "text": "4"})
        assert (full.status_code, full.json()["error"]) == (429, "queue_full")
        answer = http.post("/poll", json={"connection_id": cid, "last_seq": 1}).json()
        assert [m["message"] for m in answer["messages"]] == ["2", "3"]  # nothing dropped


def test_connection_cap_is_a_503(make_server: Any) -> None:
    server = make_server(max_connections=1)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/poll").status_code == 200
        refused = http.post("/poll")
        assert (refused.status_code, refused.json()["error"]) == (503, "too_many_connections")
        assert http.get("/sse").status_code == 503


def test_bad_input_does_not_disturb_a_healthy_connection(server: RunningServer) -> None:
    with connect(f"{server.ws_url}/ws") as ws:
        cid = json.loads(ws.recv(5))["connection_id"]
        stop = threading.Event()

        def abuse() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                while not stop.is_set():
                    http.post("/poll", content=b"{", headers={"content-type": "application/json"})
                    http.post("/sse/message", json={"connection_id": cid, "text": "hijack"})
                    http.post("/poll", json={"connection_id": cid})

        thread = threading.Thread(target=abuse)
        thread.start()
        try:
            for i in range(20):
                server.hub.publish(cid, f"m{i}")
            got = []
            while len(got) < 20:
                event = json.loads(ws.recv(5))
                if event["type"] == "message":
                    got.append(event["message"])
            assert got == [f"m{i}" for i in range(20)]
        finally:
            stop.set()
            thread.join()
    assert not any("Traceback" in line or "ERROR" in line for line in server.log_lines())
